"""Plots from a recorded ms-swift GRPO output folder (hand-made logging.jsonl / completions.jsonl)."""
import math
from pathlib import Path

import pytest

from eval import plots as P

RUN = Path(__file__).parent / 'fixtures' / 'eval' / 'grpo_run'


def test_log_reading_skips_eval_and_summary_lines():
    run = P.find_run_dir(RUN)
    assert run.name == 'v0-20261122-001035'
    rows = P.read_log(run / 'logging.jsonl')
    assert [r['step'] for r in rows] == [1, 2, 3, 4]
    assert P.series(rows, 'awpo/gate_open_frac') == ([1, 2, 3, 4], [0.0, 0.5, 0.5, 1.0])
    assert P.series(rows, 'rewards/AWPOJudge/mean')[1] == [0.4, 0.55, 0.6, 0.7]


def test_spearman_matches_scipy_and_hand_values():
    scipy_stats = pytest.importorskip('scipy.stats')
    x, y = [0.9, 0.5, 0.1, 0.3], [1.0, 0.5, 0.0, 0.0]
    assert P.spearman(x, y) == pytest.approx(4.5 / math.sqrt(5 * 4.5))   # ranks [4,3,1,2] vs [4,3,1.5,1.5]
    assert P.spearman(x, y) == pytest.approx(scipy_stats.spearmanr(x, y).statistic)
    assert P.spearman([1, 2, 3], [1, 1, 1]) is None
    assert P.average_ranks([3, 1, 3, 2]) == [3.5, 1.0, 3.5, 2.0]


def test_consistency_per_step_by_group():
    stats = P.consistency_by_step(P.read_completions(RUN / 'v0-20261122-001035' / 'completions.jsonl'))
    # step 2: one group rho = 0.9487, the other has a constant outcome (undefined);
    # step 4: one group rho = -0.9487, the other has a missing judge score (NaN)
    assert [(s['step'], s['groups'], s['groups_defined']) for s in stats] == [(2, 2, 1), (4, 2, 1)]
    assert stats[0]['rho_mean'] == pytest.approx(0.9486833)
    assert stats[1]['rho_mean'] == pytest.approx(-0.9486833)


def test_cli_writes_pngs(tmp_path):
    assert P.main(['--train-log', str(RUN), '--out', str(tmp_path)]) == 0
    for name in ('rewards.png', 'awpo_gate.png', 'judge_outcome_consistency.png'):
        data = (tmp_path / name).read_bytes()
        assert data[:8] == b'\x89PNG\r\n\x1a\n' and len(data) > 10_000
    with pytest.raises(KeyError, match='lacks'):
        P.consistency_by_step([{'step': '1', 'prompt': 'p', 'AWPOOutcome': 1.0}])


def _copy_run(tmp_path):
    import shutil
    run = tmp_path / 'run'
    shutil.copytree(RUN / 'v0-20261122-001035', run)
    return run


def test_a_run_in_progress_plots_without_its_torn_last_line(tmp_path, capsys):
    """Issue 11.D: ms-swift may be writing the last line of logging.jsonl / completions.jsonl."""
    run = _copy_run(tmp_path)
    for name in ('logging.jsonl', 'completions.jsonl'):
        with open(run / name, 'a') as f:
            f.write('{"global_step/max_steps": "5/10", "loss": 0.')
    assert [r['step'] for r in P.read_log(run / 'logging.jsonl')] == [1, 2, 3, 4]
    assert len(P.read_completions(run / 'completions.jsonl')) == len(
        P.read_completions(RUN / 'v0-20261122-001035' / 'completions.jsonl'))
    assert P.main(['--train-log', str(run), '--out', str(tmp_path / 'png')]) == 0
    assert 'last line incomplete' in capsys.readouterr().err
    assert (tmp_path / 'png' / 'rewards.png').stat().st_size > 0


def test_a_torn_middle_line_fails_naming_file_and_line(tmp_path, capsys):
    run = _copy_run(tmp_path)
    lines = (run / 'logging.jsonl').read_text().splitlines()
    lines[1] = lines[1][:20]
    (run / 'logging.jsonl').write_text('\n'.join(lines) + '\n')
    with pytest.raises(ValueError, match=rf'{run / "logging.jsonl"}:2: not JSON'):
        P.read_log(run / 'logging.jsonl')
    assert P.main(['--train-log', str(run), '--out', str(tmp_path / 'png')]) == 2
    assert f'{run / "logging.jsonl"}:2: not JSON' in capsys.readouterr().err
