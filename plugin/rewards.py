"""Rule-based outcome reward of AWPO (paper Sec. 3.2, Eqs. 14-19).

Pure Python: no torch, no ms-swift. The ms-swift glue lives in ``plugin/reward_funcs.py``.

    R_out = S_format + S_exec                                    (Eq. 14), in [0, 2]
    S_format = 1 if the structure is valid else 0                (Eq. 15)
    S_exec = (r_name + r_para + r_value) / (1 + |T| + sum |v(T_i)|)  (Eqs. 16-19)

Completion format (hermes / Qwen3 native): an optional ``<think>...</think>`` (or free text), then
either one or more ``<tool_call>\\n{"name": ..., "arguments": {...}}\\n</tool_call>`` blocks or a
plain text answer. Decisions taken where the paper is silent are listed in the README ("Outcome reward").
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from itertools import permutations
from typing import Any, Iterable, Optional

THINK_OPEN, THINK_CLOSE = '<think>', '</think>'
CALL_OPEN, CALL_CLOSE = '<tool_call>', '</tool_call>'
_TAG_RE = re.compile(r'</?tool_call>')
# Same-name groups up to this size are paired exactly (all one-to-one pairings); larger ones greedily.
_EXACT_PAIRING_MAX = 6


@dataclass
class ParsedCompletion:
    reasoning: str
    calls: Optional[list]  # [{"name": str, "arguments": dict}], [] for a text answer, None if unparseable
    answer: str
    format_ok: bool
    error: Optional[str] = None


# ---------------------------------------------------------------- tool-call normalisation

def normalize_call(obj: Any) -> dict:
    """One call object -> ``{"name": str, "arguments": dict}``.

    Accepts ``"parameters"`` as a synonym of ``"arguments"`` and arguments given as a JSON string;
    missing / null arguments mean ``{}``. Raises ``ValueError`` naming what is wrong.
    """
    if isinstance(obj, str):
        try:
            obj = json.loads(obj)
        except json.JSONDecodeError as e:
            raise ValueError(f'tool call is not valid JSON ({e.msg} at char {e.pos})') from None
    if not isinstance(obj, dict):
        raise ValueError(f'tool call must be a JSON object, got {type(obj).__name__}')
    name = obj.get('name')
    if not isinstance(name, str) or not name:
        raise ValueError(f'tool call needs a non-empty string "name", got {name!r}')
    args = obj['arguments'] if 'arguments' in obj else obj.get('parameters')
    if args is None:
        args = {}
    if isinstance(args, str):
        try:
            args = json.loads(args) if args.strip() else {}
        except json.JSONDecodeError as e:
            raise ValueError(f'arguments of {name!r} are a string that is not valid JSON ({e.msg})') from None
    if not isinstance(args, dict):
        raise ValueError(f'arguments of {name!r} must be a JSON object, got {type(args).__name__}')
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
            gt = json.loads(gt)
        except json.JSONDecodeError as e:
            raise ValueError(f'ground_truth is not valid JSON ({e.msg} at char {e.pos}): {gt[:80]!r}') from None
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
    unclosed / stray or does not hold a valid call object, or the text answer is empty. Layout errors
    that leave every call readable (text between or after blocks, text before ``<think>``, repeated think
    tags) only fail the format.
    """
    if not isinstance(text, str):
        raise TypeError(f'completion must be str, got {type(text).__name__}')
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
    ``1 != "1"``, ``1 != True``, ``0 != None``; lists ordered, objects by key set, recursively."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is bool and type(b) is bool and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, str) or isinstance(b, str):
        return isinstance(a, str) and isinstance(b, str) and a == b
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(v, b[k]) for k, v in a.items())
    return False


def jaccard(a: set, b: set) -> float:
    """|A & B| / |A | B|, with 0/0 := 1 (two argument-free calls agree perfectly)."""
    union = a | b
    return len(a & b) / len(union) if union else 1.0


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
    r_para + r_value terms over all one-to-one pairings (ties -> lexicographically first in gold
    order); groups larger than ``_EXACT_PAIRING_MAX`` fall back to greedy in gold order.
    """
    pairing = [None] * len(gold)
    by_name: dict = {}
    for j, p in enumerate(pred):
        by_name.setdefault(p['name'], []).append(j)
    gold_by_name: dict = {}
    for i, g in enumerate(gold):
        gold_by_name.setdefault(g['name'], []).append(i)
    for name, gi in gold_by_name.items():
        pj = by_name.get(name, [])
        if not pj:
            continue
        score = [[_pair_score(gold[i], pred[j]) for j in pj] for i in gi]
        ng, npred = len(gi), len(pj)
        if max(ng, npred) <= _EXACT_PAIRING_MAX:
            if ng <= npred:  # every gold call gets a distinct predicted call
                candidates = ((tuple(range(ng)), cols) for cols in permutations(range(npred), ng))
            else:  # every predicted call goes to a distinct gold call
                candidates = ((rows, tuple(range(npred))) for rows in permutations(range(ng), npred))
            best, best_val = None, -1.0
            for rows, cols in candidates:
                val = sum(score[r][c] for r, c in zip(rows, cols))
                if val > best_val + 1e-12:
                    best, best_val = list(zip(rows, cols)), val
            for r, c in best:
                pairing[gi[r]] = pj[c]
        else:
            used = set()
            for r in range(len(gi)):
                free = [c for c in range(len(pj)) if c not in used]
                if not free:
                    break
                c = max(free, key=lambda c: (score[r][c], -c))
                used.add(c)
                pairing[gi[r]] = pj[c]
    return pairing


def exec_terms(pred: Optional[list], gold: list) -> tuple:
    """(r_name, r_para, r_value, denominator) of Eqs. 16-19 for non-empty gold."""
    names_t, names_p = {g['name'] for g in gold}, {p['name'] for p in pred}
    r_name = jaccard(names_t, names_p)  # Eq. 16 (gold non-empty, so the union is too)
    pairing = pair_calls(pred, gold)
    r_para = r_value = 0.0
    for g, j in zip(gold, pairing):
        if j is not None:
            r_para += para_score(g['arguments'], pred[j]['arguments'])  # Eq. 17
            r_value += value_score(g['arguments'], pred[j]['arguments'])  # Eq. 18
    denom = 1 + len(gold) + sum(len(g['arguments']) for g in gold)  # Eq. 19
    return r_name, r_para, r_value, denom


def exec_score(pred: Optional[list], gold: list) -> float:
    """S_exec (Eqs. 16-19) of predicted calls against gold calls (lists of {"name", "arguments"}).

    ``pred=None`` (unparseable output) -> 0. Gold ``[]`` (a direct text answer was right) -> 1 if no
    call is predicted, else 0.
    """
    if pred is None:
        return 0.0
    pred = [normalize_call(p) for p in pred]
    gold = [normalize_call(g) for g in gold]
    if not gold:
        return 0.0 if pred else 1.0
    r_name, r_para, r_value, denom = exec_terms(pred, gold)
    return (r_name + r_para + r_value) / denom


# ---------------------------------------------------------------- Eq. 14

def outcome_scores(text: str, ground_truth: Any) -> tuple:
    """(S_format, S_exec) of one completion; R_out = their sum (Eq. 14), in [0, 2].

    S_exec is computed on the extracted calls even when the layout fails Eq. 15 (as ToolRL does);
    it is 0 only when the output is unparseable (``calls is None``). Raises ``ValueError`` on a
    broken ground truth.
    """
    gold = parse_ground_truth(ground_truth)
    parsed = parse_completion(text)
    return (1.0 if parsed.format_ok else 0.0), exec_score(parsed.calls, gold)
