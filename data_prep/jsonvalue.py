"""JSON in and out of raw rows, where hostile input is stopped: every failure is a `BadRow` naming the field.

Raw datasets hold JSON strings (xLAM `answers`, tool lists, tool results) and Python literals (ToolACE calls).
Both can carry what JSON cannot: `NaN` / `Infinity` / `1e400`, sets `{1, 2}`, bytes `b"x"`, complex `1j`,
non-string keys, nesting deep enough to overflow the parser, integers over Python's 4300-digit limit.
`loads` and `check_value` refuse them at the parser; `dumps` is the one writer of JSON columns
(`allow_nan=False`), so invalid JSON never reaches `ground_truth` / `tools` / message contents.
"""
from __future__ import annotations

import json
import math
from typing import Any

from .errors import BROKEN_JSON, NOT_JSON, BadRow

# Deeper values are not tool arguments or results but degenerate input (and would exhaust the C stack of
# the parsers / jsonschema further on).
MAX_DEPTH = 100


def _no_constant(name: str) -> Any:
    raise ValueError(f'{name} is not JSON')


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f'{text} overflows to {value}')
    return value


def loads(text: str, where: str) -> Any:
    """`json.loads` that refuses NaN/Infinity/1e400 and oversized input; any failure -> BadRow(BROKEN_JSON)."""
    try:
        value = json.loads(text, parse_constant=_no_constant, parse_float=_finite_float)
    except RecursionError:
        raise BadRow(BROKEN_JSON, f'{where}: nested too deep to parse') from None
    except ValueError as exc:  # JSONDecodeError, NaN/Infinity, int over the 4300-digit limit
        raise BadRow(BROKEN_JSON, f'{where}: {str(exc)[:200]}') from None
    # Decoded JSON is plain data by construction (str keys, finite numbers: the hooks above); nesting that
    # is deep but parseable fails later (RecursionError), and the per-row boundary counts that as a skip.
    return value


def check_value(value: Any, where: str) -> Any:
    """Raise BadRow(NOT_JSON) unless `value` is plain JSON data (tuples count as arrays): str / bool /
    None / int / finite float / list / dict with str keys, at most MAX_DEPTH levels deep. Iterative."""
    stack = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise BadRow(NOT_JSON, f'{where}: nested deeper than {MAX_DEPTH} levels')
        if node is None or isinstance(node, (str, bool, int)):
            continue
        if isinstance(node, float):
            if not math.isfinite(node):
                raise BadRow(NOT_JSON, f'{where}: {node} is not a JSON number')
        elif isinstance(node, (list, tuple)):
            stack.extend((x, depth + 1) for x in node)
        elif isinstance(node, dict):
            for k, v in node.items():
                if not isinstance(k, str):
                    raise BadRow(NOT_JSON, f'{where}: object key {k!r} is not a string')
                stack.append((v, depth + 1))
        else:
            raise BadRow(NOT_JSON, f'{where}: {type(node).__name__} value {str(node)[:60]!r} is not JSON')
    return value


def dumps(value: Any, where: str) -> str:
    """The JSON text of a column (`ensure_ascii=False`, `allow_nan=False`); anything else -> BadRow(NOT_JSON)."""
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False)
    except RecursionError:
        raise BadRow(NOT_JSON, f'{where}: nested too deep to write') from None
    except (TypeError, ValueError) as exc:  # sets/bytes/complex, NaN/Infinity, int over the digit limit
        raise BadRow(NOT_JSON, f'{where}: {str(exc)[:200]}') from None


def raw_decode(text: str, start: int, where: str) -> tuple[Any, int]:
    """The JSON value that starts at `text[start]` and the index after it (`json.JSONDecoder.raw_decode`),
    with the refusals of `loads`."""
    decoder = json.JSONDecoder(parse_constant=_no_constant, parse_float=_finite_float)
    try:
        value, stop = decoder.raw_decode(text, start)
    except RecursionError:
        raise BadRow(BROKEN_JSON, f'{where}: nested too deep to parse') from None
    except ValueError as exc:
        raise BadRow(BROKEN_JSON, f'{where}: {str(exc)[:200]}') from None
    return value, stop
