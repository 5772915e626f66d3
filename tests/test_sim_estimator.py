"""benchmarks.sim_estimator: the seeded toy study of the estimator under judge noise (fast, a few seconds)."""
import json
import math

import numpy as np
import pytest
import torch

from benchmarks import sim_estimator, sim_train
from benchmarks.sim_env import JUDGE_LEVELS, EnvConfig, make_env, snap
from plugin import advantage
from plugin.judge_prompt import TIERS, snap_to_tier

TINY = sim_train.TrainConfig(steps=6, groups=8)


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors: one thread is fastest, and two threads fight badly on a shared 2-core box."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_same_seed_same_run_and_independent_of_other_seeds():
    a = sim_train.train('awpo', JUDGE_LEVELS['noisy'], [3], TINY)
    b = sim_train.train('awpo', JUDGE_LEVELS['noisy'], [3], TINY)
    both = sim_train.train('awpo', JUDGE_LEVELS['noisy'], [5, 3], TINY)
    other = sim_train.train('awpo', JUDGE_LEVELS['noisy'], [5], TINY)
    for key in ('success', 'success_heldout', 'r_out', 'w_mix_mean', 'clip_eps', 'dead_frac'):
        np.testing.assert_array_equal(a[key], b[key])                     # deterministic
        np.testing.assert_allclose(both[key][1], a[key][0], rtol=0, atol=1e-6)  # seed 3 alone == seed 3 in a batch
    assert not np.allclose(a['success'][0], other['success'][0])          # and seeds do differ


def test_snap_matches_the_judges_tier_rounding():
    x = torch.tensor([0.0, 0.1, 0.125, 0.3, 0.375, 0.6, 0.625, 0.82, 0.83, 0.96, 1.0, 0.5])
    assert snap(x).tolist() == pytest.approx([snap_to_tier(float(v)) for v in x])
    assert all(min(abs(v - t) for t in TIERS) < 1e-6 for v in snap(torch.rand(1000)).tolist())


def test_judge_levels_measured_correlations():
    ec, seeds = EnvConfig(), range(8)
    q = {name: sim_estimator.judge_quality(lv, seeds, ec) for name, lv in JUDGE_LEVELS.items()}
    assert abs(q['pure_noise']['corr_q']) < 0.03 and abs(q['pure_noise']['corr_correct']) < 0.03  # uncorrelated
    assert q['adversarial']['corr_q'] < -0.85 and q['adversarial']['corr_correct'] < -0.2        # prefers wrong
    assert q['good']['corr_q'] > 0.85 and q['good']['corr_correct'] > 0.2
    assert 0.3 < q['noisy']['corr_q'] < q['good']['corr_q'] - 0.2
    # the biased judge also rewards the style feature xi_1; the good judge does not
    env = make_env(0, ec)
    style_corr = {n: np.corrcoef(env.judge(JUDGE_LEVELS[n]).reshape(-1), env.style1.reshape(-1))[0, 1]
                  for n in ('good', 'biased')}
    assert abs(style_corr['good']) < 0.06 and style_corr['biased'] > 0.3


def test_stock_advantage_is_ms_swift_grpo_hand_computed():
    r_out = torch.tensor([[[2.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0]]])  # [S=1, G=2, K=4]
    adv = sim_train.stock_advantages(r_out, None, 4)
    # group 1: mean 1.25, unbiased std 0.5 (ms-swift: torch .std(), + 1e-4); group 2: no spread -> 0
    expect = torch.tensor([0.75, -0.25, -0.25, -0.25]) / (0.5 + 1e-4)
    torch.testing.assert_close(adv[0, 0], expect)
    assert torch.equal(adv[0, 1], torch.zeros(4))
    judge = torch.tensor([[[0.0, 0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]]])
    mixed = sim_train.stock_advantages(r_out, judge, 4)  # plain normalisation of R_out + J
    torch.testing.assert_close(mixed[0, 1], expect)
    torch.testing.assert_close(mixed[0, 0], expect)


