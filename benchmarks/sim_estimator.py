"""The estimator under judge noise, simulated: GRPO vs Mixed-reward GRPO vs GDPO vs AWPO (+ its gate readings and
ablations), seeded.

    python -m benchmarks.sim_estimator [--seeds 20] [--steps 200] [--out results/sim_estimator]
                                       [--judges good noisy ...] [--publish docs/results] [--quick]
                                       [--lr 0.01] [--epochs 4] [--tag NAME]

The task, policy and judges: benchmarks/sim_env.py. Training (ms-swift's GRPO advantage, AWPO's own
``awpo_advantages``, clipped objective): benchmarks/sim_train.py. This file runs every (judge level, method)
pair over all seeds, keeps each finished run on disk (a rerun skips finished runs whose settings match),
and writes per judge level one plot (``sim_<level>.png``) and one markdown table (``sim_<level>.md``), plus
``sim_summary.md`` / ``sim_summary.json``. GRPO does not read the judge, so it runs once and is shared.
Every method is compared with GRPO on the same seeds (paired Δ); the gate readings (``gate_rule``) and GDPO
are also compared with AWPO (Eq. 25 as written), paired, in the summary.
"""
from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import asdict
from pathlib import Path
from typing import Dict

import numpy as np

from data_prep.manifest import atomic_writer

from .sim_env import JUDGE_LEVELS, EnvConfig, make_env
from .sim_train import METHODS, TrainConfig, run_meta, train

LABELS = {'grpo': 'GRPO (outcome only)', 'mixed_grpo': 'Mixed-reward GRPO', 'gdpo': 'GDPO (ms-swift)',
          'awpo': 'AWPO', 'awpo_gate_plus_flat': 'AWPO gate Eq.25 + flat groups',
          'awpo_gate_flat_only': 'AWPO gate flat groups only', 'awpo_no_gating': 'AWPO w/o gating',
          'awpo_no_difficulty': 'AWPO w/o difficulty', 'awpo_no_clip': 'AWPO w/o dynamic clip'}
COLORS = {'grpo': 'black', 'mixed_grpo': 'tab:orange', 'gdpo': 'tab:brown', 'awpo': 'tab:blue',
          'awpo_gate_plus_flat': 'tab:pink', 'awpo_gate_flat_only': 'tab:olive', 'awpo_no_gating': 'tab:red',
          'awpo_no_difficulty': 'tab:green', 'awpo_no_clip': 'tab:purple'}
MAIN = ('grpo', 'mixed_grpo', 'gdpo', 'awpo', 'awpo_gate_plus_flat', 'awpo_gate_flat_only')  # solid lines
VS_AWPO = ('gdpo', 'awpo_gate_plus_flat', 'awpo_gate_flat_only')  # also compared with AWPO, paired


# ---------------------------------------------------------------------------------------------- statistics
def ci95(x) -> tuple[float, float]:
    """Mean and the half-width of its two-sided 95 % Student-t interval (NaN half-width for n < 2)."""
    from scipy import stats
    x = np.asarray(x, dtype=float)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return float('nan'), float('nan')
    if x.size < 2:
        return float(x.mean()), float('nan')
    return float(x.mean()), float(stats.t.ppf(0.975, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))


def steps_to(curve: np.ndarray, threshold: float) -> np.ndarray:
    """Per seed, the first step whose success reaches ``threshold``; NaN where it never does. curve [S, T+1]."""
    hit = curve >= threshold
    first = hit.argmax(axis=1).astype(float)
    first[~hit.any(axis=1)] = np.nan
    return first


def judge_quality(level, seeds, ec: EnvConfig) -> dict:
    """Measured over every training answer of every seed: Pearson corr(J, q) and corr(J, correct)."""
    js, qs, cs = [], [], []
    for s in seeds:
        env = make_env(s, ec)
        js.append(env.judge(level).reshape(-1).numpy())
        qs.append(env.q.reshape(-1).numpy())
        cs.append(env.correct.reshape(-1).float().numpy())
    j, q, c = map(np.concatenate, (js, qs, cs))
    return {'corr_q': float(np.corrcoef(j, q)[0, 1]), 'corr_correct': float(np.corrcoef(j, c)[0, 1]),
            'mean': float(j.mean())}


