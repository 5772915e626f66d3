"""APIGen-MT (`Salesforce/APIGen-MT-5k`): `{"system", "tools" (JSON string), "conversations":
[{"from": "human"|"gpt"|"function_call"|"observation", "value"}]}`; a `function_call` value is the JSON
string `{"name", "arguments"}`. Consecutive `function_call` turns form one (parallel) call set."""
from __future__ import annotations

from .dialogue import Dialogue, check_calls, turn_fields
from .errors import BAD_DIALOGUE, BadRow
from .tools import loads_json, openai_tools


def convert(raw: dict, index: int) -> Dialogue:
    did = str(raw.get('id', index))
    where = f'xlam_mt row {index}'
    conv = raw.get('conversations')
    if not isinstance(conv, list):
        raise BadRow(BAD_DIALOGUE, f'{where}: "conversations" is not a list')
    tools = openai_tools(raw.get('tools'), f'{where} tools')
    turns: list = []
    for t, turn in enumerate(conv):
        role, value = turn_fields(turn, ('from', 'value'), f'{where} turn {t}')
        if role == 'human':
            turns.append(('user', value))
        elif role == 'gpt':
            turns.append(('answer', value))
        elif role == 'function_call':
            call = check_calls([loads_json(value, f'{where} turn {t} (function_call)')], tools, f'{where} turn {t}')
            if turns and turns[-1][0] == 'calls':
                turns[-1][1].extend(call)
            else:
                turns.append(('calls', call))
        elif role == 'observation':
            if turns and turns[-1][0] == 'tool':
                turns[-1][1].append(value)
            else:
                turns.append(('tool', [value]))
        else:
            raise BadRow(BAD_DIALOGUE, f'{where} turn {t}: unknown role {role!r}')
    return Dialogue('xlam_mt', did, tools, turns, system=str(raw.get('system') or ''))
