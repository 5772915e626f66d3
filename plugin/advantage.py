"""AWPO's maths (paper Sec. 3.2, Eqs. 21-29; Algorithm 1), as pure tensor functions.

No ms-swift import here: plain 1-D tensors in, tensors out. Rewards arrive as ms-swift lays them out:
``N = G * K`` samples, the K completions of each prompt contiguous (``rewards.view(G, K)``).

Notation (paper -> code):
    R^out_{g,j}           r_out.view(G, K)
    R^mix_{g,j}           r_mix.view(G, K)   (= R^out + R^reasoning; NaN where the judge failed)
    sigma-hat (Eqs. 22-23) population std (1/K), ``correction=0``
    r_g      (Eq. 24)     AWPOResult.r_g
    w^mix_g  (Eq. 25)     AWPOResult.w_mix   (or one of the other readings of the gate, ``cfg.gate_rule``:
                                              :data:`GATE_RULES`)
    d_g      (Eq. 27)     AWPOResult.d
    A^hyper  (Eq. 28)     AWPOResult.advantages
    epsilon  (Eq. 29)     AWPOResult.clip_eps
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from plugin.config import AWPOConfig

__all__ = ['AWPOResult', 'awpo_advantages', 'group_stats', 'gating_weight', 'gating_weight_eq25_plus_flat',
           'gating_weight_flat_only', 'flat_groups', 'GATE_RULES', 'difficulty_weight', 'dynamic_clip_radius']


@dataclass
class AWPOResult:
    """Output of :func:`awpo_advantages`.

    advantages:     [N] A^hyper (Eq. 28), finite.
    clip_eps:       float, the batch clip radius (Eq. 29).
    r_g:            [G] variance ratio (Eq. 24); NaN for groups whose judge score is missing.
    w_mix:          [G] gate weight (Eq. 25); 0 for groups whose judge score is missing.
    d:              [G] difficulty weight (Eq. 27).
    judge_missing:  [G] bool, True where any sample of the group has no judge score.
    mean_out:       [G] group mean of the outcome reward (Eq. 21), used by the gates.
    prio:           [G] bool, True where Eq. 27 gave the group alpha_prio (medium difficulty).
    """
    advantages: torch.Tensor
    clip_eps: float
    r_g: torch.Tensor
    w_mix: torch.Tensor
    d: torch.Tensor
    judge_missing: torch.Tensor
    mean_out: torch.Tensor
    prio: torch.Tensor

    def metrics(self) -> dict:
        """Scalar summaries for the trainer's logs (``awpo/...``)."""
        g = max(self.w_mix.numel(), 1)
        return {
            'awpo/clip_eps': float(self.clip_eps),
            'awpo/w_mix_mean': float(self.w_mix.float().mean()) if self.w_mix.numel() else 0.0,
            'awpo/gate_open_frac': float((self.w_mix > 0).sum()) / g,
            'awpo/d_mean': float(self.d.float().mean()) if self.d.numel() else 0.0,
            'awpo/prio_frac': float(self.prio.sum()) / g,
            'awpo/judge_missing_frac': float(self.judge_missing.sum()) / g,
            'awpo/r_g_mean': float(torch.nanmean(self.r_g.float())) if (~self.judge_missing).any() else 0.0,
        }


def group_stats(rewards: torch.Tensor):
    """Eqs. 21-23 over the last dim: mean, deviations from it, and population std (1/K).

    Written out rather than ``torch.var_mean``: for GRPO's short rows (K = 4..16) the fused reduction is
    about 10x slower on CPU than these elementwise ops.
    """
    mean = rewards.mean(dim=-1)
    dev = rewards - mean[..., None]
    return mean, dev, dev.square().mean(dim=-1).sqrt_()


def gating_weight(std_out: torch.Tensor, std_mix: torch.Tensor, mean_out: torch.Tensor,
                  cfg: AWPOConfig):
    """Eq. 24 (r_g) and Eq. 25 (w^mix_g = 1[mean_out < R_max] * 1[r_g < eps_mix] * r_g). Returns (r_g, w)."""
    r_g = std_mix / (std_out + std_mix + cfg.eps_std)
    if not cfg.gating:  # Table 5 "w/o variance-aware gating": the mixed reward alone
        return r_g, torch.ones_like(r_g)
    open_ = (mean_out < cfg.r_out_max) & (r_g < cfg.eps_mix)
    return r_g, r_g * open_


