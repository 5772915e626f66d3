"""Clipped policy-gradient training of the toy policy (benchmarks/sim_env.py), vectorised over seeds.

Advantages come from the project's own code, never a copy:
  * GRPO and Mixed-reward GRPO: ms-swift's stock ``swift.rl_core.advantage.compute_advantages``
    (group mean, unbiased group std + 1e-4), on R_out alone or on R_out + J (plain group normalisation);
  * GDPO: the same ms-swift function with ``scale_rewards='gdpo'`` on the two columns [R_out, J] (each
    normalised within its group, summed, whitened over the batch), called per seed (the whitening is per batch);
  * AWPO, its ablations and its gate readings (``gate_rule``): ``plugin.advantage.awpo_advantages`` with the
    repo's configs ``shells/configs/awpo*.yaml`` read by the plugin's own loader (an ablation file is
    ``base: awpo.yaml`` + its one switch), called per seed (its clip radius, Eq. 29, is a per-batch quantity).
The objective is Eq. 30 / Algorithm 1: min(r A, clip(r, 1 - eps, 1 + eps) A), averaged over the batch,
with ``epochs`` passes over each generation batch (ms-swift's ``num_iterations``) so the clip matters.
One answer = one action, so the importance ratio is per answer.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence

import numpy as np
import torch
from swift.rl_core.advantage import compute_advantages

from plugin import advantage
from plugin.config import AWPOConfig

from .sim_env import JUDGE_LEVELS, EnvConfig, JudgeLevel, make_env

CONFIG_DIR = Path(__file__).resolve().parent.parent / 'shells' / 'configs'

# method -> (uses the judge, AWPO config file or None for ms-swift's stock advantage)
METHODS = {
    'grpo': (False, None),
    'mixed_grpo': (True, None),
    'gdpo': (True, None),
    'awpo': (True, 'awpo.yaml'),
    'awpo_gate_plus_flat': (True, 'awpo_gate_plus_flat.yaml'),
    'awpo_gate_flat_only': (True, 'awpo_gate_flat_only.yaml'),
    'awpo_no_gating': (True, 'awpo_no_gating.yaml'),
    'awpo_no_difficulty': (True, 'awpo_no_difficulty.yaml'),
    'awpo_no_clip': (True, 'awpo_no_clip.yaml'),
}
AWPO_METRICS = ('clip_eps', 'w_mix_mean', 'gate_open_frac', 'r_g_mean', 'd_mean', 'prio_frac')


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 200
    groups: int = 32        # prompts per generation batch (G)
    k: int = 8              # completions per prompt (K, num_generations)
    epochs: int = 4         # optimisation passes per generation batch (num_iterations)
    lr: float = 0.01        # Adam, on theta and the tabular logits. Set once, on GRPO alone, so that the
    #                         baseline crosses 50 % success near the middle of the 200 steps (not saturated)
    eps_clip: float = 0.2   # PPO/GRPO radius of the stock methods (= eps_max of shells/configs/awpo.yaml)


def load_awpo_config(name: str) -> AWPOConfig:
    """The repo's own YAML (environment overrides ignored, so a shell's AWPO_* cannot change the study)."""
    return AWPOConfig.load(CONFIG_DIR / name, env={})


def stock_advantages(r_out: torch.Tensor, judge: Optional[torch.Tensor], k: int) -> torch.Tensor:
    """ms-swift's GRPO advantage on R_out (judge None) or on R_out + J (Mixed-reward GRPO). [..., K] in/out."""
    cols = [r_out.reshape(-1)] + ([] if judge is None else [judge.reshape(-1)])
    rpf = torch.stack(cols, dim=1)
    adv, _ = compute_advantages(rpf, torch.ones(len(cols)), k, advantage_estimator='grpo', scale_rewards='group')
    return adv.view_as(r_out)


