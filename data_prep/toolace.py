"""ToolACE (`Team-ACE/ToolACE`, data.json): `{"system", "conversations": [{"from", "value"}]}`.

Tools are JSON inside `system` after "Here is a list of functions in JSON format that you can invoke:";
assistant calls are Python-call syntax; tool turns are JSON lists of `{"name", "results"}`.
The system prompt keeps its prose but loses the tool JSON and ToolACE's own call-format instructions:
the chat template's agent format (hermes) re-states tools and call format natively.
"""
from __future__ import annotations

import re

from . import jsonvalue
from .dialogue import Dialogue, check_calls, turn_fields
from .errors import BAD_DIALOGUE, BAD_TOOL_SPEC, BadRow
from .pycalls import looks_like_calls, parse_calls
from .tools import loads_json, openai_tools

TOOLS_MARKER = 'Here is a list of functions in JSON format that you can invoke:'
_FORMAT_NOTE = re.compile(r'^\W*Should you decide to return the function call\(s\).*?'
                          r'NO other text MUST be included\.?', re.S)


def split_system(system: str, where: str) -> tuple[str, list]:
    """-> (system prose without the tool list, raw tool list)."""
    at = system.find(TOOLS_MARKER)
    if at < 0:
        raise BadRow(BAD_TOOL_SPEC, f'{where}: system prompt has no "{TOOLS_MARKER}"')
    start = system.find('[', at + len(TOOLS_MARKER))
    if start < 0:
        raise BadRow(BAD_TOOL_SPEC, f'{where}: no tool list after the marker')
    raw_tools, stop = jsonvalue.raw_decode(system, start, f'{where}: tool list in system')
    tail = _FORMAT_NOTE.sub('', system[stop:]).lstrip(' .\n').rstrip()
    prose = system[:at].strip()
    return (prose + ('\n' + tail if tail else '')).strip(), raw_tools


def convert(raw: dict, index: int) -> Dialogue:
    did = str(raw.get('id', index))
    where = f'toolace row {index}'
    if not isinstance(raw.get('conversations'), list) or not isinstance(raw.get('system'), str):
        raise BadRow(BAD_DIALOGUE, f'{where}: needs "system" (str) and "conversations" (list)')
    system, raw_tools = split_system(raw['system'], where)
    tools = openai_tools(raw_tools, f'{where} tools')
    turns = []
    for t, turn in enumerate(raw['conversations']):
        role, value = turn_fields(turn, ('from', 'value'), f'{where} turn {t}')
        if role == 'user':
            turns.append(('user', value))
        elif role == 'assistant':
            if looks_like_calls(value):
                turns.append(('calls', check_calls(parse_calls(value), tools, f'{where} turn {t}')))
            else:
                turns.append(('answer', value))
        elif role == 'tool':
            results = loads_json(value, f'{where} turn {t} (tool)')
            results = results if isinstance(results, list) else [results]
            turns.append(('tool', [jsonvalue.dumps(r, f'{where} turn {t} (tool)') for r in results]))
        else:
            raise BadRow(BAD_DIALOGUE, f'{where} turn {t}: unknown role {role!r}')
    return Dialogue('toolace', did, tools, turns, system=system)
