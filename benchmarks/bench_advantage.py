"""Time AWPO's advantage (Eqs. 21-29) next to ms-swift's stock ``compute_advantages`` in the same run.

    python -m benchmarks.bench_advantage [--repeats 50] [--threads 2]

Sizes from the core issue: N = 8 x 1024 and N = 16 x 4096 (groups x generations... read as G x K below:
both layouts are timed, since the grouping changes the work per group).
Inputs mimic a real step: two reward columns (outcome, judge) with a few missing judge scores.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
from swift.rl_core.advantage import compute_advantages

from plugin.advantage import awpo_advantages
from plugin.config import AWPOConfig


def make_batch(G: int, K: int, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    r_out = (torch.rand(G * K, generator=gen) < 0.8).float() + torch.randint(0, 7, (G * K,), generator=gen) / 6
    judge = torch.randint(0, 5, (G * K,), generator=gen).float() / 4
    judge[torch.rand(G * K, generator=gen) < 0.01] = float('nan')
    return torch.stack([r_out, judge], dim=1)


def awpo_step(rpf: torch.Tensor, weights: torch.Tensor, K: int, cfg: AWPOConfig):
    """What the trainer does per generation batch: split the matrix (Eq. 20), then Eqs. 21-29."""
    weighted = rpf * weights
    r_out = weighted[:, 0]
    return awpo_advantages(r_out, r_out + weighted[:, 1], K, cfg)


def stock_step(rpf: torch.Tensor, weights: torch.Tensor, K: int):
    return compute_advantages(rpf, weights, K, advantage_estimator='grpo', scale_rewards='group')


def timeit(fn, repeats: int) -> float:
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--repeats', type=int, default=50)
    p.add_argument('--threads', type=int, default=None, help='torch.set_num_threads (default: torch default)')
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = AWPOConfig()
    weights = torch.ones(2)
    print(f'torch {torch.__version__}, {torch.get_num_threads()} threads, median of {args.repeats} runs')
    print(f'{"size (G x K)":>16} {"N":>8} {"stock ms-swift":>15} {"AWPO":>10} {"ratio":>7}')
    worst = 0.0
    for G, K in [(8, 1024), (1024, 8), (16, 4096), (4096, 16)]:
        rpf = make_batch(G, K)
        t_stock = timeit(lambda: stock_step(rpf, weights, K), args.repeats)
        t_awpo = timeit(lambda: awpo_step(rpf, weights, K, cfg), args.repeats)
        worst = max(worst, t_awpo / t_stock)
        print(f'{f"{G} x {K}":>16} {G * K:>8} {t_stock * 1e3:>12.3f} ms {t_awpo * 1e3:>7.3f} ms {t_awpo / t_stock:>6.2f}x')
    print(f'worst ratio AWPO / stock: {worst:.2f}x')


if __name__ == '__main__':
    main()
