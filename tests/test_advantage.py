"""AWPO maths (Eqs. 21-29) against a slow loop-per-group reference written from the paper, hand-computed
cases, each ablation, NaN handling and degenerate groups."""
from __future__ import annotations

import math

import pytest
import torch

from plugin.advantage import awpo_advantages
from plugin.config import AWPOConfig

NAN = float('nan')


def reference(r_out, r_mix, K, cfg):
    """Algorithm 1 of the paper, one group at a time, plain Python floats (no torch maths)."""
    r_out = [float(x) for x in r_out]
    r_mix = None if r_mix is None else [float(x) for x in r_mix]
    G = len(r_out) // K
    adv, r_gs, ws, ds = [], [], [], []
    for g in range(G):
        o = r_out[g * K:(g + 1) * K]
        m = o if r_mix is None else r_mix[g * K:(g + 1) * K]
        missing = any(math.isnan(x) for x in m)
        if missing:
            m = o
        mo, mm = sum(o) / K, sum(m) / K                                # Eq. 21
        so = math.sqrt(sum((x - mo) ** 2 for x in o) / K)              # Eq. 22
        sm = math.sqrt(sum((x - mm) ** 2 for x in m) / K)              # Eq. 23
        r_g = sm / (so + sm + cfg.eps_std)                             # Eq. 24
        if not cfg.gating:
            w = 1.0
        else:
            w = (1.0 if mo < cfg.r_out_max else 0.0) * (1.0 if r_g < cfg.eps_mix else 0.0) * r_g  # Eq. 25
            # the other readings of the gate (cfg.gate_rule): a flat, not-maximal group the judge ranks
            flat = so <= cfg.eps_std and sm > cfg.eps_std and mo < cfg.r_out_max
            if cfg.gate_rule == 'eq25_plus_flat' and flat:
                w = 1.0
            elif cfg.gate_rule == 'flat_only':
                w = 1.0 if flat else 0.0
        if missing or r_mix is None:
            w = 0.0
        if cfg.difficulty:
            d = cfg.alpha_prio if cfg.tau_low < mo < cfg.tau_high else cfg.alpha_base  # Eq. 27
        else:
            d = 1.0
        for j in range(K):
            a_out = (o[j] - mo) / (so + cfg.adv_eps)                   # Eq. 26
            a_mix = (m[j] - mm) / (sm + cfg.adv_eps)
            adv.append(d * ((1 - w) * a_out + w * a_mix))             # Eq. 28
        r_gs.append(NAN if missing else r_g)
        ws.append(w)
        ds.append(d)
    w_bar = sum(ws) / G
    eps = cfg.eps_min + (1 - w_bar) * (cfg.eps_max - cfg.eps_min) if cfg.dynamic_clip else cfg.eps_max  # Eq. 29
    return adv, eps, r_gs, ws, ds


def random_batch(seed, G, K, nan_frac=0.0):
    gen = torch.Generator().manual_seed(seed)
    # Outcome rewards on the real grid: format in {0,1} + exec in k/6 steps, with some saturated groups.
    fmt = (torch.rand(G, K, generator=gen) < 0.8).double()
    exe = torch.randint(0, 7, (G, K), generator=gen).double() / 6 * fmt
    sat = torch.rand(G, generator=gen) < 0.2
    r_out = torch.where(sat[:, None], torch.full_like(fmt, 2.0), fmt + exe)
    judge = torch.tensor([0.0, 0.25, 0.5, 0.75, 0.9, 1.0], dtype=torch.float64)[
        torch.randint(0, 6, (G, K), generator=gen)]
    if nan_frac:
        judge = torch.where(torch.rand(G, K, generator=gen) < nan_frac, torch.full_like(judge, NAN), judge)
    return r_out.reshape(-1), (r_out + judge).reshape(-1)


CONFIGS = [
    AWPOConfig(),
    AWPOConfig(gating=False),
    AWPOConfig(difficulty=False),
    AWPOConfig(dynamic_clip=False),
    AWPOConfig(eps_mix=0.55, tau_low=1.0, tau_high=1.5, alpha_prio=3.0, eps_min=0.05),
]


