"""Rule-based outcome reward of AWPO (paper Sec. 3.2, Eqs. 14-19), over the text format of
:mod:`plugin.toolcall_format`.

No torch, no ms-swift (scipy for the optimal pairing). The ms-swift glue lives in ``plugin/orm_outcome.py``.

    R_out = S_format + S_exec                                    (Eq. 14), in [0, 2]
    S_format = 1 if the structure is valid else 0                (Eq. 15)
    S_exec = (r_name + r_para + r_value) / (1 + |T| + sum |v(T_i)|)  (Eqs. 16-19)

Never raises on a completion (hostile input): unparseable text scores S_format = S_exec = 0.
"""
from __future__ import annotations

from collections import Counter
from typing import Any, Iterable, Optional

import numpy as np
from scipy.optimize import linear_sum_assignment

from plugin.config import NAME_MATCH_MODES  # 'multiset' (default, hedge-proof) | 'set' (paper-literal)
from plugin.toolcall_format import normalize_call, parse_completion, parse_ground_truth

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
