"""BFCL v3's official Overall, as the paper's Tables 2 and 5 print it ("calculated using the official scripts").

Source: ``generate_leaderboard_csv`` in ShishirPatil/gorilla ``berkeley-function-call-leaderboard/bfcl/
eval_checker/eval_runner_helper.py`` (v3 release 70b6a4a2, 2024-09-20) through ``bfcl_eval/eval_checker/
eval_runner_helper.py`` at c15b2a15 (2025-06-09, the last v3 version before the V4 release 58f57e91):

* ``overall_accuracy_non_live`` = unweighted mean of simple (itself the mean of python / java / javascript),
  multiple, parallel, parallel_multiple **and irrelevance**;
* ``overall_accuracy_live`` = case-weighted mean of live simple / multiple / parallel / parallel_multiple
  **and live_irrelevance, live_relevance**;
* ``overall_accuracy_multi_turn`` = unweighted mean of base, miss_func, miss_param, long_context;
* ``total_overall_accuracy`` = unweighted mean of those three.

The leaderboard's overall file (``data_overall.csv``) shows next to it "Non-Live AST Acc" (the mean of the
four AST groups, *without* irrelevance), "Live Acc" (``overall_accuracy_live``, with irrelevance and
relevance) and "Multi Turn Acc". So Overall is not the mean of the three printed columns:
``Overall = (NL + L + MT) / 3 + (irrelevance - NL) / 15`` with NL the AST column. That is why the paper's
Overall sits 0.00-0.75 below (NL + L + MT) / 3 of its own columns: the non-live irrelevance score it
implies (`implied_irrelevance`) is 75-87 %, below NL, for every row.

bfcl-eval 2026 (v4) changed both overalls: its "Non-Live Overall Acc" drops irrelevance (= v3's AST column,
the paper's NL) and its "Live Overall Acc" drops irrelevance and relevance (not the paper's L).
A missing category counts as accuracy 0 with 0 cases, as in bfcl's own helpers.
"""
from __future__ import annotations

from typing import Any, Dict, Iterable, List, Mapping, Optional

SIMPLE = ['simple_python', 'simple_java', 'simple_javascript']
NON_LIVE_AST = ['multiple', 'parallel', 'parallel_multiple']
LIVE_AST = ['live_simple', 'live_multiple', 'live_parallel', 'live_parallel_multiple']
LIVE_DETECTION = ['live_irrelevance', 'live_relevance']
MULTI_TURN = ['multi_turn_base', 'multi_turn_miss_func', 'multi_turn_miss_param', 'multi_turn_long_context']
ALL = SIMPLE + NON_LIVE_AST + ['irrelevance'] + LIVE_AST + LIVE_DETECTION + MULTI_TURN


def _acc(cats: Mapping[str, Mapping[str, Any]], name: str) -> tuple:
    """(accuracy in [0, 1], case count) of one category; missing -> (0, 0) like bfcl's helpers."""
    c = cats.get(name)
    if not c or not c.get('total_count'):
        return 0.0, 0
    return c['correct_count'] / c['total_count'], c['total_count']


def _unweighted(values: Iterable[float]) -> float:
    values = list(values)
    return sum(values) / len(values)


def _weighted(pairs: List[tuple]) -> float:
    total = sum(n for _, n in pairs)
    return sum(a * n for a, n in pairs) / total if total else 0.0


def v3_columns(cats: Mapping[str, Mapping[str, Any]]) -> Dict[str, Any]:
    """The v3 leaderboard numbers (percent, 2 decimals) from per-category ``correct_count`` / ``total_count``.

    NL = "Non-Live AST Acc", NL_overall = ``overall_accuracy_non_live`` (with irrelevance), L = "Live Acc"
    (``overall_accuracy_live``), L_ast = live AST only (bfcl-eval 2026's "Live Overall Acc"), MT, Overall =
    ``total_overall_accuracy``; ``missing``: categories without a score (counted as 0)."""
    a = {name: _acc(cats, name) for name in ALL}
    simple = _unweighted(a[n][0] for n in SIMPLE)
    nl_groups = [simple] + [a[n][0] for n in NON_LIVE_AST]
    nl_ast = _unweighted(nl_groups)
    nl_overall = _unweighted(nl_groups + [a['irrelevance'][0]])
    live = _weighted([a[n] for n in LIVE_AST + LIVE_DETECTION])
    live_ast = _weighted([a[n] for n in LIVE_AST])
    mt = _unweighted(a[n][0] for n in MULTI_TURN)
    overall = _unweighted([live, nl_overall, mt])
    pct = lambda x: round(100 * x, 2)  # noqa: E731
    return {'NL': pct(nl_ast), 'NL_overall': pct(nl_overall), 'L': pct(live), 'L_ast': pct(live_ast),
            'MT': pct(mt), 'Overall': pct(overall), 'irrelevance': pct(a['irrelevance'][0]),
            'missing': [n for n in ALL if not a[n][1]]}


def overall_from_columns(nl: float, l: float, mt: float, irrelevance: float) -> float:
    """v3 ``total_overall_accuracy`` from the printed columns plus the non-live irrelevance score."""
    return ((4 * nl + irrelevance) / 5 + l + mt) / 3


def implied_irrelevance(overall: float, nl: float, l: float, mt: float) -> float:
    """The non-live irrelevance score for which `overall_from_columns` gives the printed Overall."""
    return nl + 15 * (overall - (nl + l + mt) / 3)


def paper_check(paper: Mapping[str, Any], tables=('table2', 'table5')) -> List[Dict[str, Any]]:
    """Per paper row of the BFCL tables with Overall: the mean of its columns, the gap to the printed Overall
    and the irrelevance score the official formula needs to reproduce it."""
    out = []
    for tid in tables:
        for row in paper['tables'][tid]['rows']:
            v = row['values']
            mean3 = (v['NL'] + v['L'] + v['MT']) / 3
            out.append({'table': tid, 'row': f"{row['group']}/{row['method']}" if row.get('group') else row['method'],
                        'Overall': v['Overall'], 'mean3': round(mean3, 3), 'gap': round(mean3 - v['Overall'], 3),
                        'implied_irrelevance': round(implied_irrelevance(v['Overall'], v['NL'], v['L'], v['MT']), 2)})
    return out


def official_scores(scores: Dict[str, Any], cats: Mapping[str, Mapping[str, Any]]) -> Dict[str, Any]:
    """Our BFCL summary with the paper's columns computed the official v3 way (a new dict):
    ``L`` and ``Overall`` become v3's; the formulas used before stay, labelled: ``L_ast`` (bfcl-eval 2026's
    "Live Overall Acc") and ``Overall_mean3`` ((NL + L_ast + MT) / 3). Columns whose v3 categories were not
    all scored join ``partial_columns``. A column that was not run stays None."""
    v3 = v3_columns(cats)
    out = dict(scores)
    out['L_ast'], out['Overall_mean3'] = scores.get('L'), scores.get('Overall')
    if scores.get('L') is not None:
        out['L'] = v3['L']
    if scores.get('Overall') is not None:
        out['Overall'] = v3['Overall']
    out['ST'] = round((out['NL'] + out['L']) / 2, 2) if None not in (out.get('NL'), out.get('L')) else None
    out['v3'] = v3
    partial = set(scores.get('partial_columns', []))
    if out['L'] is not None and set(LIVE_DETECTION) & set(v3['missing']):
        partial |= {'L', 'ST'}
    if out['Overall'] is not None and v3['missing']:
        partial.add('Overall')
    out['partial_columns'] = sorted(partial)
    return out
