"""Paper tables: the transcribed numbers are self-consistent, and our rows render beside them."""
import json

import pytest

from eval import results as R
from eval import tables as T


def test_paper_numbers_are_internally_consistent():
    paper = T.load_paper()
    t = paper['tables']
    assert [len(t[k]['rows']) for k in ('table1', 'table2', 'table3', 'table4', 'table5')] == [11, 21, 21, 6, 12]
    # Table 1: single-turn OA = (NL + L) / 2, except one row the paper prints otherwise
    off = [r['method'] for r in t['table1']['rows']
           if abs((r['values']['NL'] + r['values']['L']) / 2 - r['values']['ST']) > 0.006]
    assert off == ['DeepSeek-R1-0528']
    # Table 3: Overall = micro accuracy over 399 / 67 / 131 cases, except two rows
    off3 = []
    for r in t['table3']['rows']:
        v = r['values']
        correct = round(v['L1'] * 3.99) + round(v['L2'] * .67) + round(v['L3'] * 1.31)
        if abs(100 * correct / 597 - v['Overall']) > 0.006:
            off3.append(T.row_key(r))
    assert off3 == ['Qwen3-1.7B/ToolRL', 'Qwen3-8B/SFT+GRPO']
    # Tables 2 and 5 agree on the AWPO rows they share
    t2 = {T.row_key(r): r['values'] for r in t['table2']['rows']}
    for r in t['table5']['rows']:
        if r['method'] == 'AWPO':
            a, b = r['values'], t2[T.row_key(r)]
            assert (a['Overall'], a['MT'], a['L']) == (b['Overall'], b['MT'], b['L'])


def _run(tmp_path, name, bench, scores, settings=None):
    p = R.plan_run(tmp_path, name, bench)
    R.write_summary(p, benchmark=bench, name=name, model={}, scores=scores, settings=settings or {})


def test_render_places_runs_with_differences_and_not_run_cells(tmp_path):
    _run(tmp_path, 'awpo-4b', 'apibank', {'Overall': 70.0, 'L1': 75.0, 'L2': 60.0, 'L3': 50.0},
         {'paper_row': 'Qwen3-4B-2507/AWPO'})
    _run(tmp_path, 'awpo-4b', 'bfcl', {'Overall': 70.0, 'NL': 88.0, 'L': 80.0, 'MT': 42.12, 'Base': 50.0,
                                       'MissFunc': None, 'MissParam': None, 'LongContext': None, 'ST': 84.0,
                                       'partial_columns': ['MT']})
    _run(tmp_path, 'smoke', 'apibank', {'Overall': 10.0, 'L1': 25.0, 'L2': 0.0, 'L3': 0.0}, {'limit': 2})
    runs = R.load_runs(tmp_path, T.BENCHMARKS)
    md = T.render(runs, ['awpo-4b=AWPO'])   # Table 1 has no groups
    t3 = md.split('### Table 3')[1].split('### Table 4')[0]
    assert '| ↳ ours: `awpo-4b` | 70.00 (+1.49) | 75.00 (+1.07) | 60.00 (-5.67) | 50.00 (-3.44) |' in t3
    assert '| `smoke` | 10.00* | 25.00* | 0.00* | 0.00* |' in t3     # unmapped, limited run
    t2 = md.split('### Table 2')[1].split('### Table 3')[0]
    assert 'awpo-4b' in t2 and '(paper) | 73.20 | 87.90 | 80.32 | 52.12 |' in t2
    # the run's paper_row (given with its API-Bank result) places it in every table holding that row
    assert '| ↳ ours: `awpo-4b` | 70.00 (-3.20) | 88.00 (+0.10) | 80.00 (-0.32) | 42.12* (-10.00) |' in t2
    t1 = md.split('### Table 1')[1].split('### Table 2')[0]
    assert '| ↳ ours: `awpo-4b` | 4B | 42.12* (-10.00) | 50.00 (-9.00) | not run | not run | not run | 84.00 (-0.11)' in t1
    t4 = md.split('### Table 4')[1].split('### Table 5')[0]
    assert '| ↳ ours: `awpo-4b` |' + ' not run |' * 6 in t4   # mapped, but no MMLU-Pro run yet
    assert 'smoke' not in t4                                   # unmapped runs only where they have results


