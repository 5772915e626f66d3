"""A small tokenizer for ToolACE's Python-call syntax: `[Get Weather(city="Oslo"), f2(a=[1, 2])]`.

Function names may hold spaces, dots and hyphens (so `ast.parse` alone cannot read them); argument values
are Python literals (JSON's true/false/null accepted too) and may contain commas, parentheses, brackets and
quotes inside strings. Every call must be `name(key=value, ...)`; anything else is a syntax error.
"""
from __future__ import annotations

import ast
import re
from typing import Any

from . import jsonvalue
from .errors import CALL_SYNTAX, BadRow

_OPEN, _CLOSE = '([{', ')]}'
_CALL_START = re.compile(r'^\[\s*[^\[\]()"\'=,]+\(')
_JSON_WORDS = {'true': 'True', 'false': 'False', 'null': 'None'}


def looks_like_calls(text: str) -> bool:
    """An assistant turn is meant as a call set when it starts `[name(`; otherwise it is a text answer.
    The closing `]` is not asked for here: a call set that lacks it is a syntax error (`parse_calls`),
    never a text-answer target."""
    return bool(_CALL_START.match(text.strip()))


def _show(s: str, limit: int = 120) -> str:
    """`repr` of hostile text, cut to `limit` characters for messages."""
    return repr(s) if len(s) <= limit else repr(s[:limit]) + f'... ({len(s)} chars)'


def _scan_value(s: str, pos: int) -> int:
    """Index just past a literal starting at `pos`: stops at `,` or `)` at bracket depth 0, outside strings."""
    stack, quote = [], None
    i = pos
    while i < len(s):
        ch = s[i]
        if quote:
            if ch == '\\':
                i += 2
                continue
            if ch == quote:
                quote = None
        elif ch in '"\'':
            quote = ch
        elif ch in _OPEN:
            stack.append(_CLOSE[_OPEN.index(ch)])
        elif ch in _CLOSE:
            if not stack:
                if ch == ')':
                    return i
                raise BadRow(CALL_SYNTAX, f'unexpected {ch!r} at {i} in {_show(s)}')
            if stack.pop() != ch:
                raise BadRow(CALL_SYNTAX, f'mismatched {ch!r} at {i} in {_show(s)}')
        elif ch == ',' and not stack:
            return i
        i += 1
    raise BadRow(CALL_SYNTAX, f'unterminated argument value in {_show(s)}')


def _python_literal(text: str) -> tuple[bool, Any]:
    try:
        return True, ast.literal_eval(text)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False, None


def _literal(text: str) -> Any:
    """A Python literal (or JSON, or JSON words mixed into Python) that is plain JSON data; sets, bytes,
    complex numbers, NaN/1e400, deep nesting or over-long integers are a BadRow (`jsonvalue`)."""
    text = text.strip()
    where = f'argument value {_show(text)}'
    ok, value = _python_literal(text)
    if ok:
        return jsonvalue.check_value(value, where)
    try:
        return jsonvalue.loads(text, where)
    except BadRow:
        pass
    # mixed forms such as {"a": true}: swap JSON words outside strings, then retry
    swapped = re.sub(r'("(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\')|\b(true|false|null)\b',
                     lambda m: m.group(1) or _JSON_WORDS[m.group(2)], text)
    ok, value = _python_literal(swapped)
    if ok:
        return jsonvalue.check_value(value, where)
    raise BadRow(CALL_SYNTAX, f'{where} is not a literal')


def parse_calls(text: str) -> list[dict]:
    """`[f(a=1), g h(b="x, (y)")]` -> `[{"name": "f", "arguments": {"a": 1}}, {"name": "g h", ...}]`."""
    s = text.strip()
    if not (s.startswith('[') and s.endswith(']')):
        raise BadRow(CALL_SYNTAX, f'call list not enclosed in [...]: {_show(s)}')
    calls, pos, end = [], 1, len(s) - 1
    while True:
        while pos < end and s[pos] in ' \n\t,':
            pos += 1
        if pos >= end:
            break
        paren = s.find('(', pos)
        if paren < 0 or paren > end:
            raise BadRow(CALL_SYNTAX, f'call without "(" at {pos} in {_show(s)}')
        name = s[pos:paren].strip()
        if not name or any(c in name for c in '[]()"\'=,'):
            raise BadRow(CALL_SYNTAX, f'bad function name {name!r} in {_show(s)}')
        pos, args = paren + 1, {}
        while True:
            while pos < end and s[pos] in ' \n\t':
                pos += 1
            if pos >= end:
                raise BadRow(CALL_SYNTAX, f'call {name!r} not closed in {_show(s)}')
            if s[pos] == ')':
                pos += 1
                break
            eq = s.find('=', pos)
            key = s[pos:eq].strip() if eq >= 0 else ''
            if not key.isidentifier():
                raise BadRow(CALL_SYNTAX, f'call {name!r}: expected key=value at {pos} in {_show(s)}')
            stop = _scan_value(s[:end], eq + 1)
            args[key] = _literal(s[eq + 1:stop])
            pos = stop + 1 if s[stop] == ',' else stop
        calls.append({'name': name, 'arguments': args})
    if not calls:
        raise BadRow(CALL_SYNTAX, f'empty call list {_show(s)}')
    return calls
