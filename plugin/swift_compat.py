"""Thin adapter: what differs between the ms-swift GRPOTrainers AWPO runs on (plugin/swift_version.py's range,
4.3.x next to 4.4-4.6).

ms-swift 4.4 renamed the GRPO batch from ``inputs`` (a list of dicts) to ``samples`` (GRPOSample objects) and
moved its reward statistics into ``swift.rl_core.advantage.compute_reward_metrics``. Read from the released
wheels (4.0.4, 4.1.3, 4.2.3, 4.3.2 against 4.4.2, 4.5.3, 4.6.0), the rest AWPO relies on is the same: the
order in ``_generate_and_score_completions`` (``_score_completions`` -> ``_prepare_batch_inputs`` ->
``_compute_advantages``, all called positionally), the attributes in ``plugin.trainer.SWIFT_ATTRIBUTES`` and
the loss reading ``epsilon_low`` / ``epsilon_high`` at every call. So the adapter is two things:

* :data:`SIGNATURES_BEFORE_4_4`: the parameter names the start-up check accepts besides 4.4's (AWPO's overrides
  take the same positions; ``_compute_loss_and_metrics`` passes its arguments through);
* :func:`reward_metrics`: ms-swift's own ``compute_reward_metrics`` where it exists, else the same statistics
  computed here as ms-swift 4.0-4.3 compute them inline (so runs stay comparable with stock GRPO).

4.0-4.2 look the same to this adapter, but their GRPOTrainer needs vllm to import (``swift.rollout.multi_turn``),
so they were never run here and the range refuses them; 3.12 (``swift.trainers.rlhf_trainer``, other CLI flags)
is not covered either.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List

import torch

# method -> the parameters (after self) ms-swift 4.0-4.3 pass it; 4.4+ in plugin.trainer.SWIFT_METHODS.
SIGNATURES_BEFORE_4_4 = {
    '_compute_advantages': ('inputs', 'rewards_per_func', 'batch_encoded_inputs'),
    '_prepare_batch_inputs': ('inputs',),
    '_compute_loss_and_metrics': ('model', 'inputs'),
}


@dataclass
class RewardMetrics:
    """The reward statistics ms-swift logs (``reward``, ``reward_std``, ``frac_reward_zero_std``, per column)."""
    reward_mean: float
    reward_std: float
    frac_reward_zero_std: float
    per_func_mean: Dict[str, float]
    per_func_std: Dict[str, float]


def reward_metrics_local(rewards: torch.Tensor, rewards_per_func: torch.Tensor, reward_func_names: List[str],
                         num_generations: int, scale_rewards: str) -> RewardMetrics:
    """ms-swift's reward statistics, for releases without ``swift.rl_core`` (4.0-4.3 compute them inline in
    ``_compute_advantages``): group mean of the weighted reward, its spread as ``scale_rewards`` defines it, the
    share of groups with zero spread, each column's NaN-ignoring mean and (unbiased) std."""
    groups = rewards.view(-1, num_generations)
    if scale_rewards == 'batch':
        std = rewards.std().item() if rewards.numel() > 1 else 0.0
    elif scale_rewards in ('group', 'none', 'gdpo'):
        std = groups.std(-1).mean().item() if num_generations > 1 else 0.0
    else:
        std = 0.0
    if num_generations > 1:
        group_std = groups.std(dim=1)
        zero = torch.isclose(group_std, torch.zeros_like(group_std))
    else:
        zero = torch.ones(groups.size(0), dtype=torch.bool)
    means, stds = {}, {}
    for i, name in enumerate(reward_func_names):
        col = rewards_per_func[:, i]
        valid = col[~torch.isnan(col)]
        means[name] = torch.nanmean(col).item()
        stds[name] = valid.std().item() if valid.numel() > 1 else 0.0
    return RewardMetrics(groups.mean(-1).mean().item(), std, zero.float().mean().item(), means, stds)


def reward_metrics(rewards: torch.Tensor, rewards_per_func: torch.Tensor, reward_func_names: List[str],
                   num_generations: int, scale_rewards: str):
    """ms-swift's ``compute_reward_metrics`` (4.4+), else :func:`reward_metrics_local`. Same fields either way."""
    try:
        from swift.rl_core.advantage import compute_reward_metrics
    except ImportError:
        compute_reward_metrics = reward_metrics_local
    return compute_reward_metrics(rewards=rewards, rewards_per_func=rewards_per_func,
                                  reward_func_names=reward_func_names, num_generations=num_generations,
                                  scale_rewards=scale_rewards)
