"""The source-independent dialogue and the SWiRL-style decomposition (paper Sec. 4.1).

Every converter turns a raw row into a `Dialogue`: a system prompt, OpenAI-style tools and a list of turns,
each one of
  ('user', text)            a user message,
  ('calls', [{name, arguments}, ...])   one assistant action that is a (possibly parallel) call set,
  ('answer', text)          one assistant action that is a text answer,
  ('tool', [text, ...])     the tool results that follow a call set.
`decompose` then implements the decomposition rule: a dialogue with K assistant actions gives K instances;
instance k holds everything before action k (earlier calls as ms-swift `tool_call` messages, results as
`tool_response` messages) and action k is its target. Tool outputs are context, never targets.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from plugin.toolcall_format import CALL_CLOSE

from . import jsonvalue
from .errors import BAD_DIALOGUE, UNKNOWN_TOOL, UNREADABLE_CALL, BadRow
from .tools import tool_names

ACTIONS = ('calls', 'answer')


@dataclass
class Dialogue:
    source: str
    dialogue_id: str
    tools: list[dict]
    turns: list[tuple[str, Any]]
    system: str = ''
    meta: dict = field(default_factory=dict)


def check_calls(calls: Any, tools: list[dict], where: str) -> list[dict]:
    """A call set must be a list of `{"name": str in the tool list, "arguments": dict}`."""
    if not isinstance(calls, list):
        raise BadRow(BAD_DIALOGUE, f'{where}: calls are {type(calls).__name__}, not a list')
    names = tool_names(tools)
    out = []
    for i, call in enumerate(calls):
        if not isinstance(call, dict) or not isinstance(call.get('name'), str):
            raise BadRow(BAD_DIALOGUE, f'{where}: call {i} has no name')
        args = call.get('arguments', {})
        if args is None:
            args = {}
        if not isinstance(args, dict):
            raise BadRow(BAD_DIALOGUE, f'{where}: call {i} ({call["name"]!r}) arguments are not an object')
        jsonvalue.check_value(args, f'{where}: call {i} ({call["name"]!r}) arguments')
        if CALL_CLOSE in call['name'] or CALL_CLOSE in json.dumps(args, ensure_ascii=False):
            raise BadRow(UNREADABLE_CALL, f'{where}: call {i} ({call["name"][:80]!r}) holds {CALL_CLOSE!r} in a '
                                          'string: no hermes parser (vLLM, ms-swift, the reward) can read it back')
        if call['name'] not in names:
            raise BadRow(UNKNOWN_TOOL, f'{where}: call {i} names {call["name"]!r}, tools are {sorted(names)}')
        out.append({'name': call['name'], 'arguments': args})
    return out


def turn_fields(turn: Any, keys: tuple[str, str], where: str) -> tuple[Any, str]:
    """(role, text) of one raw turn `{keys[0]: role, keys[1]: text}`; a turn that is not such an object
    (null, a string, a list) or whose text is not a string is a BadRow naming the turn."""
    if not isinstance(turn, dict):
        raise BadRow(BAD_DIALOGUE, f'{where}: turn is {type(turn).__name__}, not an object')
    value = turn.get(keys[1])
    if not isinstance(value, str):
        raise BadRow(BAD_DIALOGUE, f'{where}: {keys[1]!r} is {type(value).__name__}, not a string')
    return turn.get(keys[0]), value


def tool_call_message(call: dict) -> dict:
    """ms-swift `tool_call` message: content is the JSON string {"name", "arguments"} (see
    `ReactCompatMixin._parse_tool_call`, which the hermes template uses to render `<tool_call>` blocks)."""
    return {'role': 'tool_call', 'content': jsonvalue.dumps(call, f'call {call.get("name")!r}')}


def turn_messages(kind: str, value: Any) -> list[dict]:
    if kind == 'user':
        return [{'role': 'user', 'content': value}]
    if kind == 'answer':
        return [{'role': 'assistant', 'content': value}]
    if kind == 'calls':
        return [tool_call_message(c) for c in value]
    if kind == 'tool':
        return [{'role': 'tool_response', 'content': v} for v in value]
    raise ValueError(f'unknown turn kind {kind!r}')


def validate_turn_order(d: Dialogue) -> None:
    """The rule's preconditions: the dialogue starts with a user turn, tool results follow a call set,
    and every action is prompted by a user turn or tool results (so each instance's prompt ends there)."""
    where = f'{d.source} dialogue {d.dialogue_id}'
    if not d.turns or d.turns[0][0] != 'user':
        raise BadRow(BAD_DIALOGUE, f'{where}: does not start with a user turn')
    if not any(kind in ACTIONS for kind, _ in d.turns):
        raise BadRow(BAD_DIALOGUE, f'{where}: no assistant action')
    prev = None
    for i, (kind, _) in enumerate(d.turns):
        if kind == 'tool' and prev != 'calls':
            raise BadRow(BAD_DIALOGUE, f'{where}: turn {i} holds tool results without a call before it')
        if kind in ACTIONS and prev not in ('user', 'tool'):
            raise BadRow(BAD_DIALOGUE, f'{where}: turn {i} is an action that follows {prev!r}, not a user/tool turn')
        prev = kind


def decompose(d: Dialogue) -> list[dict]:
    """SWiRL decomposition: one row per assistant action, context = everything before it."""
    validate_turn_order(d)
    where = f'{d.source} dialogue {d.dialogue_id}'
    tools_json = jsonvalue.dumps(d.tools, f'{where} tools')
    context: list[dict] = [{'role': 'system', 'content': d.system}] if d.system else []
    rows, step = [], 0
    for kind, value in d.turns:
        if kind in ACTIONS:
            rows.append({
                'messages': [dict(m) for m in context],
                'tools': tools_json,
                'ground_truth': jsonvalue.dumps(value if kind == 'calls' else [], f'{where} step {step}'),
                'reference_rationale': '',
                'reference_answer': value if kind == 'answer' else '',
                'source': d.source,
                'dialogue_id': d.dialogue_id,
                'step': step,
            })
            step += 1
        context.extend(turn_messages(kind, value))
    return rows


def row_key(row: dict) -> tuple[str, str, int]:
    """Rows are identified by (source, dialogue_id, step) everywhere (resume, batch import)."""
    return (row['source'], str(row['dialogue_id']), int(row['step']))