def assert_matches_reference(r_out, r_mix, K, cfg):
    """The vectorised awpo_advantages equals the loop reference on every output; returns its result."""
    res = awpo_advantages(r_out, r_mix, K, cfg)
    adv, eps, r_g, w, d = reference(r_out.tolist(), r_mix.tolist(), K, cfg)
    torch.testing.assert_close(res.advantages, torch.tensor(adv, dtype=torch.float64), rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(res.w_mix, torch.tensor(w, dtype=torch.float64))
    torch.testing.assert_close(res.d, torch.tensor(d, dtype=torch.float64))
    torch.testing.assert_close(res.r_g, torch.tensor(r_g, dtype=torch.float64), equal_nan=True)
    assert res.clip_eps == pytest.approx(eps, abs=1e-12)
    return res


@pytest.mark.parametrize('cfg_i', range(len(CONFIGS)))
@pytest.mark.parametrize('seed', range(12))
def test_vectorised_matches_loop_reference(seed, cfg_i):
    cfg = CONFIGS[cfg_i]
    G, K = 3 + seed, [1, 2, 4, 8][seed % 4]
    r_out, r_mix = random_batch(seed, G, K, nan_frac=0.05 if seed % 3 == 0 else 0.0)
    res = assert_matches_reference(r_out, r_mix, K, cfg)
    assert torch.isfinite(res.advantages).all()


def test_float32_matches_reference_too():
    r_out, r_mix = random_batch(7, 16, 8, nan_frac=0.1)
    res = awpo_advantages(r_out.float(), r_mix.float(), 8)
    adv, *_ = reference(r_out.tolist(), r_mix.tolist(), 8, AWPOConfig())
    assert res.advantages.dtype == torch.float32
    torch.testing.assert_close(res.advantages, torch.tensor(adv, dtype=torch.float32), rtol=1e-4, atol=1e-4)


def test_hand_computed_group():
    """One group, K = 4, defaults (eps_mix 0.7, tau (0.5, 1.8), alpha 1/1.5, eps 0.1..0.2).

    R_out = [0, 1, 2, 1]   mean 1, pop. var (1+0+1+0)/4 = 0.5, std 0.70711
    R_mix = R_out + [0.5, 0.25, 1.0, 0.25] = [0.5, 1.25, 3.0, 1.25]
        mean 1.5, deviations [-1, -0.25, 1.5, -0.25], var (1 + .0625 + 2.25 + .0625)/4 = 0.84375, std 0.91856
    r_g = 0.91856 / (0.70711 + 0.91856 + 1e-6) = 0.56503 < 0.7 and mean 1 < 2  ->  w = 0.56503
    d   = 1.5 (0.5 < 1 < 1.8)
    A_out[0] = -1 / (0.70711 + 1e-4) = -1.41401;  A_mix[0] = -1 / (0.91856 + 1e-4) = -1.08854
    A[0] = 1.5 * (0.43497 * -1.41401 + 0.56503 * -1.08854) = -1.84520
    eps = 0.1 + (1 - 0.56503) * 0.1 = 0.14350
    """
    r_out = torch.tensor([0.0, 1.0, 2.0, 1.0], dtype=torch.float64)
    r_mix = r_out + torch.tensor([0.5, 0.25, 1.0, 0.25], dtype=torch.float64)
    res = awpo_advantages(r_out, r_mix, 4)
    assert res.r_g.item() == pytest.approx(0.56503, abs=1e-5)
    assert res.w_mix.item() == pytest.approx(0.56503, abs=1e-5)
    assert res.d.item() == 1.5
    assert res.advantages[0].item() == pytest.approx(-1.84520, abs=1e-4)
    assert res.clip_eps == pytest.approx(0.14350, abs=1e-5)
    assert res.advantages.sum().item() == pytest.approx(0.0, abs=1e-9)  # both views are centred


def test_gate_shuts_when_judge_dominates_and_when_saturated():
    # Group 1: outcome constant (sigma_out = 0), judge varies: r_g ~ 1 > eps_mix -> w = 0, A = 0.
    # Group 2: every sample at R_out_max = 2: saturation gate -> w = 0 even though r_g = 0.5.
    r_out = torch.tensor([1.0, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 2.0])
    r_mix = r_out + torch.tensor([0.0, 1.0, 0.25, 0.75, 0.0, 0.0, 0.0, 0.0])
    res = awpo_advantages(r_out, r_mix, 4)
    assert res.r_g[0].item() == pytest.approx(1.0, abs=1e-5)
    assert res.w_mix.tolist() == [0.0, 0.0]
    assert torch.equal(res.advantages, torch.zeros(8))
    assert res.clip_eps == pytest.approx(0.2)  # no reliance on the judge: eps_max


def test_ablation_gating_off_uses_mixed_reward_alone():
    r_out, r_mix = random_batch(3, 6, 4)
    cfg = AWPOConfig(gating=False, difficulty=False)
    res = awpo_advantages(r_out, r_mix, 4, cfg)
    grouped = r_mix.view(-1, 4)
    mean, std = grouped.mean(1, keepdim=True), grouped.std(1, correction=0, keepdim=True)
    torch.testing.assert_close(res.advantages, ((grouped - mean) / (std + cfg.adv_eps)).reshape(-1))
    assert torch.equal(res.w_mix, torch.ones(6, dtype=torch.float64))
    assert res.clip_eps == pytest.approx(cfg.eps_min)  # w_bar = 1


def test_ablation_difficulty_off_sets_d_to_one_and_scales_advantages():
    r_out, r_mix = random_batch(4, 8, 4)
    on = awpo_advantages(r_out, r_mix, 4, AWPOConfig())
    off = awpo_advantages(r_out, r_mix, 4, AWPOConfig(difficulty=False))
    assert torch.equal(off.d, torch.ones(8, dtype=torch.float64))
    torch.testing.assert_close(on.advantages, off.advantages * on.d.repeat_interleave(4))


def test_ablation_dynamic_clip_off_gives_eps_max():
    r_out, r_mix = random_batch(5, 8, 4)
    assert awpo_advantages(r_out, r_mix, 4, AWPOConfig(dynamic_clip=False, eps_max=0.25)).clip_eps == 0.25


def test_missing_judge_falls_back_to_outcome_view_for_that_group_only():
    r_out = torch.tensor([0.0, 1.0, 2.0, 1.0, 0.0, 1.0, 2.0, 1.0])
    judge = torch.tensor([0.5, 0.25, 1.0, 0.25, 0.5, NAN, 1.0, 0.25])
    res = awpo_advantages(r_out, r_out + judge, 4)
    assert res.judge_missing.tolist() == [False, True]
    assert res.w_mix[1].item() == 0.0 and math.isnan(res.r_g[1].item())
    assert torch.isfinite(res.advantages).all()
    outcome_only = awpo_advantages(r_out, None, 4)
    torch.testing.assert_close(res.advantages[4:], outcome_only.advantages[4:])
    assert res.metrics()['awpo/judge_missing_frac'] == 0.5


def test_all_judge_missing_equals_no_judge_except_the_missing_count():
    r_out, _ = random_batch(9, 5, 4)
    a = awpo_advantages(r_out, torch.full_like(r_out, NAN), 4)
    b = awpo_advantages(r_out, None, 4)
    torch.testing.assert_close(a.advantages, b.advantages)
    assert a.clip_eps == b.clip_eps == pytest.approx(0.2)
    assert a.metrics()['awpo/judge_missing_frac'] == 1.0 and b.metrics()['awpo/judge_missing_frac'] == 0.0


@pytest.mark.parametrize('K', [1, 2, 4])
def test_degenerate_groups_are_finite(K):
    for r_out in (torch.zeros(3 * K), torch.full((3 * K,), 2.0), torch.ones(3 * K)):
        for r_mix in (r_out.clone(), r_out + 0.5, None):
            for cfg in CONFIGS:
                res = awpo_advantages(r_out, r_mix, K, cfg)
                assert torch.isfinite(res.advantages).all()
                assert torch.equal(res.advantages, torch.zeros_like(res.advantages))  # nothing to prefer
                assert math.isfinite(res.clip_eps)
                assert cfg.eps_min <= res.clip_eps <= cfg.eps_max


def test_invariances_shift_and_permutation():
    r_out, r_mix = random_batch(11, 6, 4)
    base = awpo_advantages(r_out, r_mix, 4, AWPOConfig(difficulty=False))
    # A constant shift of the judge score within the batch moves no advantage (both views are centred).
    shifted = awpo_advantages(r_out, r_mix + 0.3, 4, AWPOConfig(difficulty=False))
    torch.testing.assert_close(shifted.advantages, base.advantages)
    # Permuting samples inside a group permutes their advantages the same way.
    perm = torch.cat([torch.randperm(4, generator=torch.Generator().manual_seed(g)) + 4 * g for g in range(6)])
    p = awpo_advantages(r_out[perm], r_mix[perm], 4, AWPOConfig(difficulty=False))
    torch.testing.assert_close(p.advantages, base.advantages[perm])


def test_bad_inputs_raise_clearly():
    with pytest.raises(ValueError, match='groups of 3'):
        awpo_advantages(torch.zeros(8), torch.zeros(8), 3)
    with pytest.raises(ValueError, match='r_out holds NaN'):
        awpo_advantages(torch.tensor([NAN, 1.0]), torch.zeros(2), 2)
    with pytest.raises(ValueError, match='equal length'):
        awpo_advantages(torch.zeros(4), torch.zeros(8), 4)


def test_metrics_summarise_the_batch():
    """Two groups, both in the priority band (means 1.0 and 1.25): prio_frac 1 even though every d is equal."""
    r_out = torch.tensor([0.0, 1.0, 2.0, 1.0, 1.0, 1.5, 1.0, 1.5])
    r_mix = r_out + torch.tensor([0.5, 0.25, 1.0, 0.25, NAN, 0.0, 0.0, 0.0])
    m = awpo_advantages(r_out, r_mix, 4).metrics()
    assert m['awpo/prio_frac'] == 1.0 and m['awpo/d_mean'] == 1.5
    assert m['awpo/judge_missing_frac'] == 0.5 and m['awpo/gate_open_frac'] == 0.5
    assert m['awpo/w_mix_mean'] == pytest.approx(0.56503 / 2, abs=1e-5)
    assert m['awpo/r_g_mean'] == pytest.approx(0.56503, abs=1e-5)  # the missing group is left out
    assert m['awpo/clip_eps'] == pytest.approx(0.1 + (1 - 0.56503 / 2) * 0.1, abs=1e-5)
    off = awpo_advantages(r_out, r_mix, 4, AWPOConfig(difficulty=False)).metrics()
    assert off['awpo/prio_frac'] == 0.0 and off['awpo/d_mean'] == 1.0


# ------------------------------------------------------------------ the gate's readings (cfg.gate_rule, issue 22)
RULE_CONFIGS = [
    AWPOConfig(gate_rule='eq25_plus_flat'),
    AWPOConfig(gate_rule='flat_only'),
    AWPOConfig(gate_rule='eq25_plus_flat', difficulty=False, dynamic_clip=False),
    AWPOConfig(gate_rule='flat_only', eps_mix=0.55, tau_low=1.0, tau_high=1.5, alpha_prio=3.0, eps_min=0.05),
]


def random_batch_with_flat_groups(seed, G, K, nan_frac=0.0):
    """random_batch, with about a third of the groups given one outcome value (0, 1 or 1.5: flat, not maximal)."""
    r_out, r_mix = random_batch(seed, G, K, nan_frac)
    judge = (r_mix - r_out).view(G, K)
    gen = torch.Generator().manual_seed(1000 + seed)
    flat = torch.rand(G, generator=gen) < 0.35
    flat[0] = True
    level = torch.tensor([0.0, 1.0, 1.5], dtype=torch.float64)[torch.randint(0, 3, (G,), generator=gen)]
    ro = torch.where(flat[:, None], level[:, None].expand(G, K), r_out.view(G, K))
    return ro.reshape(-1), (ro + judge).reshape(-1)


@pytest.mark.parametrize('cfg_i', range(len(RULE_CONFIGS)))
@pytest.mark.parametrize('seed', range(12))
def test_gate_readings_match_loop_reference(seed, cfg_i):
    cfg = RULE_CONFIGS[cfg_i]
    G, K = 3 + seed, [2, 4, 8, 1][seed % 4]
    r_out, r_mix = random_batch_with_flat_groups(seed, G, K, nan_frac=0.05 if seed % 3 == 0 else 0.0)
    res = assert_matches_reference(r_out, r_mix, K, cfg)
    if K > 1 and seed % 3:  # the batch does hold flat groups the new readings open (so this test can fail)
        assert (res.w_mix == 1.0).any()


def _three_groups():
    """K = 4, three groups, defaults (eps_mix 0.7, tau (0.5, 1.8), alpha 1/1.5, eps 0.1..0.2):

    all-wrong  R_out = [1, 1, 1, 1] (wrong tool), J = [0, 1, .25, .75]: sigma_out = 0; R_mix - mean = J - 0.5 =
               [-.5, .5, -.25, .25], var (.25 + .25 + .0625 + .0625)/4 = 0.15625, sigma_mix = 0.395285;
               r_g = 0.395285 / (0 + 0.395285 + 1e-6) = 0.999997 > 0.7: Eq. 25 shuts. d = 1.5 (0.5 < 1 < 1.8).
               With w = 1: A = 1.5 * [-.5, .5, -.25, .25] / (0.395285 + 1e-4) = [-1.89687, 1.89687, -0.94843, 0.94843]
    all-right  R_out = [2, 2, 2, 2], J = [0, .5, 0, 1]: mean = R_max: shut under every rule, A = 0.
    mixed      R_out = [0, 1, 2, 1], J = [.5, .25, 1, .25]: test_hand_computed_group: r_g = w(Eq. 25) = 0.56503,
               A[0] = -1.84520; outcome alone: A[0] = 1.5 * -1 / (0.70711 + 1e-4) = -2.12102.
    """
    r_out = torch.tensor([1.0, 1, 1, 1, 2, 2, 2, 2, 0, 1, 2, 1], dtype=torch.float64)
    judge = torch.tensor([0, 1, .25, .75, 0, .5, 0, 1, .5, .25, 1, .25], dtype=torch.float64)
    return r_out, r_out + judge


FLAT_A = [-1.89687, 1.89687, -0.94843, 0.94843]


@pytest.mark.parametrize('rule, w, adv, eps', [
    # eq25: only the mixed group, w = r_g; eps = 0.1 + (1 - 0.56503/3) * 0.1
    ('eq25', [0.0, 0.0, 0.56503], [0.0] * 4 + [0.0] * 4 + [-1.84520], 0.18117),
    # + the all-wrong group with w = 1: eps = 0.1 + (1 - 1.56503/3) * 0.1
    ('eq25_plus_flat', [1.0, 0.0, 0.56503], FLAT_A + [0.0] * 4 + [-1.84520], 0.14783),
    # the all-wrong group only; the mixed group gets the outcome advantage alone: eps = 0.1 + (1 - 1/3) * 0.1
    ('flat_only', [1.0, 0.0, 0.0], FLAT_A + [0.0] * 4 + [-2.12102], 0.16667),
])
def test_gate_readings_hand_computed_all_wrong_all_right_and_mixed(rule, w, adv, eps):
    r_out, r_mix = _three_groups()
    res = awpo_advantages(r_out, r_mix, 4, AWPOConfig(gate_rule=rule).validate())
    assert res.w_mix.tolist() == pytest.approx(w, abs=1e-5)
    assert res.advantages[:len(adv)].tolist() == pytest.approx(adv, abs=1e-4)
    assert torch.equal(res.advantages[4:8], torch.zeros(4, dtype=torch.float64))  # all-right: nothing to prefer
    assert res.clip_eps == pytest.approx(eps, abs=1e-5)
    assert res.r_g[0].item() == pytest.approx(0.999997, abs=1e-6)  # Eq. 24 is reported whatever the rule


def test_gate_readings_leave_flat_groups_without_judge_spread_or_judge_shut():
    """A flat group whose judge is flat too (nothing to rank), or whose judge score is missing, stays shut."""
    r_out = torch.tensor([1.0, 1, 1, 1, 0, 0, 0, 0])
    r_mix = r_out + torch.tensor([0.5, 0.5, 0.5, 0.5, 0.25, NAN, 1.0, 0.0])
    for rule in ('eq25_plus_flat', 'flat_only'):
        res = awpo_advantages(r_out, r_mix, 4, AWPOConfig(gate_rule=rule))
        assert res.w_mix.tolist() == [0.0, 0.0] and torch.equal(res.advantages, torch.zeros(8))
        assert res.clip_eps == pytest.approx(0.2)
    # the all-malformed group (R_out = 0, below tau_low: d = 1) opens once its judge score is there
    r_mix[5] = 0.25
    res = awpo_advantages(r_out, r_mix, 4, AWPOConfig(gate_rule='flat_only'))
    assert res.w_mix.tolist() == [0.0, 1.0] and res.d.tolist() == [1.5, 1.0]
    judge = torch.tensor([0.25, 0.25, 1.0, 0.0])
    dev = judge - judge.mean()
    torch.testing.assert_close(res.advantages[4:], dev / (dev.square().mean().sqrt() + 1e-4))


def test_default_rule_is_eq25_and_the_readings_differ_from_it_only_in_flat_groups():
    r_out, r_mix = random_batch_with_flat_groups(5, 12, 8)
    base = awpo_advantages(r_out, r_mix, 8, AWPOConfig())
    assert AWPOConfig().gate_rule == 'eq25'
    eq = awpo_advantages(r_out, r_mix, 8, AWPOConfig(gate_rule='eq25'))
    assert torch.equal(eq.advantages, base.advantages) and eq.clip_eps == base.clip_eps
    plus = awpo_advantages(r_out, r_mix, 8, AWPOConfig(gate_rule='eq25_plus_flat'))
    flat = r_out.view(12, 8).std(dim=1) == 0
    assert flat.any() and (~flat).any()
    same = ~flat.repeat_interleave(8)
    assert torch.equal(plus.advantages[same], base.advantages[same])


def test_gate_rule_from_yaml_env_and_aliases_with_clear_errors(tmp_path):
    """The setting: YAML (the ablation configs), AWPO_GATE_RULE, the issue's names as aliases; a bad name or a
    rule without a gate is refused naming the field and where its value came from."""
    from pathlib import Path
    configs = Path(__file__).resolve().parents[1] / 'shells' / 'configs'
    assert AWPOConfig.load(configs / 'awpo.yaml', env={}).gate_rule == 'eq25'
    assert AWPOConfig.load(configs / 'awpo_gate_plus_flat.yaml', env={}).gate_rule == 'eq25_plus_flat'
    assert AWPOConfig.load(configs / 'awpo.yaml', env={'AWPO_GATE_RULE': 'flat_only'}).gate_rule == 'flat_only'
    assert AWPOConfig.load(configs / 'awpo.yaml', env={'AWPO_GATE_RULE': 'zero_spread'}).gate_rule == 'eq25_plus_flat'
    assert AWPOConfig(gate_rule='zero_spread_only').validate().gate_rule == 'flat_only'
    with pytest.raises(ValueError, match=r"'gate_rule' \(in environment variable AWPO_GATE_RULE\): must be one of "
                                         r"eq25, eq25_plus_flat, flat_only"):
        AWPOConfig.load(configs / 'awpo.yaml', env={'AWPO_GATE_RULE': 'prose'})
    bad = tmp_path / 'bad.yaml'
    bad.write_text(f'base: {configs / "awpo.yaml"}\ngate_rule: eq26\n')
    with pytest.raises(ValueError, match=rf"'gate_rule' \(in file {bad}\)"):
        AWPOConfig.load(bad, env={})
    with pytest.raises(ValueError, match="gating is off"):
        AWPOConfig.load(configs / 'awpo_no_gating.yaml', env={'AWPO_GATE_RULE': 'flat_only'})
    # the loaded setting is what awpo_advantages applies (the trainer passes its loaded config on)
    r_out, r_mix = _three_groups()
    cfg = AWPOConfig.load(configs / 'awpo_gate_flat_only.yaml', env={})
    assert awpo_advantages(r_out, r_mix, 4, cfg).w_mix.tolist() == [1.0, 0.0, 0.0]
