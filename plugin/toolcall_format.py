"""The tool-call text format (hermes / Qwen3 native) that the policy writes and the rewards, the judge and the
SFT export read: ``<think>...</think>`` then ``<tool_call>\n{"name": ..., "arguments": {...}}\n</tool_call>``
blocks or a plain text answer.

No torch, no ms-swift. :func:`parse_completion` splits a completion into reasoning, calls and answer and gives
the Eq. 15 structure verdict; :func:`render_tool_calls` writes calls in the same text; :func:`normalize_call`
and :func:`loads_json` read one call strictly. Decisions taken where the paper is silent are listed in
docs/rewards.md.

The completion is hostile input (the policy is optimised against the rewards built on this): nothing here
raises on it. Any text that cannot be read as calls is *unparseable*, and the work done on one completion is
bounded (at most :data:`MAX_COMPLETION_CHARS` characters and :data:`MAX_TOOL_CALLS` blocks are read, JSON
integers of at most :data:`MAX_NUMBER_CHARS` digits, nesting as deep as Python's recursion limit lets
``json`` go): a few milliseconds per completion at worst.
"""
from __future__ import annotations

import json
import re
import sys
import unicodedata
from dataclasses import dataclass
from typing import Any, Iterable, Optional

THINK_OPEN, THINK_CLOSE = '<think>', '</think>'
CALL_OPEN, CALL_CLOSE = '<tool_call>', '</tool_call>'
# Characters that show nothing on their own: a text answer made only of them (and whitespace) is empty.
_INVISIBLE_CATEGORIES = frozenset({'Cc', 'Cf', 'Mn', 'Me', 'Zs', 'Zl', 'Zp'})
_BLANK_LETTERS = frozenset('\u115f\u1160\u3164\uffa0\u2800')
# A longer completion is unparseable without being read: ~50k tokens, 50x the recipes' 1024-token budget.
# The worst text just under it (100k small JSON numbers) takes ~10-20 ms (shared 2-core box); 1 MB of JSON
# would take ~70-100 ms.
MAX_COMPLETION_CHARS = 200_000
# A completion with more tool_call blocks than this is unparseable: no training target has that many
# calls (the recipes' 1024-token budget holds ~60 short ones), and it bounds the work per completion.
MAX_TOOL_CALLS = 64
# Longest JSON integer literal read (Python's own default int <-> str limit; kept if a process lifts it).
MAX_NUMBER_CHARS = 4300
# A float literal can overflow to inf only with a 3-digit exponent or 309+ digits before it: both are
# looked for (linear scans) before the parsed value is checked.
_MAY_OVERFLOW = re.compile(r'[eE][-+]?\d\d\d')
_LONG_RUN = re.compile(r'(?<!\d)\d{309}')


@dataclass
class ParsedCompletion:
    reasoning: str
    calls: Optional[list]  # [{"name": str, "arguments": dict}], [] for a text answer, None if unparseable
    answer: str
    format_ok: bool
    error: Optional[str] = None


# ---------------------------------------------------------------- tool-call normalisation

def _reject_constant(name: str):
    raise ValueError(f'{name} is not JSON')


def _bounded_int(s: str) -> int:
    if len(s) > MAX_NUMBER_CHARS:
        raise ValueError(f'an integer of {len(s)} digits')
    return int(s)


def loads_json(text: str) -> Any:
    """``json.loads`` for text a model (or a data file) wrote; *every* failure is a ``ValueError``.

    Strict JSON (RFC 8259) that can be written back: ``NaN`` / ``Infinity`` literals, numbers that
    overflow a double (``1e400``), integers longer than :data:`MAX_NUMBER_CHARS` digits and lone UTF-16
    surrogates (raw or ``\\udXXX`` escapes: not UTF-8) are refused; nesting deeper than the interpreter's
    recursion limit (``RecursionError``) is "nested too deeply", not a crash. No per-number Python
    callback (they cost ~0.3 us a number): the result is re-encoded (``json.dumps(allow_nan=False)``, UTF-8)
    only when the text holds a literal that can overflow or a surrogate escape.
    """
    limit = sys.get_int_max_str_digits() if hasattr(sys, 'get_int_max_str_digits') else 0
    # Python refuses long int literals itself (4300 digits by default); check by hand only if that is off
    careful = {} if 0 < limit <= MAX_NUMBER_CHARS else {'parse_int': _bounded_int}
    try:
        text.encode('utf-8')  # a raw lone surrogate: UnicodeEncodeError
        obj = json.loads(text, parse_constant=_reject_constant, **careful)
        if _MAY_OVERFLOW.search(text) or _LONG_RUN.search(text) or '\\ud' in text or '\\uD' in text:
            json.dumps(obj, ensure_ascii=False, allow_nan=False).encode('utf-8')  # inf; escaped surrogates
    except json.JSONDecodeError as e:
        raise ValueError(f'not valid JSON ({e.msg} at char {e.pos})') from None
    except UnicodeEncodeError:
        raise ValueError('not valid JSON (a lone UTF-16 surrogate)') from None
    except RecursionError:
        raise ValueError('not valid JSON (nested too deeply)') from None
    except (ValueError, OverflowError, MemoryError) as e:
        raise ValueError(f'not valid JSON ({str(e)[:100]})') from None
    return obj


