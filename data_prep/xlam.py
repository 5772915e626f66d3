"""xLAM single turn (`Salesforce/xlam-function-calling-60k`) and the irrelevance rows of
`MadeAgents/xlam-irrelevance-7.5k` (same schema, `answers="[]"`): `{"id", "query", "answers", "tools"}`,
`answers`/`tools` JSON strings, tool parameters a flat `{param: {"description", "type", "default"}}`.
One dialogue = user query -> one action (the call set, or, for `[]`, a direct answer)."""
from __future__ import annotations

from .dialogue import Dialogue, check_calls
from .errors import BAD_DIALOGUE, BadRow
from .tools import loads_json, openai_tools

# Irrelevance rows carry no reference text; the target is "no call" (ground_truth `[]`) and this canonical
# refusal is kept as `reference_answer` (the text the SFT export puts after the rationale).
IRRELEVANT_ANSWER = 'None of the available functions can be used for this request.'


def convert(raw: dict, index: int, source: str = 'xlam') -> Dialogue:
    did = str(raw.get('id', index))
    where = f'{source} row {index} (id {did})'
    query = raw.get('query')
    if not isinstance(query, str) or not query.strip():
        raise BadRow(BAD_DIALOGUE, f'{where}: empty "query"')
    tools = openai_tools(raw.get('tools'), f'{where} tools', flat_params=True)
    answers = loads_json(raw.get('answers'), f'{where} answers')
    if answers == []:
        action = ('answer', IRRELEVANT_ANSWER)
    else:
        action = ('calls', check_calls(answers, tools, f'{where} answers'))
    return Dialogue(source, did, tools, [('user', query), action])