def gdpo_advantages(r_out: torch.Tensor, judge: torch.Tensor, k: int) -> torch.Tensor:
    """ms-swift's GDPO (``compute_advantages(..., scale_rewards='gdpo')``) on the columns [R_out, J], weights
    1 and 1 (shells/recipes/gdpo.sh), one seed's batch at a time: its final whitening is over the whole batch,
    so seeds must not share it. r_out, judge [S, G, K] -> [S, G, K]."""
    out = []
    for ro, js in zip(r_out, judge):
        rpf = torch.stack((ro.reshape(-1), js.reshape(-1)), dim=1)
        adv, _ = compute_advantages(rpf, torch.ones(2), k, advantage_estimator='grpo', scale_rewards='gdpo')
        out.append(adv.view_as(ro))
    return torch.stack(out)


def awpo_batch(r_out: torch.Tensor, judge: torch.Tensor, k: int, cfg: AWPOConfig):
    """plugin.advantage.awpo_advantages on one seed's batch [G, K]: R_mix = R_out + J (Eq. 20)."""
    res = advantage.awpo_advantages(r_out.reshape(-1), (r_out + judge).reshape(-1), k, cfg)
    return res.advantages.view_as(r_out), res


def _policy_logits(theta, b, phi, idx=None):
    """logit = phi . theta + b. theta [S, D]; phi [S, P, M, D]; b [S, P, M] (None: held-out, no tabular)."""
    if idx is not None:
        rows = torch.arange(phi.shape[0])[:, None]
        phi, b = phi[rows, idx], b[rows, idx]
    logits = (phi * theta[:, None, None, :]).sum(-1)
    return logits if b is None else logits + b


def _expected(logits, values):
    return (torch.softmax(logits, dim=-1) * values).sum(-1).mean(-1)  # mean over prompts, [S]