# ---------------------------------------------------------------------- the gate's other readings
# The paper's prose (Sec. 3.2) says AWPO "selectively incorporates reasoning reward signals when the variance
# induced by the outcome reward is statistically insignificant"; Eq. 25 as written shuts the gate exactly there
# (sigma_out = 0 gives r_g ~ 1 > eps_mix). The two functions below are the prose's readings, selected by
# ``AWPOConfig.gate_rule`` (docs/settings.md); ``gating_weight`` (Eq. 25 as written) stays the default.

def flat_groups(std_out: torch.Tensor, std_mix: torch.Tensor, mean_out: torch.Tensor, cfg: AWPOConfig):
    """The groups the prose means: constant, not-maximal outcome reward that the judge still ranks:
    F_g = 1[sigma_out_g <= eps_std] * 1[sigma_mix_g > eps_std] * 1[mean_out_g < R_max].

    sigma_out = 0 is tested at Eq. 24's guard eps_std (equal rewards can leave a rounding residue in the std).
    Where the judge adds no spread either (sigma_mix = 0) the group has nothing to rank and is not counted, so
    it does not tighten Eq. 29's radius; an all-correct group (mean = R_max) is excluded as in Eq. 25."""
    return (std_out <= cfg.eps_std) & (std_mix > cfg.eps_std) & (mean_out < cfg.r_out_max)


def gating_weight_eq25_plus_flat(std_out: torch.Tensor, std_mix: torch.Tensor, mean_out: torch.Tensor,
                                 cfg: AWPOConfig):
    """gate_rule ``eq25_plus_flat``: Eq. 25, and the judge alone where the outcome reward is flat:
    w_g = 1 if F_g (:func:`flat_groups`), else w^mix_g of Eq. 25. Returns (r_g, w).

    In a flat group A^out = 0 (Eq. 26), so w = 1 makes Eq. 28 the judge's group-normalised advantage there;
    every other group is weighted exactly as by :func:`gating_weight`."""
    r_g, w = gating_weight(std_out, std_mix, mean_out, cfg)
    if not cfg.gating:
        return r_g, w
    return r_g, torch.where(flat_groups(std_out, std_mix, mean_out, cfg), torch.ones_like(w), w)


def gating_weight_flat_only(std_out: torch.Tensor, std_mix: torch.Tensor, mean_out: torch.Tensor,
                            cfg: AWPOConfig):
    """gate_rule ``flat_only``: the judge only where the outcome reward is flat, never blended elsewhere:
    w_g = 1[F_g] (:func:`flat_groups`). Returns (r_g, w); r_g (Eq. 24) is still reported.

    Where the outcome reward has spread, Eq. 28 is the outcome advantage alone (GRPO's, times d_g)."""
    r_g, w = gating_weight(std_out, std_mix, mean_out, cfg)
    if not cfg.gating:
        return r_g, w
    return r_g, flat_groups(std_out, std_mix, mean_out, cfg).to(r_g.dtype)


# gate_rule name (plugin/config.py GATE_RULES) -> the function computing (r_g, w^mix_g).
GATE_RULES = {'eq25': gating_weight, 'eq25_plus_flat': gating_weight_eq25_plus_flat,
              'flat_only': gating_weight_flat_only}


def difficulty_weight(mean_out: torch.Tensor, cfg: AWPOConfig):
    """Eq. 27: d_g = alpha_base + (alpha_prio - alpha_base) * 1[tau_low < mean_out < tau_high].
    Returns (d, prio) where prio marks the groups given alpha_prio."""
    if not cfg.difficulty:  # Table 5 "w/o difficulty-aware weighting"
        return torch.ones_like(mean_out), torch.zeros_like(mean_out, dtype=torch.bool)
    prio = (mean_out > cfg.tau_low) & (mean_out < cfg.tau_high)
    return torch.where(prio, cfg.alpha_prio, cfg.alpha_base).to(mean_out.dtype), prio