def test_awpo_advantage_is_the_plugins_own(monkeypatch):
    r_out = torch.tensor([[2.0, 1.0, 1.0, 1.5], [1.0, 1.0, 1.0, 1.0], [0.0, 1.0, 1.0, 1.75]])
    judge = torch.tensor([[1.0, 0.25, 0.75, 0.5], [0.9, 0.0, 0.5, 0.25], [0.0, 0.5, 1.0, 0.75]])
    for name in ('awpo.yaml', 'awpo_no_gating.yaml', 'awpo_no_difficulty.yaml', 'awpo_no_clip.yaml'):
        cfg = sim_train.load_awpo_config(name)
        adv, res = sim_train.awpo_batch(r_out, judge, 4, cfg)
        direct = advantage.awpo_advantages(r_out.reshape(-1), (r_out + judge).reshape(-1), 4, cfg)
        torch.testing.assert_close(adv.reshape(-1), direct.advantages, rtol=0, atol=0)
        assert res.clip_eps == direct.clip_eps
    assert sim_train.load_awpo_config('awpo_no_gating.yaml').gating is False
    assert sim_train.load_awpo_config('awpo_no_clip.yaml').dynamic_clip is False
    assert sim_train.load_awpo_config('awpo_no_difficulty.yaml').difficulty is False

    # and the training loop goes through plugin.advantage.awpo_advantages, once per seed and step
    calls = []
    real = advantage.awpo_advantages

    def spy(r_out, r_mix, k, cfg=None):
        calls.append((r_out.clone(), r_mix.clone(), k, cfg.gating))
        return real(r_out, r_mix, k, cfg)

    monkeypatch.setattr(advantage, 'awpo_advantages', spy)
    out = sim_train.train('awpo_no_gating', JUDGE_LEVELS['good'], [0, 1], TINY)
    assert len(calls) == 2 * TINY.steps
    assert all(k == TINY.k and gating is False for _, _, k, gating in calls)
    assert all(ro.numel() == TINY.groups * TINY.k and torch.all(rm >= ro) for ro, rm, _, _ in calls)  # J >= 0
    np.testing.assert_allclose(out['w_mix_mean'], 1.0)   # no gating: w = 1 everywhere (mixed reward alone)
    np.testing.assert_allclose(out['clip_eps'], 0.1)     # Eq. 29 at w = 1: eps_min


def test_stock_methods_do_not_call_awpo(monkeypatch):
    monkeypatch.setattr(advantage, 'awpo_advantages', lambda *a, **k: pytest.fail('GRPO must not use AWPO'))
    out = sim_train.train('mixed_grpo', JUDGE_LEVELS['good'], [0], TINY)
    assert np.isnan(out['clip_eps']).all()


def test_grpo_learns_a_solvable_problem():
    """Real behaviour: outcome-only GRPO raises the probability of the correct answer on every seed."""
    out = sim_train.train('grpo', None, [0, 1, 2], sim_train.TrainConfig(steps=40, lr=0.05))
    gain = out['success'][:, -1] - out['success'][:, 0]
    assert (gain > 0.15).all(), gain
    assert (out['r_out'][:, -1] > out['r_out'][:, 0]).all()
    assert (out['success_heldout'][:, -1] > out['success_heldout'][:, 0]).all()  # shared weights transfer


def test_stats_helpers():
    m, h = sim_estimator.ci95([1.0, 2.0, 3.0])
    assert m == 2.0 and h == pytest.approx(4.302653 * 1.0 / math.sqrt(3), rel=1e-5)  # t(0.975, 2) = 4.3027
    curve = np.array([[0.1, 0.4, 0.6, 0.7], [0.1, 0.2, 0.3, 0.4]])
    st = sim_estimator.steps_to(curve, 0.5)
    assert st[0] == 2 and np.isnan(st[1])


def test_cli_writes_tables_plots_and_resumes(tmp_path, capsys):
    args = ['--seeds', '2', '--steps', '3', '--judges', 'good', 'pure_noise', '--out', str(tmp_path / 'o'),
            '--publish', str(tmp_path / 'docs')]
    sim_estimator.main(args)
    o = tmp_path / 'o'
    for f in ('sim_good.md', 'sim_good.png', 'sim_pure_noise.md', 'sim_pure_noise.png', 'sim_summary.md'):
        assert (o / f).stat().st_size > 0 and (tmp_path / 'docs' / f).exists()
    table = (o / 'sim_good.md').read_text()
    assert all(sim_estimator.LABELS[m] in table for m in sim_train.METHODS)
    summary = json.loads((o / 'sim_summary.json').read_text())
    assert set(summary['results']) == {'good', 'pure_noise'}
    runs = sorted((o / 'runs').glob('*.npz'))
    assert len(runs) == 1 + 2 * 5  # GRPO once, five judge-reading methods per level
    mtimes = {p: p.stat().st_mtime_ns for p in runs}
    sim_estimator.main(args)  # a rerun with the same settings reuses every finished run
    assert {p: p.stat().st_mtime_ns for p in runs} == mtimes
    sim_estimator.main(args[:3] + ['4'] + args[4:])  # other settings: new runs, the old ones left alone
    assert len(list((o / 'runs').glob('*.npz'))) == 2 * len(runs)
    assert {p: p.stat().st_mtime_ns for p in runs} == mtimes