def train(method: str, judge: Optional[JudgeLevel], seeds: Sequence[int], tc: TrainConfig = TrainConfig(),
          ec: EnvConfig = EnvConfig(), progress: Optional[Callable[[int], None]] = None) -> Dict[str, np.ndarray]:
    """Train one method against one judge for every seed at once. Returns curves [S, steps + 1] (index 0 =
    before training) and per-step AWPO statistics [S, steps] (NaN for the stock methods)."""
    uses_judge, cfg_name = METHODS[method]
    if uses_judge and judge is None:
        raise ValueError(f'method {method!r} needs a judge level')
    cfg = load_awpo_config(cfg_name) if cfg_name else None
    envs = [make_env(s, ec) for s in seeds]
    S, P, M, K, G = len(seeds), ec.n_train, ec.n_answers, tc.k, tc.groups
    if G > P:
        raise ValueError(f'groups={G} exceeds the {P} training prompts')
    stack = lambda name: torch.stack([getattr(e, name) for e in envs])  # noqa: E731
    phi, r_out, correct = stack('phi'), stack('r_out'), stack('correct').float()
    phi_e, r_out_e, correct_e = stack('phi_eval'), stack('r_out_eval'), stack('correct_eval').float()
    jscore = torch.stack([e.judge(judge) for e in envs]) if uses_judge else None
    theta = stack('theta0').clone().requires_grad_(True)
    b = torch.zeros(S, P, M, requires_grad=True)
    opt = torch.optim.Adam([theta, b], lr=tc.lr)
    # Batching and sampling: one generator per seed (a seed's run does not depend on the other seeds), the
    # same for every method (common random numbers: methods are compared on the same draws).
    gens = [torch.Generator().manual_seed(10_007 * int(s) + 1) for s in seeds]
    perms = [torch.empty(0, dtype=torch.long) for _ in seeds]
    rows = torch.arange(S)[:, None]

    out = {k: np.zeros((S, tc.steps + 1)) for k in ('success', 'success_heldout', 'r_out', 'r_out_heldout')}
    out.update({k: np.full((S, tc.steps), np.nan) for k in AWPO_METRICS})
    out['dead_frac'] = np.zeros((S, tc.steps))  # groups whose outcome reward has no spread (GRPO advantage 0)
    out['batch_judge_mean'] = np.full((S, tc.steps), np.nan)
    out['clip_frac'] = np.zeros((S, tc.steps))  # samples whose ratio left [1-eps, 1+eps] by the last pass

    def evaluate(t):
        with torch.no_grad():
            lg = _policy_logits(theta, b, phi)
            lg_e = _policy_logits(theta, None, phi_e)
            out['success'][:, t] = _expected(lg, correct).numpy()
            out['r_out'][:, t] = _expected(lg, r_out).numpy()
            out['success_heldout'][:, t] = _expected(lg_e, correct_e).numpy()
            out['r_out_heldout'][:, t] = _expected(lg_e, r_out_e).numpy()

    evaluate(0)
    for step in range(tc.steps):
        idx = []
        for s in range(S):  # a shuffled pass over the prompts, then a new shuffle (a dataloader's epochs)
            if perms[s].numel() < G:
                perms[s] = torch.cat([perms[s], torch.randperm(P, generator=gens[s])])
            idx.append(perms[s][:G])
            perms[s] = perms[s][G:]
        idx = torch.stack(idx)                                               # [S, G]
        u = torch.stack([torch.rand(G, K, generator=g) for g in gens])       # [S, G, K]
        with torch.no_grad():
            logits = _policy_logits(theta, b, phi, idx)                      # [S, G, M]
            cdf = torch.softmax(logits, dim=-1).cumsum(-1)
            ans = torch.searchsorted(cdf, u).clamp_(max=M - 1)               # [S, G, K] sampled answers
            old_logp = torch.log_softmax(logits, dim=-1).gather(-1, ans)
            ro = r_out[rows, idx].gather(-1, ans)                            # R_out of each sample
            js = jscore[rows, idx].gather(-1, ans) if uses_judge else None
        out['dead_frac'][:, step] = (ro.std(dim=-1) == 0).float().mean(-1).numpy()
        if js is not None:
            out['batch_judge_mean'][:, step] = js.mean(dim=(1, 2)).numpy()
        if method == 'gdpo':
            adv = gdpo_advantages(ro, js, K)
            eps = torch.full((S,), tc.eps_clip)
        elif cfg is None:
            adv = stock_advantages(ro, js, K)
            eps = torch.full((S,), tc.eps_clip)
        else:
            advs, epss = [], []
            for s in range(S):
                a_s, res = awpo_batch(ro[s], js[s], K, cfg)
                advs.append(a_s)
                epss.append(res.clip_eps)
                for key, val in res.metrics().items():
                    name = key.split('/', 1)[1]
                    if name in AWPO_METRICS:
                        out[name][s, step] = val
            adv, eps = torch.stack(advs), torch.tensor(epss)
        lo, hi = (1 - eps)[:, None, None], (1 + eps)[:, None, None]
        for _ in range(tc.epochs):  # Eq. 30, ratio per answer
            logp = torch.log_softmax(_policy_logits(theta, b, phi, idx), dim=-1).gather(-1, ans)
            ratio = torch.exp(logp - old_logp)
            # as ms-swift's clip_ratio/region_mean: the clip is active where it cuts the gradient
            clipped = ((ratio < lo) & (adv < 0)) | ((ratio > hi) & (adv > 0))
            out['clip_frac'][:, step] = clipped.float().mean(dim=(1, 2)).numpy()
            obj = torch.minimum(ratio * adv, torch.maximum(torch.minimum(ratio, hi), lo) * adv)
            loss = -obj.mean(dim=(1, 2)).sum()  # seeds are independent: their losses just add
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        evaluate(step + 1)
        if progress:
            progress(1)
    return out


def run_meta(method: str, judge: Optional[JudgeLevel], seeds, tc: TrainConfig, ec: EnvConfig) -> dict:
    return {'method': method, 'judge': asdict(judge) if judge else None, 'seeds': [int(s) for s in seeds],
            'train': asdict(tc), 'env': asdict(ec),
            'awpo_config': ({k: v for k, v in load_awpo_config(METHODS[method][1]).to_dict().items() if k != 'judge'}
                            if METHODS[method][1] else None)}


__all__ = ['METHODS', 'JUDGE_LEVELS', 'TrainConfig', 'train', 'stock_advantages', 'gdpo_advantages', 'awpo_batch',
           'run_meta',
           'load_awpo_config']