# ---------------------------------------------------------------------------------------------- runs on disk
def run_paths(out: Path, judge: str, method: str, meta: dict):
    """One file pair per (judge, method, settings): runs with other seeds, steps or rates never overwrite it."""
    import hashlib
    digest = hashlib.sha256(json.dumps(meta, sort_keys=True).encode()).hexdigest()[:10]
    base = out / 'runs' / f'{judge}__{method}__{digest}'
    return base.with_suffix('.npz'), base.with_suffix('.json')


def load_or_run(out: Path, method: str, judge_name: str, seeds, tc, ec, bar):
    """A finished run with the same settings is read back; otherwise train and keep it. Returns
    (curves, wall seconds of its training, whether it was read back)."""
    level = JUDGE_LEVELS[judge_name] if METHODS[method][0] else None
    key = judge_name if level else 'none'
    meta = run_meta(method, level, seeds, tc, ec)
    npz, meta_path = run_paths(out, key, method, meta)
    if npz.exists() and meta_path.exists():
        try:
            saved = json.loads(meta_path.read_text())
            if {k: v for k, v in saved.items() if k != 'wall_s'} == meta:
                with np.load(npz) as z:
                    res = {k: z[k] for k in z.files}
                bar.update(tc.steps)
                return res, float(saved.get('wall_s', float('nan'))), True
        except (ValueError, OSError):
            pass  # unreadable leftovers: run again
    t0 = time.perf_counter()
    res = train(method, level, seeds, tc, ec, progress=bar.update)
    wall = time.perf_counter() - t0
    with atomic_writer(str(npz), 'wb') as fh:
        np.savez_compressed(fh, **res)
    with atomic_writer(str(meta_path)) as fh:  # written last: its presence says the run is complete
        json.dump(dict(meta, wall_s=round(wall, 2)), fh, indent=1, sort_keys=True)
    bar.set_postfix_str(f'{key}/{method} {wall:.1f} s')
    return res, wall, False


# ---------------------------------------------------------------------------------------------- report
def summarise(runs: Dict[str, Dict[str, np.ndarray]], threshold: float) -> Dict[str, dict]:
    base = runs['grpo']
    rows = {}
    for m, r in runs.items():
        auc = r['success'].mean(axis=1)
        a = runs.get('awpo')
        vs_awpo = {} if a is None or m not in VS_AWPO else {
            'delta_final_vs_awpo': ci95(r['success'][:, -1] - a['success'][:, -1]),
            'delta_auc_vs_awpo': ci95(auc - a['success'].mean(axis=1))}
        row = {**vs_awpo,
            'final_success': ci95(r['success'][:, -1]),
            'final_success_heldout': ci95(r['success_heldout'][:, -1]),
            'final_r_out': ci95(r['r_out'][:, -1]),
            'auc_success': ci95(auc),
            'delta_final_vs_grpo': ci95(r['success'][:, -1] - base['success'][:, -1]),
            'delta_auc_vs_grpo': ci95(auc - base['success'].mean(axis=1)),
            'delta_heldout_vs_grpo': ci95(r['success_heldout'][:, -1] - base['success_heldout'][:, -1]),
        }
        st = steps_to(r['success'], threshold)
        row['steps_to_threshold_median'] = float(np.nanmedian(st)) if np.isfinite(st).any() else float('nan')
        row['steps_to_threshold_reached'] = int(np.isfinite(st).sum())
        row['seeds'] = int(r['success'].shape[0])
        for k in ('gate_open_frac', 'w_mix_mean', 'clip_eps', 'r_g_mean'):
            v = r[k]
            row[k] = float(np.nanmean(v)) if np.isfinite(v).any() else None
        row['dead_frac'] = float(r['dead_frac'].mean())
        row['clip_frac'] = float(r['clip_frac'].mean())
        rows[m] = row
    return rows


def _pm(mc, digits=3):
    m, h = mc
    if not math.isfinite(m):
        return '—'
    return f'{m:.{digits}f} ± {h:.{digits}f}' if math.isfinite(h) else f'{m:.{digits}f}'


