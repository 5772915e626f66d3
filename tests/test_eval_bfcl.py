"""BFCL: the paper's columns from bfcl-eval's score files; the real bfcl-eval scorer on hand-made results."""
import json
import os
from pathlib import Path

import pytest

from eval import bfcl as B

ME = f'{B.REGISTRY_NAME} (FC)'


def _write_scores(root: Path):
    """Hand-made score folder in bfcl-eval's layout (CSV headers as the package writes them)."""
    root.mkdir(parents=True)
    (root / 'data_non_live.csv').write_text(
        'Rank,Model,Non-Live Overall Acc,AST Summary,Simple AST,Python Simple AST,Java Simple AST,'
        'JavaScript Simple AST,Multiple AST,Parallel AST,Parallel Multiple AST,Irrelevance Detection\n'
        '1,Other (FC),99.00%,99.00%,99.00%,99.00%,99.00%,99.00%,99.00%,99.00%,99.00%,99.00%\n'
        f'2,{ME},80.00%,80.00%,70.00%,90.00%,60.00%,60.00%,85.00%,80.00%,85.00%,50.00%')
    (root / 'data_live.csv').write_text(
        'Rank,Model,Live Overall Acc,AST Summary,Python Simple AST,Python Multiple AST,Python Parallel AST,'
        'Python Parallel Multiple AST,Irrelevance Detection,Relevance Detection\n'
        f'1,{ME},70.00%,70.00%,75.00%,68.00%,50.00%,50.00%,80.00%,90.00%')
    (root / 'data_multi_turn.csv').write_text(
        'Rank,Model,Multi Turn Overall Acc,Base,Miss Func,Miss Param,Long Context\n'
        f'1,{ME},40.00%,50.00%,40.00%,30.00%,40.00%')
    (root / 'data_overall.csv').write_text(
        'Rank,Overall Acc,Model,Model Link\n'
        f'1,33.10%,{ME},local')
    cat_dir = root / B.REGISTRY_NAME / 'multi_turn'
    cat_dir.mkdir(parents=True)
    (cat_dir / 'BFCL_v4_multi_turn_base_score.json').write_text(
        json.dumps({'accuracy': 0.5, 'correct_count': 1, 'total_count': 2}) + '\n'
        + json.dumps({'id': 'multi_turn_base_1', 'valid': False, 'error': ['x'], 'error_type': 'multi_turn:y'}) + '\n')


def test_paper_columns_from_score_files(tmp_path):
    _write_scores(tmp_path / 'score')
    everything = B.expand_categories('non_live,live,multi_turn')
    s = B.paper_columns(tmp_path / 'score', ME, everything, full=True)
    assert (s['NL'], s['L'], s['MT']) == (80.0, 70.0, 40.0)
    assert (s['Base'], s['MissFunc'], s['MissParam'], s['LongContext']) == (50.0, 40.0, 30.0, 40.0)
    assert s['ST'] == 75.0                      # (80 + 70) / 2
    assert s['Overall'] == 63.33                # (80 + 70 + 40) / 3
    assert s['overall_v4_official'] == 33.1
    assert s['partial_columns'] == []
    # a limited run flags every column it computed; a subset of categories flags what it misses
    assert set(B.paper_columns(tmp_path / 'score', ME, everything, full=False)['partial_columns']) >= {'NL', 'Overall'}
    sub = B.paper_columns(tmp_path / 'score', ME, ['multi_turn_base', 'simple_python'], full=True)
    assert 'Base' not in sub['partial_columns'] and {'MT', 'NL'} <= set(sub['partial_columns'])
    assert sub['L'] is None and sub['ST'] is None and sub['Overall'] is None   # no live category ran
    # another model's row is not ours
    assert B.paper_columns(tmp_path / 'score', 'nobody', everything, True)['NL'] is None
    cats = B.category_scores(tmp_path / 'score' / B.REGISTRY_NAME)
    assert cats == {'multi_turn_base': {'accuracy': 50.0, 'correct_count': 1, 'total_count': 2}}


