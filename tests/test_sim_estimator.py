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
    assert len(runs) == 1 + 2 * (len(sim_train.METHODS) - 1)  # GRPO once, every judge-reading method per level
    assert 'Paired Δ to AWPO' in (o / 'sim_summary.md').read_text()
    assert set(summary['results']['good']['gdpo']) >= {'delta_final_vs_awpo', 'delta_auc_vs_awpo'}
    mtimes = {p: p.stat().st_mtime_ns for p in runs}
    sim_estimator.main(args)  # a rerun with the same settings reuses every finished run
    assert {p: p.stat().st_mtime_ns for p in runs} == mtimes
    sim_estimator.main(args[:3] + ['4'] + args[4:])  # other settings: new runs, the old ones left alone
    assert len(list((o / 'runs').glob('*.npz'))) == 2 * len(runs)
    assert {p: p.stat().st_mtime_ns for p in runs} == mtimes


# ------------------------------------------------------------ issue 22: GDPO, the gate readings, the insight judge
def test_insight_judge_agrees_with_the_outcome_and_ranks_wrong_calls_by_q():
    """The level designed for the gate readings: correct 1, near-miss 0.9, wrong/malformed by q, never above 0.75."""
    env = make_env(0, EnvConfig())
    j = env.judge(JUDGE_LEVELS['insight'])
    r = env.r_out
    assert torch.all(j[r == 2.0] == 1.0) and torch.all(j[(r == 1.5) | (r == 1.75)] == 0.9)
    assert torch.all(j[r == 0.0] == 0.0)
    wrong = r == 1.0
    assert set(j[wrong].unique().tolist()) == {0.0, 0.25, 0.5, 0.75}
    assert np.corrcoef(j[wrong].numpy(), env.q[wrong].numpy())[0, 1] > 0.8   # the information R_out lacks
    # never ranks a call above a better one by R_out, on any prompt (ties: the two near-misses; wrong vs malformed)
    better = r[:, :, None] > r[:, None, :]
    hi, lo = j[:, :, None].expand_as(better)[better], j[:, None, :].expand_as(better)[better]
    assert torch.all(hi >= lo) and torch.all((hi > lo) | (lo == 0.0) | (lo == 0.9))


def test_gdpo_is_ms_swifts_own_per_seed_and_hand_computed():
    from swift.rl_core.advantage import compute_advantages
    r_out = torch.tensor([[[2.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0]],
                          [[0.0, 1.0, 2.0, 1.5], [1.0, 1.0, 1.0, 1.0]]])      # [S=2, G=2, K=4]
    judge = torch.tensor([[[1.0, 0.0, 0.5, 0.5], [0.75, 0.25, 0.25, 0.75]],
                          [[0.0, 0.5, 1.0, 0.9], [0.0, 0.0, 0.0, 0.0]]])
    adv = sim_train.gdpo_advantages(r_out, judge, 4)
    for s in range(2):   # the same numbers as ms-swift's function on that seed's batch alone
        rpf = torch.stack((r_out[s].reshape(-1), judge[s].reshape(-1)), 1)
        ref, _ = compute_advantages(rpf, torch.ones(2), 4, scale_rewards='gdpo')
        torch.testing.assert_close(adv[s].reshape(-1), ref, rtol=0, atol=0)
    # by hand, seed 0 (GDPO: per-reward group z-scores with the unbiased group std, summed, batch-whitened):
    # outcome group 1: mean 1.25, std 0.5 -> [1.5, -.5, -.5, -.5]; group 2 flat -> 0
    # judge group 1: mean .5, std sqrt(.5/3) = .40825 -> [1.22474, -1.22474, 0, 0];
    # judge group 2: mean .5, std sqrt(.25/3) = .28868 -> [.86603, -.86603, -.86603, .86603]
    out_z = torch.tensor([1.5, -0.5, -0.5, -0.5, 0, 0, 0, 0])
    j_z = torch.tensor([1.22474, -1.22474, 0, 0, 0.86603, -0.86603, -0.86603, 0.86603])
    summed = out_z + j_z
    torch.testing.assert_close(adv[0].reshape(-1), (summed - summed.mean()) / summed.std(), rtol=0, atol=1e-4)
    # the flat-outcome group is driven by the judge alone (what the prose reading of Eq. 25 does too)
    assert adv[0, 1, 0] > 0 > adv[0, 1, 1]


def test_gdpo_in_ms_swift_treats_a_missing_judge_score_as_neutral():
    """What docs/studies.md and shells/recipes/gdpo.sh say about NaN (a failed judge call) in ms-swift's GDPO:
    the judge's group mean/std come from the scores that exist, the missing sample's judge term is 0 (its group's
    mean); a group with no judge score at all has judge term 0 for every sample (outcome term alone)."""
    from swift.rl_core.advantage import compute_advantages
    nan = float('nan')
    r_out = torch.tensor([2.0, 1.0, 1.0, 1.0, 2.0, 1.0, 1.0, 1.0])
    judge = torch.tensor([1.0, 0.0, nan, 0.5, nan, nan, nan, nan])
    adv, _ = compute_advantages(torch.stack((r_out, judge), 1), torch.ones(2), 4, scale_rewards='gdpo')
    assert torch.isfinite(adv).all()
    out_z = torch.tensor([1.5, -0.5, -0.5, -0.5])
    j_z = torch.tensor([1.0, -1.0, 0.0, 0.0])       # mean .5 and std .5 over the three scores; the NaN -> 0
    summed = torch.cat([out_z + j_z, out_z])          # group 2: no judge score, outcome term only
    torch.testing.assert_close(adv, (summed - summed.mean()) / summed.std(), rtol=0, atol=1e-4)
    # compare Mixed-reward GRPO (nansum): there the missing score counts as a judge score of 0
    mixed, _ = compute_advantages(torch.stack((r_out, judge), 1), torch.ones(2), 4, scale_rewards='group')
    assert mixed[2] < mixed[3]     # sample 2 (no score) ranks below sample 3 (score 0.5), same R_out


def test_gate_readings_in_the_simulation_are_the_plugins_configs():
    for name, rule in (('awpo_gate_plus_flat', 'eq25_plus_flat'), ('awpo_gate_flat_only', 'flat_only')):
        assert sim_train.METHODS[name] == (True, f'{name}.yaml')
        cfg = sim_train.load_awpo_config(f'{name}.yaml')
        assert cfg.gate_rule == rule and cfg.gating and cfg.difficulty and cfg.dynamic_clip
    # flat groups are common early (sparse start), so the readings open the gate where Eq. 25 never does
    a = sim_train.train('awpo', JUDGE_LEVELS['insight'], [0], TINY)
    f = sim_train.train('awpo_gate_flat_only', JUDGE_LEVELS['insight'], [0], TINY)
    p = sim_train.train('awpo_gate_plus_flat', JUDGE_LEVELS['insight'], [0], TINY)
    assert (f['dead_frac'] > 0).all() and np.nanmean(f['gate_open_frac']) > 0
    assert np.nanmean(p['gate_open_frac']) > np.nanmean(a['gate_open_frac'])
    np.testing.assert_array_equal(a['success'][:, 0], f['success'][:, 0])    # same start, same draws