def table_md(level_name: str, rows: Dict[str, dict], jq: dict, threshold: float, tc: TrainConfig) -> str:
    lv = JUDGE_LEVELS[level_name]
    n = next(iter(rows.values()))['seeds']
    lines = [
        f'### Judge: {level_name} — {lv.what}',
        '',
        f'Measured over all training answers: corr(J, reasoning quality q) = {jq["corr_q"]:+.2f}, '
        f'corr(J, answer is correct) = {jq["corr_correct"]:+.2f}. {n} seeds, {tc.steps} steps (Adam lr {tc.lr:g}, '
        f'{tc.epochs} passes per batch, G={tc.groups} x K={tc.k}); mean ± 95 % CI '
        f'(Student t); Δ = paired difference to GRPO on the same seeds. Success = expected probability of '
        f'the correct answer (exact, over all 128 training prompts; held-out: 256 unseen prompts, shared '
        f'weights only). Gate, w_mix, clip ε: means over steps and seeds (Eqs. 25, 29); clipped samples: '
        f'fraction whose ratio the clip cut at the last of the {tc.epochs} passes (as ms-swift\'s '
        f'clip_ratio/region_mean); groups w/o outcome spread: sampled groups whose R_out was constant.',
        '',
        f'| method | final success | held-out success | final E[R_out] | mean success over training | '
        f'steps to {threshold:.0%} (median; seeds reaching) | Δ final success | Δ mean success | '
        f'gate open | mean w_mix | mean clip ε | clipped samples | groups w/o outcome spread |',
        '|---|---|---|---|---|---|---|---|---|---|---|---|---|',
    ]
    for m, r in rows.items():
        st = r['steps_to_threshold_median']
        st_s = f'{st:.0f}' if math.isfinite(st) else f'> {tc.steps}'
        f = lambda v: '—' if v is None else f'{v:.3f}'  # noqa: E731
        lines.append(
            f'| {LABELS[m]} | {_pm(r["final_success"])} | {_pm(r["final_success_heldout"])} | '
            f'{_pm(r["final_r_out"])} | {_pm(r["auc_success"])} | {st_s} ({r["steps_to_threshold_reached"]}/{n}) | '
            f'{"—" if m == "grpo" else _pm(r["delta_final_vs_grpo"])} | '
            f'{"—" if m == "grpo" else _pm(r["delta_auc_vs_grpo"])} | '
            f'{f(r["gate_open_frac"])} | {f(r["w_mix_mean"])} | '
            f'{f(r["clip_eps"]) if r["clip_eps"] is not None else f"{tc.eps_clip:.3f}"} | '
            f'{r["clip_frac"]:.3f} | {r["dead_frac"]:.3f} |')
    return '\n'.join(lines) + '\n'


def _smooth(x, w=5):
    if x.shape[-1] < w:
        return x
    k = np.ones(w) / w
    return np.convolve(x, k, mode='valid')


def plot_level(path: Path, level_name: str, runs: Dict[str, Dict[str, np.ndarray]], threshold: float):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from scipy import stats

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={'width_ratios': [3, 2]})
    for m, r in runs.items():
        y = r['success']
        S = y.shape[0]
        mean = y.mean(0)
        h = stats.t.ppf(0.975, S - 1) * y.std(0, ddof=1) / np.sqrt(S) if S > 1 else np.zeros_like(mean)
        x = np.arange(y.shape[1])
        ax.plot(x, mean, color=COLORS[m], label=LABELS[m], lw=1.6 if m in MAIN else 1.0,
                ls='-' if m in MAIN else '--')
        ax.fill_between(x, mean - h, mean + h, color=COLORS[m], alpha=0.15, lw=0)
    ax.axhline(threshold, color='grey', lw=0.6, ls=':')
    ax.set_xlabel('step')
    ax.set_ylabel('success rate (train prompts)')
    ax.set_ylim(0, 1)
    ax.set_title(f'judge: {level_name} — mean and 95 % CI over {runs["grpo"]["success"].shape[0]} seeds', fontsize=10)
    ax.legend(fontsize=8, loc='lower right')
    a = runs.get('awpo')
    if a is not None:
        for k, c, lab in (('gate_open_frac', 'tab:blue', 'gate open fraction'),
                          ('w_mix_mean', 'tab:cyan', 'mean w_mix'),
                          ('dead_frac', 'grey', 'groups with no outcome spread')):
            ys = _smooth(np.nanmean(a[k], axis=0))
            ax2.plot(np.arange(ys.size) + 1, ys, color=c, label=lab)
        ce = _smooth(np.nanmean(a['clip_eps'], axis=0))
        ax2.plot(np.arange(ce.size) + 1, ce, color='tab:blue', ls=':', label='clip ε (Eq. 29)')
    for m in ('awpo_gate_plus_flat', 'awpo_gate_flat_only'):  # the other readings' gates
        if m in runs:
            ys = _smooth(np.nanmean(runs[m]['gate_open_frac'], axis=0))
            ax2.plot(np.arange(ys.size) + 1, ys, color=COLORS[m], ls='--', label=f'gate open: {LABELS[m][5:]}')
    ax2.set_ylim(0, 1)
    ax2.set_xlabel('step')
    ax2.set_title("AWPO's gate (5-step moving mean over seeds)", fontsize=10)
    ax2.set_ylabel('fraction of groups / w_mix / ε')
    ax2.legend(fontsize=8)
    fig.tight_layout()
    with atomic_writer(str(path), 'wb') as fh:
        fig.savefig(fh, format='png', dpi=70)
    plt.close(fig)


