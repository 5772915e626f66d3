"""The CPU study's report (pure): a run's ``logging.jsonl`` rows -> the table's numbers, the table (JSON and
markdown) and the curves figure. No commands, no markers: ``benchmarks/cpu_study.py`` runs the study, resumes it
and hands this module what its finished runs left (completion markers ``done/*.json`` and ms-swift's logs).
"""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from data_prep.manifest import atomic_writer
from eval import plots as P

BEFORE = 'warmstart'                 # the name of the "before" run (the warm start itself)
BFCL_CATEGORIES = ['simple_python', 'multiple']  # the BFCL smoke subset
WINDOW = 5                           # the table's "first / last 5 steps"
LABELS = {'grpo': 'GRPO (outcome)', 'mixed_grpo': 'Mixed-reward GRPO', 'gdpo': 'GDPO (ms-swift)', 'awpo': 'AWPO',
          'awpo_no_gating': 'AWPO w/o gating', 'awpo_no_difficulty': 'AWPO w/o difficulty',
          'awpo_no_clip': 'AWPO w/o dynamic clip', 'awpo_gate_plus_flat': 'AWPO gate Eq.25 + flat groups',
          'awpo_gate_flat_only': 'AWPO gate flat groups only', BEFORE: 'warm start (before)'}
COLORS = {'grpo': 'tab:blue', 'mixed_grpo': 'tab:orange', 'gdpo': 'tab:gray', 'awpo': 'tab:green',
          'awpo_no_gating': 'tab:red', 'awpo_no_difficulty': 'tab:purple', 'awpo_no_clip': 'tab:brown',
          'awpo_gate_plus_flat': 'tab:cyan', 'awpo_gate_flat_only': 'tab:olive'}
# Curves, one panel each: (title, function of a log row -> value or None).
OUTCOME_KEY = 'rewards/AWPOOutcome/mean'
SPLIT_OUTCOME_KEYS = ('rewards/AWPOFormat/mean', 'rewards/AWPOExec/mean')   # grpo logs R_out as two columns
JUDGE_KEY = 'rewards/AWPOJudge/mean'
AWPO_PANELS = ['awpo/gate_open_frac', 'awpo/w_mix_mean', 'awpo/d_mean', 'awpo/clip_eps']


# ---------------------------------------------------------------------------------------------------------
# Reading a run's log (pure)
# ---------------------------------------------------------------------------------------------------------
def _finite(v: Any) -> Optional[float]:
    if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
        return float(v)
    return None


def outcome_of(row: Dict[str, Any]) -> Optional[float]:
    """Mean outcome reward R_out (Eq. 14) of one logged step, whatever the method logs it as: AWPO and
    Mixed-reward GRPO log the ``awpo_outcome`` column; stock GRPO logs ``awpo_format`` and ``awpo_exec``,
    whose means add up to the mean of R_out (weights 1, 1)."""
    v = _finite(row.get(OUTCOME_KEY))
    if v is not None:
        return v
    parts = [_finite(row.get(k)) for k in SPLIT_OUTCOME_KEYS]
    return None if any(p is None for p in parts) else sum(parts)


CURVES = [('outcome reward R_out (mean)', outcome_of),
          ('judge reward R_judge (mean)', lambda r: _finite(r.get(JUDGE_KEY))),
          ('reward std (the reward GRPO normalises)', lambda r: _finite(r.get('reward_std'))),
          ('share of groups with zero reward std', lambda r: _finite(r.get('frac_reward_zero_std')))] + [
    (k, (lambda key: lambda r: _finite(r.get(key)))(k)) for k in AWPO_PANELS]


def curve(rows: List[Dict[str, Any]], fn) -> Tuple[List[int], List[float]]:
    xs, ys = [], []
    for r in rows:
        v = fn(r)
        if v is not None:
            xs.append(int(r['step']))
            ys.append(v)
    return xs, ys


def mean(vals: Sequence[float]) -> Optional[float]:
    return sum(vals) / len(vals) if vals else None


