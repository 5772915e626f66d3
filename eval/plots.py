"""Training curves of an ms-swift GRPO/AWPO run, and the judge-vs-outcome consistency figure.

    python -m eval.plots --train-log OUTPUT_DIR --out results/plots/

Inputs, as ms-swift 4.6 writes them into the run's output folder (``OUTPUT_DIR`` or its newest ``v*-*/``):
* ``logging.jsonl`` -- one JSON object per logging step (``swift/trainers/patcher.py``): ms-swift's keys
  (``global_step/max_steps`` = "3/10", ``loss``, ``reward``, ``rewards/<RewardClass>/mean`` ...) and the
  AWPO trainer's ``awpo/*`` metrics; ``eval_*`` lines and the final ``train_runtime`` line are skipped;
* ``completions.jsonl`` (``--log_completions true``) -- per logging step one object of equal-length
  columns: ``step`` (strings), ``prompt`` (chat-templated text), ``completion``, one column per reward
  function (named by its class: ``AWPOOutcome``, ``AWPOJudge``), ``advantages``
  (``swift/rlhf_trainers/grpo_trainer.py``, ``GRPOTrainer.log``).

Figures (PNG): ``rewards.png`` (outcome / judge / total reward), ``awpo_gate.png`` (gate-open fraction,
mean w_mix, difficulty-prioritised fraction, clip radius, mean d, judge-missing fraction: the "gate
visualisation") and ``judge_outcome_consistency.png``: per step, the mean over GRPO groups (same step, same
prompt) of the Spearman rank correlation between judge scores and outcome rewards; groups where either
is constant (correlation undefined) or a judge score is missing are left out, and their share is plotted.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from eval.jsonl import global_step, latest_per_step, read_jsonl

REWARD_KEYS = {'outcome': 'rewards/AWPOOutcome/mean', 'judge': 'rewards/AWPOJudge/mean', 'total': 'reward'}
AWPO_KEYS = ['awpo/gate_open_frac', 'awpo/w_mix_mean', 'awpo/prio_frac', 'awpo/clip_eps', 'awpo/d_mean',
             'awpo/judge_missing_frac']


# ---------------------------------------------------------------------------------------------------------
# Reading ms-swift's files (pure)
# ---------------------------------------------------------------------------------------------------------
def find_run_dir(path: str | Path) -> Path:
    """``path`` itself if it holds logging.jsonl, else its newest sub-folder that does (ms-swift's v*-*/)."""
    p = Path(path)
    if (p / 'logging.jsonl').is_file():
        return p
    cands = sorted((q.parent for q in p.glob('*/logging.jsonl')), key=lambda d: (d / 'logging.jsonl').stat().st_mtime)
    if not cands:
        raise FileNotFoundError(f'no logging.jsonl in {p} or its sub-folders')
    return cands[-1]


def _records(path: Path) -> List[Tuple[int, Dict[str, Any]]]:
    """(line, object) of a JSONL file ms-swift may still be writing: a torn last line is left out (with a
    note), a bad line before the end is an error naming file and line (``eval.jsonl``)."""
    recs, torn = read_jsonl(path)
    if torn:
        print(f'[plots] {path}: last line incomplete (run in progress?), left out', file=sys.stderr)
    for i, obj in recs:
        if not isinstance(obj, dict):
            raise ValueError(f'{path}:{i}: expected a JSON object, got {type(obj).__name__}')
    return recs


def read_log(path: Path) -> List[Dict[str, Any]]:
    """Training log lines with an integer ``step`` (from ``global_step/max_steps``); eval/summary lines out;
    one line per step after a resume (``eval.jsonl.latest_per_step``: the last occurrence wins)."""
    rows = []
    for i, obj in _records(path):
        gs = obj.get('global_step/max_steps')
        if gs is None or any(k.startswith('eval_') for k in obj) or 'train_runtime' in obj:
            continue
        try:
            obj['step'] = int(str(gs).split('/')[0])
        except ValueError:
            raise ValueError(f'{path}:{i}: global_step/max_steps is {gs!r}, not "STEP/MAX"') from None
        rows.append(obj)
    kept = latest_per_step(rows, lambda r: r['step'])
    if len(kept) < len(rows):
        print(f'[plots] {path}: {len(rows) - len(kept)} step line(s) logged again by a resumed run: '
              'the last occurrence of each step is used', file=sys.stderr)
    return kept


def series(rows: List[Dict[str, Any]], key: str) -> Tuple[List[int], List[float]]:
    xs, ys = [], []
    for r in rows:
        v = r.get(key)
        if isinstance(v, (int, float)) and not (isinstance(v, float) and math.isnan(v)):
            xs.append(r['step'])
            ys.append(float(v))
    return xs, ys


def average_ranks(values: Sequence[float]) -> List[float]:
    """Ranks 1..n, ties get the mean of the ranks they span."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> Optional[float]:
    """Spearman's rho (Pearson correlation of average ranks); None if either side is constant or n < 2."""
    if len(x) != len(y):
        raise ValueError('spearman: x and y differ in length')
    if len(x) < 2:
        return None
    rx, ry = average_ranks(x), average_ranks(y)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    sxy = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    sxx = sum((a - mx) ** 2 for a in rx)
    syy = sum((b - my) ** 2 for b in ry)
    if sxx == 0 or syy == 0:
        return None
    return sxy / math.sqrt(sxx * syy)


def read_completions(path: Path) -> List[Dict[str, Any]]:
    """Flatten completions.jsonl (objects of columns) into one record per completion; after a resume only the
    last logging of each step (``eval.jsonl.latest_per_step``)."""
    out = []
    recs = _records(path)
    kept = latest_per_step(recs, lambda r: global_step(r[1]))
    if len(kept) < len(recs):
        print(f'[plots] {path}: {len(recs) - len(kept)} line(s) of steps logged again by a resumed run left out',
              file=sys.stderr)
    for i, table in kept:
        n = len(table.get('prompt', []))
        for col, vals in table.items():
            if not isinstance(vals, list) or len(vals) != n:
                raise ValueError(f'{path}:{i}: column {col!r} is not a list of {n} values (as many as prompt)')
        out += [{k: table[k][j] for k in table} for j in range(n)]
    return out


def _num(v: Any) -> Optional[float]:
    if isinstance(v, (int, float)) and not (isinstance(v, float) and math.isnan(v)):
        return float(v)
    return None


def consistency_by_step(records: List[Dict[str, Any]], judge_key: str = 'AWPOJudge',
                        outcome_key: str = 'AWPOOutcome') -> List[Dict[str, Any]]:
    """Per step: mean within-group Spearman(judge, outcome) over groups (same step and prompt) where it is
    defined, the number of groups, and how many were defined."""
    groups: Dict[Tuple[int, str], List[Tuple[Optional[float], Optional[float]]]] = defaultdict(list)
    for r in records:
        if judge_key not in r or outcome_key not in r:
            raise KeyError(f'completion record lacks {judge_key!r} or {outcome_key!r}: has {sorted(r)}')
        groups[(int(r['step']), r['prompt'])].append((_num(r[judge_key]), _num(r[outcome_key])))
    per_step: Dict[int, List[Optional[float]]] = defaultdict(list)
    for (step, _), pairs in groups.items():
        rho = None
        if all(j is not None and o is not None for j, o in pairs):
            rho = spearman([j for j, _ in pairs], [o for _, o in pairs])
        per_step[step].append(rho)
    out = []
    for step in sorted(per_step):
        rhos = [r for r in per_step[step] if r is not None]
        out.append({'step': step, 'rho_mean': sum(rhos) / len(rhos) if rhos else None,
                    'groups': len(per_step[step]), 'groups_defined': len(rhos)})
    return out


# ---------------------------------------------------------------------------------------------------------
# Figures
# ---------------------------------------------------------------------------------------------------------
def _plt():
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    return plt


def _save(fig, out: Path) -> Path:
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    _plt().close(fig)
    return out


def plot_rewards(rows, out: Path) -> Optional[Path]:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    drawn = 0
    for label, key in REWARD_KEYS.items():
        xs, ys = series(rows, key)
        if xs:
            ax.plot(xs, ys, marker='o', ms=3, label=f'{label} ({key})')
            drawn += 1
    if not drawn:
        plt.close(fig)
        return None
    ax.set_xlabel('step')
    ax.set_ylabel('mean reward')
    ax.set_title('Rewards over training')
    ax.legend(fontsize=7)
    ax.grid(alpha=.3)
    return _save(fig, out)


def plot_awpo(rows, out: Path) -> Optional[Path]:
    present = [k for k in AWPO_KEYS if series(rows, k)[0]]
    if not present:
        return None
    plt = _plt()
    ncol = 3
    nrow = math.ceil(len(present) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(4 * ncol, 3 * nrow), squeeze=False)
    for ax, key in zip(axes.flat, present):
        xs, ys = series(rows, key)
        ax.plot(xs, ys, marker='o', ms=3)
        ax.set_title(key, fontsize=9)
        ax.set_xlabel('step')
        ax.grid(alpha=.3)
    for ax in list(axes.flat)[len(present):]:
        ax.axis('off')
    fig.suptitle('AWPO gate, weights and clip radius')
    return _save(fig, out)


def plot_consistency(stats: List[Dict[str, Any]], out: Path) -> Optional[Path]:
    if not stats:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    pts = [(s['step'], s['rho_mean']) for s in stats if s['rho_mean'] is not None]
    if pts:
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker='o', ms=3, label='mean within-group Spearman ρ')
    ax.plot([s['step'] for s in stats], [s['groups_defined'] / s['groups'] for s in stats], ls='--',
            label='share of groups where ρ is defined')
    ax.axhline(0, color='grey', lw=.8)
    ax.set_ylim(-1.05, 1.05)
    ax.set_xlabel('step')
    ax.set_title('Judge vs outcome: within-group rank correlation')
    ax.legend(fontsize=7)
    ax.grid(alpha=.3)
    return _save(fig, out)


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(prog='python -m eval.plots', description=__doc__.split('\n\n')[0])
    p.add_argument('--train-log', required=True, help='ms-swift output folder (holding logging.jsonl)')
    p.add_argument('--out', default='results/plots')
    p.add_argument('--judge-key', default='AWPOJudge', help='judge reward column in completions.jsonl')
    p.add_argument('--outcome-key', default='AWPOOutcome', help='outcome reward column in completions.jsonl')
    args = p.parse_args(argv)
    try:
        return _plot(args)
    except (OSError, ValueError, KeyError) as exc:  # a missing/corrupt input: one line naming the file
        print(f'[plots] error: {exc}', file=sys.stderr)
        return 2


def _plot(args) -> int:
    run = find_run_dir(args.train_log)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = read_log(run / 'logging.jsonl')
    written = [plot_rewards(rows, out / 'rewards.png'), plot_awpo(rows, out / 'awpo_gate.png')]
    comp = run / 'completions.jsonl'
    if comp.is_file():
        stats = consistency_by_step(read_completions(comp), args.judge_key, args.outcome_key)
        (out / 'judge_outcome_consistency.json').write_text(json.dumps(stats, indent=1))
        written.append(plot_consistency(stats, out / 'judge_outcome_consistency.png'))
    else:
        print(f'[plots] no {comp} (train with --log_completions true): consistency figure skipped',
              file=sys.stderr)
    written = [str(w) for w in written if w]
    print(f'[plots] {len(rows)} logged steps from {run}; wrote: ' + ', '.join(written), file=sys.stderr)
    return 0 if written else 1


if __name__ == '__main__':
    sys.exit(main())