def summary_md(all_rows: Dict[str, Dict[str, dict]], cmd: str, timing: str) -> str:
    levels = list(all_rows)
    methods = list(next(iter(all_rows.values())))
    lines = ['Final success (train prompts), mean ± 95 % CI; in brackets the paired Δ to GRPO of the mean success '
             'over training (speed).', '',
             '| method | ' + ' | '.join(levels) + ' |', '|---|' + '---|' * len(levels)]
    for m in methods:
        cells = []
        for lv in levels:
            r = all_rows[lv][m]
            d = '' if m == 'grpo' else f' [Δ {_pm(r["delta_auc_vs_grpo"])}]'
            cells.append(_pm(r['final_success']) + d)
        lines.append(f'| {LABELS[m]} | ' + ' | '.join(cells) + ' |')
    vs = [m for m in methods if m in VS_AWPO and 'delta_auc_vs_awpo' in all_rows[levels[0]][m]]
    if vs:
        lines += ['', 'Paired Δ to AWPO (Eq. 25 as written) on the same seeds: final success [mean success over '
                  'training].', '', '| method | ' + ' | '.join(levels) + ' |', '|---|' + '---|' * len(levels)]
        for m in vs:
            cells = [f'{_pm(all_rows[lv][m]["delta_final_vs_awpo"])} [{_pm(all_rows[lv][m]["delta_auc_vs_awpo"])}]'
                     for lv in levels]
            lines.append(f'| {LABELS[m]} | ' + ' | '.join(cells) + ' |')
    lines += ['', f'Command: `{cmd}`; {timing}.']
    return '\n'.join(lines) + '\n'