def dynamic_clip_radius(w_mix: torch.Tensor, cfg: AWPOConfig) -> float:
    """Eq. 29: eps = eps_min + (1 - mean_g w^mix_g) * (eps_max - eps_min); fixed eps_max when ablated."""
    if not cfg.dynamic_clip or w_mix.numel() == 0:  # Table 5 "w/o dynamic clipping"
        return float(cfg.eps_max)
    w_bar = float(w_mix.mean())
    return float(cfg.eps_min + (1.0 - w_bar) * (cfg.eps_max - cfg.eps_min))


def awpo_advantages(r_out: torch.Tensor, r_mix: torch.Tensor | None, num_generations: int,
                    cfg: AWPOConfig | None = None) -> AWPOResult:
    """AWPO advantages (Eqs. 21-28) and the batch clip radius (Eq. 29), vectorised over groups.

    Args:
        r_out: [N] outcome reward R^out, finite. N = G * K, groups contiguous.
        r_mix: [N] mixed reward R^mix = R^out + R^reasoning. NaN marks a sample whose judge score is
            missing: its whole group falls back to the outcome view (w^mix_g = 0). ``None`` means no judge
            at all: w^mix = 0 everywhere (outcome-only), without counting groups as missing.
        num_generations: K, completions per prompt.
        cfg: hyper-parameters; defaults to ``AWPOConfig()``.

    Returns:
        AWPOResult with advantages [N] and per-group r_g, w_mix, d [G].
    """
    cfg = cfg or AWPOConfig()
    no_judge = r_mix is None
    if no_judge:
        r_mix = r_out
    if r_out.dim() != 1 or r_mix.shape != r_out.shape:
        raise ValueError(f'awpo_advantages: r_out and r_mix must be 1-D of equal length, got '
                         f'{tuple(r_out.shape)} and {tuple(r_mix.shape)}')
    K = int(num_generations)
    if K < 1 or r_out.numel() % K:
        raise ValueError(f'awpo_advantages: {r_out.numel()} rewards cannot be split into groups of {K}')
    dtype = r_out.dtype if r_out.is_floating_point() else torch.float32
    ro = r_out.to(dtype).view(-1, K)
    rm = r_mix.to(dtype).view(-1, K)

    # Both views in one [2, G, K] tensor: every statistic below is computed once for the pair.
    judge_missing = torch.isnan(rm.sum(dim=1))  # a NaN anywhere in a group propagates to its sum
    rm = torch.where(judge_missing[:, None], ro, rm)  # keeps every later op finite; such groups get w = 0
    mean, dev, std = group_stats(torch.stack((ro, rm)))   # Eqs. 21-23, [2, G] / [2, G, K] / [2, G]
    mean_out = mean[0]
    if not math.isfinite(float(mean_out.sum())):  # NaN/inf anywhere in r_out reaches this sum
        raise ValueError('awpo_advantages: r_out holds NaN/inf; outcome rewards must be finite '
                         '(only the judge may be missing)')
    r_g, w = GATE_RULES[cfg.gate_rule](std[0], std[1], mean_out, cfg)  # Eqs. 24-25 (or cfg.gate_rule)
    if no_judge:
        w = torch.zeros_like(w)
    w = w.masked_fill(judge_missing, 0.0)
    d, prio = difficulty_weight(mean_out, cfg)             # Eq. 27

    # Eqs. 26 + 28 folded into per-group coefficients: A = d(1-w)/(s_out+e) dev_out + d w/(s_mix+e) dev_mix.
    coef = torch.stack((1.0 - w, w)) * d / (std + cfg.adv_eps)   # [2, G]
    adv = (coef[:, :, None] * dev).sum(dim=0)

    return AWPOResult(advantages=adv.reshape(-1), clip_eps=dynamic_clip_radius(w, cfg),
                      r_g=r_g.masked_fill(judge_missing, float('nan')), w_mix=w, d=d,
                      judge_missing=judge_missing, mean_out=mean_out, prio=prio)
