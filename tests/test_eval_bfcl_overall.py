"""BFCL v3's official Overall (issue 14.7): hand-computed category scores, and the paper's own rows."""
import pytest

from eval import bfcl_overall as O
from eval import tables as T


def _cats():
    c = lambda k, n: {'correct_count': k, 'total_count': n}  # noqa: E731
    return {'simple_python': c(3, 4), 'simple_java': c(1, 2), 'simple_javascript': c(1, 4),   # simple 0.5
            'multiple': c(8, 10), 'parallel': c(6, 10), 'parallel_multiple': c(7, 10), 'irrelevance': c(9, 10),
            'live_simple': c(6, 10), 'live_multiple': c(30, 40), 'live_parallel': c(0, 2),
            'live_parallel_multiple': c(2, 4), 'live_irrelevance': c(40, 50), 'live_relevance': c(3, 4),
            'multi_turn_base': c(5, 10), 'multi_turn_miss_func': c(4, 10), 'multi_turn_miss_param': c(3, 10),
            'multi_turn_long_context': c(2, 10)}


def test_v3_columns_by_hand():
    v = O.v3_columns(_cats())
    assert v['NL'] == 65.0                              # (0.5 + 0.8 + 0.6 + 0.7) / 4
    assert v['NL_overall'] == 70.0                      # irrelevance 0.9 joins the unweighted mean
    assert v['L_ast'] == round(100 * 38 / 56, 2)        # case-weighted, AST only (bfcl-eval 2026)
    assert v['L'] == round(100 * 81 / 110, 2)           # + live irrelevance 40/50 and relevance 3/4
    assert v['MT'] == 35.0
    assert v['Overall'] == round(100 * (81 / 110 + 0.7 + 0.35) / 3, 2) == 59.55
    assert v['missing'] == []
    # the same number from the printed columns plus the irrelevance score
    assert O.overall_from_columns(65.0, 100 * 81 / 110, 35.0, 90.0) == pytest.approx(100 * (81 / 110 + 0.7 + 0.35) / 3)
    assert O.implied_irrelevance(59.5454545, 65.0, 100 * 81 / 110, 35.0) == pytest.approx(90.0, abs=1e-4)


def test_missing_categories_count_as_zero_and_flag_partial():
    cats = _cats()
    del cats['live_relevance'], cats['irrelevance']
    v = O.v3_columns(cats)
    assert v['missing'] == ['irrelevance', 'live_relevance'] and v['NL_overall'] == 52.0   # 2.6 / 5
    before = {'NL': 65.0, 'L': 67.86, 'MT': 35.0, 'ST': 66.43, 'Overall': 55.95, 'partial_columns': []}
    s = O.official_scores(before, cats)
    assert (s['L_ast'], s['Overall_mean3']) == (67.86, 55.95)              # the earlier formulas, labelled
    assert s['L'] == round(100 * 78 / 106, 2) and s['ST'] == round((65.0 + s['L']) / 2, 2)
    assert s['Overall'] == v['Overall'] and set(s['partial_columns']) == {'L', 'ST', 'Overall'}
    assert O.official_scores({**before, 'L': None, 'Overall': None, 'ST': None}, cats)['Overall'] is None


def test_paper_rows_follow_the_official_formula_not_the_plain_mean():
    """Every Overall of Tables 2 and 5 lies at or below (NL + L + MT) / 3 (a plain mean would scatter both
    ways), by up to 0.75, and the official formula reproduces each with a plausible irrelevance score; rows
    the two tables share give the same score, except the row whose NL the paper prints twice differently."""
    rows = O.paper_check(T.load_paper())
    assert len(rows) == 21 + 12
    assert all(r['gap'] >= 0 for r in rows) and max(r['gap'] for r in rows) > 0.7
    assert all(70 < r['implied_irrelevance'] < 90 for r in rows)
    by = {(r['table'], r['row']): r['implied_irrelevance'] for r in rows}
    assert by[('table2', 'Qwen3-8B/AWPO')] == by[('table5', 'Qwen3-8B/AWPO')]
    assert by[('table2', 'Qwen3-4B-2507/AWPO')] == by[('table5', 'Qwen3-4B-2507/AWPO')]
    assert by[('table2', 'Qwen3-1.7B/AWPO')] != by[('table5', 'Qwen3-1.7B/AWPO')]
    # Table 5's multi-turn Overall is the mean of its four sub-columns (printed to 2 decimals)
    for r in T.load_paper()['tables']['table5']['rows']:
        v = r['values']
        assert abs((v['Base'] + v['MissFunc'] + v['MissParam'] + v['LongContext']) / 4 - v['MT']) <= 0.0051


def test_tables_say_the_paper_disagrees_with_itself_and_how_overall_is_computed():
    paper = T.load_paper()
    assert T.paper_conflicts(paper) == ['Qwen3-1.7B/AWPO NL: 85.52 in Table 2, 86.17 in Table 5']
    md = T.render({}, [], paper)
    assert 'The paper disagrees with itself: Qwen3-1.7B/AWPO NL: 85.52 in Table 2, 86.17 in Table 5.' in md
    t5 = md.split('### Table 5')[1]
    assert 'official total_overall_accuracy' in t5 and '0.14-0.75 below' in t5