# ---------------------------------------------------------------------------------------------- CLI
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--seeds', type=int, default=20, help='number of seeds (0..n-1); default 20')
    p.add_argument('--steps', type=int, default=None, help='training steps (default 200; 40 with --quick)')
    p.add_argument('--out', default='results/sim_estimator', help='runs, tables and plots (default %(default)s)')
    p.add_argument('--judges', nargs='+', default=list(JUDGE_LEVELS), choices=list(JUDGE_LEVELS))
    p.add_argument('--methods', nargs='+', default=list(METHODS), choices=list(METHODS))
    p.add_argument('--threshold', type=float, default=0.5, help='success level for "steps to threshold"')
    p.add_argument('--publish', default=None, help='also copy the plots and tables to this folder (e.g. docs)')
    p.add_argument('--threads', type=int, default=1, help='torch threads (tiny tensors: 1 is fastest)')
    p.add_argument('--lr', type=float, default=TrainConfig.lr, help='Adam learning rate (default %(default)s)')
    p.add_argument('--epochs', type=int, default=TrainConfig.epochs,
                   help='optimisation passes per generation batch (default %(default)s)')
    p.add_argument('--tag', default='', help='name prefix of the tables/plots (sim_<tag>_<level>.md) for a variant')
    p.add_argument('--quick', action='store_true', help='3 seeds, 40 steps: a smoke run (seconds)')
    args = p.parse_args(argv)
    import torch
    from tqdm import tqdm
    torch.set_num_threads(args.threads)
    if args.quick:
        args.seeds = min(args.seeds, 3)
    steps = args.steps or (40 if args.quick else 200)
    if args.seeds < 1 or steps < 1 or args.epochs < 1:
        p.error('--seeds, --steps and --epochs must be >= 1')
    if not (args.lr > 0 and math.isfinite(args.lr)):
        p.error(f'--lr must be a positive number, got {args.lr}')
    if args.tag and not args.tag.replace('_', '').replace('-', '').isalnum():
        p.error(f'--tag must be letters, digits, - or _, got {args.tag!r}')
    prefix = f'sim_{args.tag}_' if args.tag else 'sim_'
    if 'grpo' not in args.methods:
        args.methods = ['grpo'] + args.methods  # the reference of every Δ
    seeds = list(range(args.seeds))
    tc, ec = TrainConfig(steps=steps, lr=args.lr, epochs=args.epochs), EnvConfig()
    out = Path(args.out)
    (out / 'runs').mkdir(parents=True, exist_ok=True)
    cmd = 'python -m benchmarks.sim_estimator ' + ' '.join(argv if argv is not None else __import__('sys').argv[1:])
    n_runs = len(args.judges) * len(args.methods)  # GRPO is trained once, then read back for every level
    t0 = time.perf_counter()
    all_rows, written, train_s, seen = {}, [], {}, set()
    with tqdm(total=n_runs * steps, desc='sim_estimator', unit='step', mininterval=1.0) as bar:
        for lv in args.judges:
            runs = {}
            for m in args.methods:
                runs[m], w, cached = load_or_run(out, m, lv, seeds, tc, ec, bar)
                run_key = (lv if METHODS[m][0] else 'none', m)
                if run_key not in seen:
                    seen.add(run_key)
                    train_s[run_key] = (w, cached)
            rows = summarise(runs, args.threshold)
            all_rows[lv] = rows
            jq = judge_quality(JUDGE_LEVELS[lv], seeds, ec)
            md, png = out / f'{prefix}{lv}.md', out / f'{prefix}{lv}.png'
            with atomic_writer(str(md)) as fh:
                fh.write(table_md(lv, rows, jq, args.threshold, tc))
            plot_level(png, lv, runs, args.threshold)
            for r in rows.values():
                r['judge_quality'] = jq
            written += [md, png]
    wall = time.perf_counter() - t0
    n_cached = sum(c for _, c in train_s.values())
    timing = (f'wall time {wall:.0f} s on 2 shared CPU cores, {torch.get_num_threads()} torch thread(s); '
              f'training {sum(w for w, _ in train_s.values()):.0f} s summed over {len(train_s)} runs'
              + (f' ({n_cached} read back from an earlier invocation)' if n_cached else ''))
    with atomic_writer(str(out / f'{prefix}summary.md')) as fh:
        fh.write(summary_md(all_rows, cmd.strip(), timing))
    with atomic_writer(str(out / f'{prefix}summary.json')) as fh:
        json.dump({'command': cmd.strip(), 'wall_s': round(wall, 1), 'timing': timing, 'seeds': seeds,
                   'train': asdict(tc),
                   'threshold': args.threshold, 'results': all_rows}, fh, indent=1, sort_keys=True)
    written += [out / f'{prefix}summary.md', out / f'{prefix}summary.json']
    if args.publish:
        dst = Path(args.publish)
        dst.mkdir(parents=True, exist_ok=True)
        for f in written:
            (dst / f.name).write_bytes(f.read_bytes())
    for lv, rows in all_rows.items():
        print(f'\n[{lv}] final success (mean ± 95% CI over {len(seeds)} seeds):')
        for m, r in rows.items():
            print(f'  {LABELS[m]:<24} {_pm(r["final_success"])}   Δ mean success vs GRPO '
                  f'{"—" if m == "grpo" else _pm(r["delta_auc_vs_grpo"])}')
    print(f'\nwrote {len(written)} files to {out}' + (f' (copied to {args.publish})' if args.publish else '')
          + f'; runs kept in {out / "runs"}; {timing}')


if __name__ == '__main__':
    main()