def _describe(x: Any) -> str:
    """A short, safe description of a value for an error message (no repr of a deep or huge object)."""
    if isinstance(x, str):
        return repr(x[:80])
    if x is None or isinstance(x, (bool, int, float)):
        return repr(x) if not isinstance(x, int) or abs(x) < 10 ** 20 else 'a huge integer'
    return f'a {type(x).__name__}'


def normalize_call(obj: Any) -> dict:
    """One call object -> ``{"name": str, "arguments": dict}``.

    Accepts ``"parameters"`` as a synonym of ``"arguments"`` and arguments given as a JSON string;
    missing / null arguments mean ``{}``. Raises ``ValueError`` (and only that) naming what is wrong.
    """
    if isinstance(obj, str):
        obj = loads_json(obj)
    if not isinstance(obj, dict):
        raise ValueError(f'tool call must be a JSON object, got {type(obj).__name__}')
    name = obj.get('name')
    if not isinstance(name, str) or not name:
        raise ValueError(f'tool call needs a non-empty string "name", got {_describe(name)}')
    args = obj['arguments'] if 'arguments' in obj else obj.get('parameters')
    if args is None:
        args = {}
    if isinstance(args, str):
        try:
            args = loads_json(args) if args.strip() else {}
        except ValueError as e:
            raise ValueError(f'arguments of {name[:80]!r} are a string that is {e}') from None
    if not isinstance(args, dict):
        raise ValueError(f'arguments of {name[:80]!r} must be a JSON object, got {type(args).__name__}')
    return {'name': name, 'arguments': args}


def render_tool_calls(calls: Iterable[dict]) -> str:
    """Native hermes text of a call set: ``<tool_call>\\n{json}\\n</tool_call>`` blocks joined by "\\n".

    Same JSON layout as ms-swift's hermes agent template (``json.dumps(..., ensure_ascii=False)``).
    ``parse_completion(render_tool_calls(x)).calls == x`` for normalised calls ``x``, whatever tag text
    their strings hold; a call whose name, key or value holds ``</tool_call>`` cannot be written so that a
    hermes parser reads it back (the block would end there) and raises ``ValueError``.
    """
    blocks = []
    for call in calls:
        call = normalize_call(call)
        body = json.dumps(call, ensure_ascii=False)
        if CALL_CLOSE in body:
            raise ValueError(f'a string of call {call["name"][:80]!r} holds {CALL_CLOSE!r}: no hermes parser '
                             'can read the call back')
        blocks.append(f'{CALL_OPEN}\n{body}\n{CALL_CLOSE}')
    return '\n'.join(blocks)


def parse_ground_truth(gt: Any) -> list:
    """The ``ground_truth`` column (JSON string or list of calls) -> list of normalised calls."""
    if isinstance(gt, str):
        try:
            gt = loads_json(gt)
        except ValueError as e:
            raise ValueError(f'ground_truth is {e}: {gt[:80]!r}') from None
    if not isinstance(gt, (list, tuple)):
        raise ValueError(f'ground_truth must be a list of calls, got {type(gt).__name__}')
    out = []
    for i, call in enumerate(gt):
        try:
            out.append(normalize_call(call))
        except ValueError as e:
            raise ValueError(f'ground_truth[{i}]: {e}') from None
    return out


# ---------------------------------------------------------------- Eq. 15: structure

def _visible(text: str) -> bool:
    """True if the text shows anything: a character that is not whitespace, not a format / control character
    (``\\u200b``, ``\\ufeff``, ``\\u2060``, soft hyphen, NUL, bidi marks...), not a lone combining mark and
    not a blank letter (Hangul fillers, braille blank). Unassigned and private-use code points count as
    visible (they render as boxes). Bounded work on hostile text: only the distinct code points are looked at
    (found with numpy: a few ms for 200k characters), and fewer than 2,300 code points are invisible."""
    head = text.lstrip()[:1]
    if not head:
        return False
    if _shows(head):
        return True  # the usual answer: decided by its first character
    import numpy as np
    points = np.unique(np.frombuffer(text.encode('utf-32-le', 'surrogatepass'), dtype=np.uint32))
    return any(_shows(chr(c)) for c in points.tolist())


def _shows(ch: str) -> bool:
    return not ch.isspace() and ch not in _BLANK_LETTERS and unicodedata.category(ch) not in _INVISIBLE_CATEGORIES


