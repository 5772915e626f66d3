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