def log_summary(rows: List[Dict[str, Any]], window: int = WINDOW) -> Dict[str, Any]:
    """The table's numbers from one run's log rows (``eval.plots.read_log``): mean outcome reward over the
    first and the last ``window`` logged steps, the same for the judge reward, and AWPO's gate over the run."""
    _, out = curve(rows, outcome_of)
    _, judge = curve(rows, CURVES[1][1])
    _, gate = curve(rows, lambda r: _finite(r.get('awpo/gate_open_frac')))
    _, wmix = curve(rows, lambda r: _finite(r.get('awpo/w_mix_mean')))
    _, clip = curve(rows, lambda r: _finite(r.get('awpo/clip_eps')))
    _, zero = curve(rows, CURVES[3][1])
    times = [t for t in (_finite(r.get('step_time')) for r in rows) if t is not None]
    return {
        'steps_logged': len(rows),
        'outcome_first': mean(out[:window]), 'outcome_last': mean(out[-window:]),
        'judge_first': mean(judge[:window]), 'judge_last': mean(judge[-window:]),
        'gate_open_mean': mean(gate), 'steps_gate_open': sum(1 for g in gate if g > 0) if gate else None,
        'w_mix_mean': mean(wmix), 'clip_eps_min': min(clip) if clip else None,
        'zero_std_frac_mean': mean(zero),
        'step_time_mean_s': mean(times),
    }


# ---------------------------------------------------------------------------------------------------------
# Table (pure)
# ---------------------------------------------------------------------------------------------------------
def _f(v: Optional[float], nd: int = 3) -> str:
    return '–' if v is None else f'{v:.{nd}f}'


def _pct(v: Optional[float]) -> str:
    return '–' if v is None else f'{v:.0f}'


def _min(s: Optional[float]) -> str:
    return '–' if s is None else f'{s / 60:.1f}'


def heldout_of(doc: Optional[Dict[str, Any]]) -> Tuple[Optional[float], Optional[float]]:
    """(mean S_format, mean S_exec) from cpu_model.heldout's summary."""
    if not doc:
        return None, None
    return _finite(doc.get('format')), _finite(doc.get('exec'))


def bfcl_of(doc: Optional[Dict[str, Any]], category: str) -> Optional[float]:
    """Accuracy (%) of one category from the eval package's bfcl.json summary."""
    if not doc:
        return None
    cat = ((doc.get('scores') or {}).get('categories') or {}).get(category) or {}
    return _finite(cat.get('accuracy'))


def build_table(before: Dict[str, Any], runs: Dict[str, Dict[str, Any]], settings: Dict[str, Any]) -> Dict[str, Any]:
    """The study's table as JSON: one row for the warm start (the "before" of every run), one per run.
    ``before`` / ``runs[m]`` are completion markers (``done/*.json``); a run's ``log`` entry is ``log_summary``."""
    b_fmt, b_exec = heldout_of(before.get('heldout'))
    rows = [{'method': BEFORE, 'label': LABELS[BEFORE], 'heldout_format': b_fmt, 'heldout_exec': b_exec,
             **{f'bfcl_{c}': bfcl_of(before.get('bfcl'), c) for c in BFCL_CATEGORIES},
             'eval_wall_s': before.get('eval_wall_s')}]
    for m, rec in runs.items():
        fmt, ex = heldout_of(rec.get('heldout'))
        log = rec.get('log') or {}
        first, last = log.get('outcome_first'), log.get('outcome_last')
        rows.append({'method': m, 'label': LABELS.get(m, m), 'steps': rec.get('steps'),
                     'outcome_first': first, 'outcome_last': last,
                     'outcome_delta': None if first is None or last is None else last - first,
                     'judge_first': log.get('judge_first'), 'judge_last': log.get('judge_last'),
                     'gate_open_mean': log.get('gate_open_mean'), 'w_mix_mean': log.get('w_mix_mean'),
                     'clip_eps_min': log.get('clip_eps_min'),
                     'heldout_format': fmt, 'heldout_exec': ex,
                     **{f'bfcl_{c}': bfcl_of(rec.get('bfcl'), c) for c in BFCL_CATEGORIES},
                     'train_wall_s': rec.get('train_wall_s'), 'step_time_mean_s': log.get('step_time_mean_s'),
                     'eval_wall_s': rec.get('eval_wall_s')})
    return {'settings': settings, 'rows': rows}