def parse_completion(text: str) -> ParsedCompletion:
    """Split a completion into reasoning, tool calls / text answer, and the Eq. 15 verdict.

    ``calls`` is None (unparseable: S_exec = 0) when the think block is unclosed, a tool_call block is
    unclosed / stray or does not hold a valid call object (see :func:`loads_json`), there are more than
    :data:`MAX_TOOL_CALLS` blocks, the text is longer than :data:`MAX_COMPLETION_CHARS`, or the text
    answer is empty or invisible (only format / control characters). Never raises on a str. Layout errors
    that leave every call readable (text between or after blocks, text before ``<think>``, repeated think
    tags) only fail the format.

    Tag text inside JSON values is data (as for vLLM's hermes parser and ms-swift's hermes template, which
    read ``<tool_call>(.*?)</tool_call>``): a block's body runs from its ``<tool_call>`` to the next
    ``</tool_call>``, so a value may hold ``<tool_call>``, ``<think>`` or ``</think>``; only a value holding
    ``</tool_call>`` cuts its block short (unreadable, for those parsers too). Think tags count only in
    the text outside the blocks.
    """
    if not isinstance(text, str):
        raise TypeError(f'completion must be str, got {type(text).__name__}')
    if len(text) > MAX_COMPLETION_CHARS:
        return ParsedCompletion('', None, '', False, f'longer than {MAX_COMPLETION_CHARS} characters')
    # Only think tags before the first "<tool_call>" open a think block: one inside a call's JSON value
    # (`search(q="what does <think> mean")`) is data; tags inside the think block are reasoning text.
    first_call = text.find(CALL_OPEN)
    head = text if first_call < 0 else text[:first_call]
    start = head.find(THINK_OPEN)
    if start >= 0:
        end = text.find(THINK_CLOSE, start)
        if end < 0:
            return ParsedCompletion(text[start + len(THINK_OPEN):].strip(), None, '', False, 'unclosed <think>')
        errors = ['text before <think>'] if text[:start].strip() else []
        return _parse_after_think(text[start + len(THINK_OPEN):end].strip(), text[end + len(THINK_CLOSE):],
                                  True, errors)
    end = text.find(THINK_CLOSE)
    if end < 0:
        return _parse_after_think('', text, False, [])
    # a lone "</think>": the chat template pre-filled "<think>" in the prompt (Qwen3 thinking models) ...
    prefilled = _parse_after_think(text[:end].strip(), text[end + len(THINK_CLOSE):], True, [])
    if first_call < 0 or first_call > end or prefilled.calls is not None:
        return prefilled
    # ... unless it sits in a call's value (a "<tool_call>" comes first) and only that reading is readable
    plain = _parse_after_think('', text, False, [])
    return plain if plain.calls is not None else prefilled


def _parse_after_think(reasoning: str, rest: str, has_think: bool, errors: list) -> ParsedCompletion:
    """The calls / answer after the think block (``rest``), Eq. 15 layout errors added to ``errors``."""
    first = rest.find(CALL_OPEN)
    if first < 0:
        answer = rest.strip()
        if not has_think:
            reasoning = answer
        if _has_think_tag(rest):
            errors.append('more than one think block')
        if CALL_CLOSE in rest:
            return ParsedCompletion(reasoning, None, answer, False, 'stray </tool_call>')
        if not _visible(answer):
            return ParsedCompletion(reasoning, None, '', False, 'empty answer')
        return _result(reasoning, [], answer, errors)

    if not has_think:
        reasoning = rest[:first].strip()  # free-text reasoning: may mention any tag
    elif CALL_CLOSE in rest[:first]:
        return ParsedCompletion(reasoning, None, '', False, 'stray </tool_call>')
    if _has_think_tag(rest[:first]):
        errors.append('more than one think block')
    if rest.count(CALL_OPEN, first) > MAX_TOOL_CALLS:
        return ParsedCompletion(reasoning, None, '', False, f'more than {MAX_TOOL_CALLS} tool_call blocks')
    calls, pos = [], first
    while pos >= 0:  # pos: the next "<tool_call>"
        body = pos + len(CALL_OPEN)
        close = rest.find(CALL_CLOSE, body)
        if close < 0:
            return ParsedCompletion(reasoning, None, '', False, 'unclosed <tool_call>')
        try:
            calls.append(normalize_call(rest[body:close]))
        except ValueError as e:
            return ParsedCompletion(reasoning, None, '', False, f'tool_call block {len(calls)}: {e}')
        after = close + len(CALL_CLOSE)
        pos = rest.find(CALL_OPEN, after)
        gap = rest[after:] if pos < 0 else rest[after:pos]
        if CALL_CLOSE in gap:
            return ParsedCompletion(reasoning, None, '', False, 'stray </tool_call>')
        if gap.strip():
            errors.append('text after the last tool_call block' if pos < 0 else 'text between tool_call blocks')
            if _has_think_tag(gap):
                errors.append('more than one think block')
    return _result(reasoning, calls, '', errors)


def _has_think_tag(text: str) -> bool:
    return THINK_OPEN in text or THINK_CLOSE in text


def _result(reasoning, calls, answer, errors) -> ParsedCompletion:
    return ParsedCompletion(reasoning, calls, answer, not errors, '; '.join(errors) or None)
