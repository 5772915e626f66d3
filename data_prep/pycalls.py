"""A small tokenizer for ToolACE's Python-call syntax: `[Get Weather(city="Oslo"), f2(a=[1, 2])]`.

Function names may hold spaces, dots and hyphens (so `ast.parse` alone cannot read them); argument values
are Python literals (JSON's true/false/null accepted too) and may contain commas, parentheses, brackets and
quotes inside strings. Every call must be `name(key=value, ...)`; anything else is a syntax error.
"""
from __future__ import annotations

import ast
import json
import re
from typing import Any

from .errors import CALL_SYNTAX, BadRow

_OPEN, _CLOSE = '([{', ')]}'
_CALL_START = re.compile(r'^\[\s*[^\[\]()"\'=,]+\(')
_JSON_WORDS = {'true': 'True', 'false': 'False', 'null': 'None'}


def looks_like_calls(text: str) -> bool:
    """An assistant turn is a call set when it reads `[name(` ... `]`; otherwise it is a text answer."""
    s = text.strip()
    return bool(_CALL_START.match(s)) and s.endswith(']')


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
                raise BadRow(CALL_SYNTAX, f'unexpected {ch!r} at {i} in {s!r}')
            if stack.pop() != ch:
                raise BadRow(CALL_SYNTAX, f'mismatched {ch!r} at {i} in {s!r}')
        elif ch == ',' and not stack:
            return i
        i += 1
    raise BadRow(CALL_SYNTAX, f'unterminated argument value in {s!r}')


def _literal(text: str) -> Any:
    text = text.strip()
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        pass
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    # mixed forms such as {"a": true}: swap JSON words outside strings, then retry
    swapped = re.sub(r'("(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\')|\b(true|false|null)\b',
                     lambda m: m.group(1) or _JSON_WORDS[m.group(2)], text)
    try:
        return ast.literal_eval(swapped)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        raise BadRow(CALL_SYNTAX, f'argument value {text!r} is not a literal') from None


def parse_calls(text: str) -> list[dict]:
    """`[f(a=1), g h(b="x, (y)")]` -> `[{"name": "f", "arguments": {"a": 1}}, {"name": "g h", ...}]`."""
    s = text.strip()
    if not (s.startswith('[') and s.endswith(']')):
        raise BadRow(CALL_SYNTAX, f'call list not enclosed in [...]: {s!r}')
    calls, pos, end = [], 1, len(s) - 1
    while True:
        while pos < end and s[pos] in ' \n\t,':
            pos += 1
        if pos >= end:
            break
        paren = s.find('(', pos)
        if paren < 0 or paren > end:
            raise BadRow(CALL_SYNTAX, f'call without "(" at {pos} in {s!r}')
        name = s[pos:paren].strip()
        if not name or any(c in name for c in '[]()"\'=,'):
            raise BadRow(CALL_SYNTAX, f'bad function name {name!r} in {s!r}')
        pos, args = paren + 1, {}
        while True:
            while pos < end and s[pos] in ' \n\t':
                pos += 1
            if pos >= end:
                raise BadRow(CALL_SYNTAX, f'call {name!r} not closed in {s!r}')
            if s[pos] == ')':
                pos += 1
                break
            eq = s.find('=', pos)
            key = s[pos:eq].strip() if eq >= 0 else ''
            if not key.isidentifier():
                raise BadRow(CALL_SYNTAX, f'call {name!r}: expected key=value at {pos} in {s!r}')
            stop = _scan_value(s[:end], eq + 1)
            args[key] = _literal(s[eq + 1:stop])
            pos = stop + 1 if s[stop] == ',' else stop
        calls.append({'name': name, 'arguments': args})
    if not calls:
        raise BadRow(CALL_SYNTAX, f'empty call list {s!r}')
    return calls