def test_cli_writes_markdown_and_rejects_unknown_rows(tmp_path):
    _run(tmp_path / 'res', 'r1', 'apibank', {'Overall': 1.0, 'L1': 1.0, 'L2': 1.0, 'L3': 1.0})
    out = tmp_path / 'tables.md'
    assert T.main(['--runs', str(tmp_path / 'res'), '--out', str(out), '--map', 'r1=Qwen3-8B/DAPO']) == 0
    assert '↳ ours: `r1`' in out.read_text()
    with pytest.raises(ValueError, match='paper rows not found'):
        T.render(R.load_runs(tmp_path / 'res', T.BENCHMARKS), ['r1=Qwen3-8B/NoSuchMethod'])
    with pytest.raises(ValueError, match='no results for run'):
        T.render(R.load_runs(tmp_path / 'res', T.BENCHMARKS), ['nobody=Qwen3-8B/DAPO'])


def test_cli_errors_name_the_path_instead_of_empty_tables_or_tracebacks(tmp_path, capsys):
    """Issue 11.D: a mistyped --runs, a corrupt summary and a bad --map are one-line errors (exit 2)."""
    typo = tmp_path / 'resluts'
    assert T.main(['--runs', str(typo)]) == 2
    assert f'--runs {typo}: no such folder' in capsys.readouterr().err
    res = tmp_path / 'res'
    _run(res, 'r1', 'apibank', {'Overall': 1.0, 'L1': 1.0, 'L2': 1.0, 'L3': 1.0})
    assert T.main(['--runs', str(res), '--map', 'r1']) == 2
    assert "--map 'r1': expected RUN=GROUP/METHOD" in capsys.readouterr().err
    assert T.main(['--runs', str(res), '--map', 'r1=Qwen3-8B/NoSuchMethod']) == 2
    assert 'paper rows not found' in capsys.readouterr().err
    bad = res / 'r2' / 'bfcl.json'
    bad.parent.mkdir()
    bad.write_text('{"scores": {"Overall": 7')          # cut while being copied
    assert T.main(['--runs', str(res)]) == 2
    assert f'{bad}: corrupt result summary' in capsys.readouterr().err
    bad.write_text('[1, 2]')
    assert T.main(['--runs', str(res)]) == 2
    assert f'{bad}: not a result summary' in capsys.readouterr().err


def test_our_rows_sit_beside_the_papers_baselines_marked_as_ours(tmp_path):
    """Issue 22: GDPO (Tables 2-3) and the gate-rule readings (Table 5) are placed by their paper_row, after
    their group's paper rows, under a line marked as ours, with no Δ (the paper has no such number)."""
    _run(tmp_path, 'qwen3-4b-gdpo', 'bfcl', {'Overall': 70.0, 'NL': 88.0, 'L': 80.0, 'MT': 40.0},
         {'paper_row': 'Qwen3-4B-2507/GDPO'})
    _run(tmp_path, 'qwen3-4b-awpo_gate_flat_only', 'bfcl', {'Overall': 71.0, 'NL': 88.0, 'L': 80.0, 'MT': 41.0},
         {'paper_row': 'Qwen3-4B-2507/gate rule flat_only'})
    md = T.render(R.load_runs(tmp_path, T.BENCHMARKS), [])
    t2 = md.split('### Table 2')[1].split('### Table 3')[0]
    g4 = t2.split('**Qwen3-4B-2507**')[1]
    assert (g4.index('| AWPO (paper)') < g4.index(f'| GDPO {T.OURS_MARK} |')
            < g4.index('| ↳ ours: `qwen3-4b-gdpo` | 70.00 |'))
    assert '(+' not in g4.split('qwen3-4b-gdpo')[1].split('\n')[0]
    assert 'qwen3-4b-gdpo' not in t2.split('our other runs')[1]    # placed, so not listed again
    t5 = md.split('### Table 5')[1]
    assert f'| gate rule flat_only {T.OURS_MARK} |' in t5.split('**Qwen3-4B-2507**')[1]
    assert 'qwen3-4b-gdpo' not in t5.split('our other runs')[0]      # GDPO is not a Table 5 row
    with pytest.raises(ValueError, match='paper rows not found'):
        T.render(R.load_runs(tmp_path, T.BENCHMARKS), ['qwen3-4b-gdpo=Qwen3-4B-2507/GDPO-typo'])