def test_collect_cases_marks_failures(tmp_path):
    _write_scores(tmp_path / 'score')
    res = tmp_path / 'result' / B.REGISTRY_NAME / 'multi_turn'
    res.mkdir(parents=True)
    (res / 'BFCL_v4_multi_turn_base_result.json').write_text(
        json.dumps({'id': 'multi_turn_base_0', 'result': [[['f(a=1)']]]}) + '\n'
        + json.dumps({'id': 'multi_turn_base_1', 'result': [[['g()']]]}) + '\n')
    cases = B.collect_cases(tmp_path / 'result' / B.REGISTRY_NAME, tmp_path / 'score' / B.REGISTRY_NAME)
    assert [(c['id'], c['correct']) for c in cases] == [('multi_turn_base_0', True), ('multi_turn_base_1', False)]
    assert cases[1]['error_type'] == 'multi_turn:y'


def test_expand_categories():
    assert B.expand_categories('multi_turn') == list(B.MULTI_TURN.values())
    assert B.expand_categories('simple_python,non_live')[:2] == ['simple_python', 'simple_java']
    assert len(B.expand_categories('non_live,live,multi_turn')) == 7 + 6 + 4


@pytest.mark.slow
def test_real_bfcl_scorer_on_hand_made_results(tmp_path, bfcl_python):
    """bfcl-eval's own checker and aggregation on hand-made FC results: 2 of 3 simple_python correct."""
    res = tmp_path / 'result' / B.REGISTRY_NAME / 'non_live'
    res.mkdir(parents=True)
    rows = [{'id': 'simple_python_0', 'result': [{'calculate_triangle_area': '{"base": 10, "height": 5}'}]},
            {'id': 'simple_python_1', 'result': [{'math_factorial': '{"number": "5"}'}]},   # "5" is not int 5
            {'id': 'simple_python_2', 'result': [{'math_hypot': '{"x": 4, "y": 5}'}]}]
    (res / 'BFCL_v4_simple_python_result.json').write_text(''.join(json.dumps(r) + '\n' for r in rows))
    with open(tmp_path / 'bfcl.log', 'w') as log:
        B.run_bfcl(bfcl_python, tmp_path, 'http://unused/v1', 'unused',
                   ['evaluate', '--model', B.REGISTRY_NAME, '--test-category', 'simple_python', '--partial-eval'],
                   log=log)
    cats = B.category_scores(tmp_path / 'score' / B.REGISTRY_NAME)
    assert cats['simple_python'] == {'accuracy': 66.67, 'correct_count': 2, 'total_count': 3}
    s = B.paper_columns(tmp_path / 'score', ME, ['simple_python'], full=False)
    # bfcl-eval: simple = mean(python, java, js) with missing ones as 0; non-live = mean of 4 groups
    assert s['NL'] == round(100 * (2 / 3) / 3 / 4, 2)
    assert s['partial_columns'] == ['NL']
    assert s['L'] is None and s['MT'] is None and s['Overall'] is None   # not run (bfcl-eval prints 0%)
    cases = B.collect_cases(tmp_path / 'result' / B.REGISTRY_NAME, tmp_path / 'score' / B.REGISTRY_NAME)
    assert [c['correct'] for c in cases] == [True, False, True]


def test_bfcl_concurrency_saturates_vllm_and_fills_the_cpu_servers_batch():
    """Issue 14.10: ~15k requests per checkpoint are not sent one at a time to vLLM (or a --base-url server);
    swift deploy batches up to its --max_batch_size waiting requests, so it gets that many (issue 20)."""
    from eval import serve as S
    assert B.default_threads('vllm') == B.default_threads('url') == B.GPU_THREADS >= 32
    assert B.default_threads('swift') == S.SWIFT_MAX_BATCH > 1
    cmd = S.swift_deploy_cmd(S.Checkpoint(model='/m'), 8001, 'awpo-eval', S.SMOLLM2_SWIFT_ARGS)
    assert cmd[cmd.index('--max_batch_size') + 1] == str(S.SWIFT_MAX_BATCH)
    own = S.swift_deploy_cmd(S.Checkpoint(model='/m'), 8001, 'awpo-eval', ['--max_batch_size', '2'])
    assert own.count('--max_batch_size') == 1 and own[own.index('--max_batch_size') + 1] == '2'
