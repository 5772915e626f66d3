"""Rule-based outcome reward of AWPO (paper Sec. 3.2, Eqs. 14-19).

No torch, no ms-swift (scipy for the optimal pairing). The ms-swift glue lives in ``plugin/reward_funcs.py``.

    R_out = S_format + S_exec                                    (Eq. 14), in [0, 2]
    S_format = 1 if the structure is valid else 0                (Eq. 15)
    S_exec = (r_name + r_para + r_value) / (1 + |T| + sum |v(T_i)|)  (Eqs. 16-19)

Completion format (hermes / Qwen3 native): an optional ``<think>...</think>`` (or free text), then
either one or more ``<tool_call>\\n{"name": ..., "arguments": {...}}\\n</tool_call>`` blocks or a
plain text answer. Decisions taken where the paper is silent are listed in the README ("Outcome reward").

The completion is hostile input (the policy is optimised against this code): nothing here raises on it.
Any text that cannot be read as calls is *unparseable* (S_format = S_exec = 0), and the work done on one
completion is bounded (at most :data:`MAX_COMPLETION_CHARS` characters and :data:`MAX_TOOL_CALLS` blocks
are read, JSON integers of at most :data:`MAX_NUMBER_CHARS` digits, nesting as deep as Python's
recursion limit lets ``json`` go): a few milliseconds per completion at worst.
"""
from __future__ import annotations

import json
import re
import sys
from collections import Counter
from dataclasses import dataclass
from typing import Any, Iterable, Optional

import numpy as np
from scipy.optimize import linear_sum_assignment

from plugin.config import NAME_MATCH_MODES  # 'multiset' (default, hedge-proof) | 'set' (paper-literal)