def table_markdown(table: Dict[str, Any]) -> str:
    """Markdown of ``build_table``'s result: after-values per run, the warm start's in the first row."""
    s = table['settings']
    w = s.get('window', WINDOW)
    head = ['method', f'R_out first {w}', f'R_out last {w}', 'Δ', f'judge last {w}', 'gate open (mean)',
            'held-out format', 'held-out S_exec'] + [f'BFCL {c} (%)' for c in BFCL_CATEGORIES] + [
        'train min', 's/step', 'eval min']
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    for r in table['rows']:
        cells = [r['label'], _f(r.get('outcome_first')), _f(r.get('outcome_last')),
                 '–' if r.get('outcome_delta') is None else f"{r['outcome_delta']:+.3f}",
                 _f(r.get('judge_last')), _f(r.get('gate_open_mean'), 2),
                 _f(r.get('heldout_format')), _f(r.get('heldout_exec'))]
        cells += [_pct(r.get(f'bfcl_{c}')) for c in BFCL_CATEGORIES]
        cells += [_min(r.get('train_wall_s')), _f(r.get('step_time_mean_s'), 0), _min(r.get('eval_wall_s'))]
        lines.append('| ' + ' | '.join(cells) + ' |')
    notes = [f"{s.get('steps')} steps per run, {s.get('prompts_per_step')} prompts x {s.get('num_generations')} "
             f"completions per step, {s.get('max_completion_length')} new tokens, seed {s.get('seed')}, "
             f"same warm start and rows for every run; judge: {s.get('judge')}.",
             f"Held-out: {s.get('heldout_rows')} rows of the held-out split; BFCL: {s.get('bfcl_limit')} cases per "
             "category. 'gate open' = mean over steps of awpo/gate_open_frac (share of groups whose judge "
             "signal Eq. 25 lets in). Wall times measured on a shared 2-core CPU "
             f"({s.get('parallel', 1)} run(s) at a time, OMP_NUM_THREADS={s.get('threads', '?')}), with other jobs "
             "running: they say what a run cost here, not what it costs on an idle machine.",
             f"Command: `{s.get('command', '?')}`"]
    return '\n'.join(lines) + '\n\n' + '\n'.join(notes) + '\n'


# ---------------------------------------------------------------------------------------------------------
# Figure
# ---------------------------------------------------------------------------------------------------------
def rolling(ys: Sequence[float], k: int = WINDOW) -> List[float]:
    """Trailing mean over up to k points (the first points average what exists)."""
    out = []
    for i in range(len(ys)):
        part = ys[max(0, i - k + 1):i + 1]
        out.append(sum(part) / len(part))
    return out


def plot_study(logs: Dict[str, List[Dict[str, Any]]], out: Path, title: str = '') -> Optional[Path]:
    """One figure: a panel per curve, a line per run (outcome / judge rewards: raw, faint, and a trailing mean
    over WINDOW steps)."""
    panels = [(t, fn) for t, fn in CURVES if any(curve(rows, fn)[0] for rows in logs.values())]
    if not panels:
        return None
    plt = P._plt()
    ncol = 4
    nrow = math.ceil(len(panels) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 3.1 * nrow), squeeze=False)
    for ax, (t, fn) in zip(axes.flat, panels):
        for m, rows in logs.items():
            xs, ys = curve(rows, fn)
            if not xs:
                continue
            c = COLORS.get(m)
            if t.startswith(('outcome', 'judge')):
                ax.plot(xs, ys, color=c, alpha=.25, lw=.8)
                ax.plot(xs, rolling(ys), color=c, lw=1.8, marker='o', ms=2, label=LABELS.get(m, m))
            else:
                ax.plot(xs, ys, color=c, lw=1.2, marker='o', ms=2, label=LABELS.get(m, m))
        ax.set_title(t, fontsize=9)
        ax.set_xlabel('step')
        ax.grid(alpha=.3)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis('off')
    axes.flat[0].legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    return P._save(fig, out)


# ---------------------------------------------------------------------------------------------------------
# Writing the report
# ---------------------------------------------------------------------------------------------------------
def write_report(out_dir: Path, before: Dict[str, Any], runs: Dict[str, Dict[str, Any]],
                 logs: Dict[str, List[Dict[str, Any]]], settings: Dict[str, Any],
                 publish: Optional[str] = None) -> Tuple[Dict[str, Any], str, List[Path]]:
    """``cpu_study.json`` / ``.md`` / ``.png`` in ``out_dir`` (atomic writes), copied into ``publish`` if given.
    ``runs[m]`` carry their ``log`` summary (:func:`log_summary`); ``logs[m]`` are the rows the curves show.
    Returns (table, markdown, the files written)."""
    table = build_table(before, runs, settings)
    md = table_markdown(table)
    with atomic_writer(str(out_dir / 'cpu_study.json')) as f:
        json.dump(table, f, indent=1)
        f.write('\n')
    with atomic_writer(str(out_dir / 'cpu_study.md')) as f:
        f.write(md)
    png = plot_study(logs, out_dir / 'cpu_study.png',
                     f"CPU study: SmolLM2-135M warm start, {settings['steps']} steps per run "
                     f"({settings['prompts_per_step']} prompts x {settings['num_generations']}), "
                     f"judge: {settings['judge']}")
    written = [out_dir / 'cpu_study.md', out_dir / 'cpu_study.json'] + ([png] if png else [])
    if publish:
        pub = Path(publish)
        pub.mkdir(parents=True, exist_ok=True)
        for p in written:
            shutil.copyfile(p, pub / p.name)
        written += [pub / p.name for p in written]
    return table, md, written