THINK_OPEN, THINK_CLOSE = '<think>', '</think>'
CALL_OPEN, CALL_CLOSE = '<tool_call>', '</tool_call>'
_TAG_RE = re.compile(r'</?tool_call>')
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
    ``parse_completion(render_tool_calls(x)).calls == x`` for normalised calls ``x``.
    """
    blocks = []
    for call in calls:
        call = normalize_call(call)
        blocks.append(f'{CALL_OPEN}\n{json.dumps(call, ensure_ascii=False)}\n{CALL_CLOSE}')
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

def parse_completion(text: str) -> ParsedCompletion:
    """Split a completion into reasoning, tool calls / text answer, and the Eq. 15 verdict.

    ``calls`` is None (unparseable: S_exec = 0) when the think block is unclosed, a tool_call block is
    unclosed / stray or does not hold a valid call object (see :func:`loads_json`), there are more than
    :data:`MAX_TOOL_CALLS` blocks, the text is longer than :data:`MAX_COMPLETION_CHARS`, or the text
    answer is empty. Never raises on a str. Layout errors
    that leave every call readable (text between or after blocks, text before ``<think>``, repeated think
    tags) only fail the format.
    """
    if not isinstance(text, str):
        raise TypeError(f'completion must be str, got {type(text).__name__}')
    if len(text) > MAX_COMPLETION_CHARS:
        return ParsedCompletion('', None, '', False, f'longer than {MAX_COMPLETION_CHARS} characters')
    errors = []
    reasoning, rest, has_think = '', text, False
    n_open, n_close = text.count(THINK_OPEN), text.count(THINK_CLOSE)
    if n_open:
        start = text.index(THINK_OPEN)
        end = text.find(THINK_CLOSE, start)
        if end < 0:
            return ParsedCompletion(text[start + len(THINK_OPEN):].strip(), None, '', False, 'unclosed <think>')
        if text[:start].strip():
            errors.append('text before <think>')
        reasoning, rest, has_think = text[start + len(THINK_OPEN):end].strip(), text[end + len(THINK_CLOSE):], True
    elif n_close:  # the chat template pre-filled "<think>" in the prompt (Qwen3 thinking models)
        end = text.index(THINK_CLOSE)
        reasoning, rest, has_think = text[:end].strip(), text[end + len(THINK_CLOSE):], True
    if n_open > 1 or n_close > 1:
        errors.append('more than one think block')

    first = rest.find(CALL_OPEN)
    if first < 0:
        answer = rest.strip()
        if not has_think:
            reasoning = answer
        if CALL_CLOSE in rest:
            return ParsedCompletion(reasoning, None, answer, False, 'stray </tool_call>')
        if not answer:
            return ParsedCompletion(reasoning, None, '', False, 'empty answer')
        return _result(reasoning, [], answer, errors)

    if not has_think:
        reasoning = rest[:first].strip()
    if rest.count(CALL_OPEN, first) > MAX_TOOL_CALLS:
        return ParsedCompletion(reasoning, None, '', False, f'more than {MAX_TOOL_CALLS} tool_call blocks')
    calls, pos, prev_end = [], -1, first  # pos: start of the open block's body, -1 when none is open
    for m in _TAG_RE.finditer(rest, first):
        if m.group() == CALL_OPEN:
            if pos >= 0:  # "<tool_call>" inside an open block
                return ParsedCompletion(reasoning, None, '', False, 'nested or unclosed <tool_call>')
            if rest[prev_end:m.start()].strip():  # a new block: only whitespace since the last one
                errors.append('text between tool_call blocks')
            pos = m.end()
        else:
            if pos < 0:
                return ParsedCompletion(reasoning, None, '', False, 'stray </tool_call>')
            try:
                calls.append(normalize_call(rest[pos:m.start()]))
            except ValueError as e:
                return ParsedCompletion(reasoning, None, '', False, f'tool_call block {len(calls)}: {e}')
            pos, prev_end = -1, m.end()
    if pos >= 0:
        return ParsedCompletion(reasoning, None, '', False, 'unclosed <tool_call>')
    if rest[prev_end:].strip():
        errors.append('text after the last tool_call block')
    return _result(reasoning, calls, '', errors)


def _result(reasoning, calls, answer, errors) -> ParsedCompletion:
    return ParsedCompletion(reasoning, calls, answer, not errors, '; '.join(errors) or None)


def format_score(text: str) -> float:
    """S_format (Eq. 15): 1.0 if the structure is valid, else 0.0."""
    return 1.0 if parse_completion(text).format_ok else 0.0


# ---------------------------------------------------------------- Eqs. 16-19: execution

def json_equal(a: Any, b: Any) -> bool:
    """Type-strict JSON equality (Eq. 18's indicator): ``1 == 1.0`` (one JSON number type) but
    ``1 != "1"``, ``1 != True``, ``0 != None``; lists ordered, objects by key set, recursively.
    Iterative (an explicit stack), so any nesting depth is compared without ``RecursionError``."""
    stack = [(a, b)]
    while stack:
        a, b = stack.pop()
        if isinstance(a, bool) or isinstance(b, bool):
            if not (type(a) is bool and type(b) is bool and a == b):
                return False
        elif isinstance(a, (int, float)) and isinstance(b, (int, float)):
            if a != b:
                return False
        elif isinstance(a, str) or isinstance(b, str):
            if not (isinstance(a, str) and isinstance(b, str) and a == b):
                return False
        elif a is None or b is None:
            if not (a is None and b is None):
                return False
        elif isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
            if len(a) != len(b):
                return False
            stack.extend(zip(a, b))
        elif isinstance(a, dict) and isinstance(b, dict):
            if a.keys() != b.keys():
                return False
            stack.extend((v, b[k]) for k, v in a.items())
        else:
            return False
    return True


def jaccard(a: set, b: set) -> float:
    """|A & B| / |A | B|, with 0/0 := 1 (two argument-free calls agree perfectly)."""
    union = a | b
    return len(a & b) / len(union) if union else 1.0


def name_score(gold_names: list, pred_names: list, name_match: str = 'multiset') -> float:
    """r_name (Eq. 16) for non-empty gold: Jaccard of the tool names.

    ``'multiset'`` (default): names counted with repeats, |N_T & N_P| / |N_T | N_P| over Counters (as
    ToolRL's reward code does), so every predicted call beyond the gold ones lowers r_name; ``'set'``:
    the paper-literal set reading, where a repeated or extra guess of a gold name costs nothing.
    """
    if name_match == 'set':
        return jaccard(set(gold_names), set(pred_names))
    if name_match != 'multiset':
        raise ValueError(f'name_match must be one of {NAME_MATCH_MODES}, got {name_match!r}')
    ct, cp = Counter(gold_names), Counter(pred_names)
    union = sum((ct | cp).values())
    return sum((ct & cp).values()) / union if union else 1.0


def para_score(gold_args: dict, pred_args: dict) -> float:
    """One gold call's term of r_para (Eq. 17): Jaccard of parameter-name sets."""
    return jaccard(set(gold_args), set(pred_args))


def value_score(gold_args: dict, pred_args: dict) -> int:
    """One gold call's term of r_value (Eq. 18): gold parameters whose value the prediction matches."""
    return sum(1 for k, v in gold_args.items() if k in pred_args and json_equal(v, pred_args[k]))


def _pair_score(gold: dict, pred: dict) -> float:
    return para_score(gold['arguments'], pred['arguments']) + value_score(gold['arguments'], pred['arguments'])


def pair_calls(pred: list, gold: list) -> list:
    """For every gold call, the index of its paired predicted call (same name) or None.

    Each predicted call is used at most once. Within a name, the pairing maximises the summed
    r_para + r_value terms (Eqs. 17-18) over all one-to-one pairings, at every group size: an optimal
    assignment (``scipy.optimize.linear_sum_assignment``). The maximum does not depend on the order of
    either list, so neither does S_exec; which of several equally good pairings is returned may.
    """
    pairing = [None] * len(gold)
    by_name: dict = {}
    for j, p in enumerate(pred):
        by_name.setdefault(p['name'], []).append(j)
    gold_by_name: dict = {}
    for i, g in enumerate(gold):
        gold_by_name.setdefault(g['name'], []).append(i)
    for name, gi in gold_by_name.items():
        pj = by_name.get(name)
        if not pj:
            continue
        if len(gi) == len(pj) == 1:  # one call of this name on each side: the only one-to-one pairing
            pairing[gi[0]] = pj[0]
            continue
        score = np.array([[_pair_score(gold[i], pred[j]) for j in pj] for i in gi], dtype=float)
        rows, cols = linear_sum_assignment(score, maximize=True)
        for r, c in zip(rows, cols):
            pairing[gi[r]] = pj[c]
    return pairing


def exec_terms(pred: list, gold: list, name_match: str = 'multiset') -> tuple:
    """(r_name, r_para, r_value, denominator) of Eqs. 16-19 for non-empty gold (normalised calls)."""
    r_name = name_score([g['name'] for g in gold], [p['name'] for p in pred], name_match)  # Eq. 16
    pairing = pair_calls(pred, gold)
    r_para = r_value = 0.0
    for g, j in zip(gold, pairing):
        if j is not None:
            r_para += para_score(g['arguments'], pred[j]['arguments'])  # Eq. 17
            r_value += value_score(g['arguments'], pred[j]['arguments'])  # Eq. 18
    denom = 1 + len(gold) + sum(len(g['arguments']) for g in gold)  # Eq. 19
    return r_name, r_para, r_value, denom


def _valid_calls(pred: Iterable) -> list:
    """Normalised predicted calls; a malformed one (no name, arguments not an object...) is no call."""
    out = []
    for p in pred:
        try:
            out.append(normalize_call(p))
        except ValueError:
            pass
    return out


def exec_score(pred: Optional[list], gold: list, name_match: str = 'multiset') -> float:
    """S_exec (Eqs. 16-19) of predicted calls against gold calls (lists of {"name", "arguments"}).

    ``pred=None`` (unparseable output) or not a list -> 0; a malformed predicted call counts as no call.
    Gold ``[]`` (a direct text answer was right) -> 1 if no call is predicted, else 0. A malformed gold
    call raises ``ValueError`` (that is the data's fault, not the policy's). ``name_match``: see
    :func:`name_score`; with the default, any predicted call beyond the gold ones scores strictly below
    the exact answer.
    """
    gold = [normalize_call(g) for g in gold]
    if name_match not in NAME_MATCH_MODES:
        raise ValueError(f'name_match must be one of {NAME_MATCH_MODES}, got {name_match!r}')
    if not isinstance(pred, (list, tuple)):
        return 0.0
    pred = _valid_calls(pred)
    if not gold:
        return 0.0 if pred else 1.0
    r_name, r_para, r_value, denom = exec_terms(pred, gold, name_match)
    return (r_name + r_para + r_value) / denom


# ---------------------------------------------------------------- Eq. 14

def outcome_scores(text: str, ground_truth: Any, name_match: str = 'multiset') -> tuple:
    """(S_format, S_exec) of one completion; R_out = their sum (Eq. 14), in [0, 2].

    S_exec is computed on the extracted calls even when the layout fails Eq. 15 (as ToolRL does);
    it is 0 only when the output is unparseable (``calls is None``). Never raises on the completion;
    raises ``ValueError`` on a broken ground truth.
    """
    gold = parse_ground_truth(ground_truth)
    parsed = parse_completion(text)
    return (1.0 if parsed.format_ok else 0.0), exec_score(parsed.calls, gold, name_match)
