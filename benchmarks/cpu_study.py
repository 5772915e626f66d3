"""The CPU study (issue 10, part 2): AWPO vs stock GRPO vs Mixed-reward GRPO, from one warm start.

    bash shells/cpu_study.sh [--ablations] [--steps N] [--dry-run]      # = python -m benchmarks.cpu_study

Every run starts from the same warm start (SmolLM2-135M-Instruct after SFT on tool calls,
``shells/warm_start.sh``), trains on the same rows (the ``rl`` split of ``python -m data_prep bfcl-split``)
with the same seed, the same batch and the same number of steps, through the project's own recipe
(``shells/train.sh METHOD smollm2``; only the method's switches differ, ``shells/recipes/METHOD.sh``):

* ``grpo``        stock ms-swift GRPO on the outcome reward R_out = S_format + S_exec (Eq. 14);
* ``mixed_grpo``  stock GRPO on R_out + R_judge (the paper's Figure 1 baseline);
* ``awpo``        AWPO (Eqs. 21-29);
* ``--ablations`` adds ``awpo_no_gating``, ``awpo_no_difficulty``, ``awpo_no_clip`` (Table 5).

Judge: the offline rubric by default; the OpenAI-compatible endpoint in ``AWPO_JUDGE_BASE_URL`` when it is set
(the recipes' ``AWPO_CONFIG`` reads it; ``AWPO_JUDGE_MODEL`` names the served model).
Before training (the warm start) and after each run (its LoRA adapter merged into a full folder), two
evaluations: the held-out split scored by ``cpu_model.heldout`` (mean format score, Eq. 15, and mean S_exec) and a
BFCL smoke subset (``simple_python``, ``multiple``; ``--bfcl-limit`` cases each) through ``shells/eval.sh``.

Outputs, under ``--study-dir`` (default ``$STUDY_DIR`` or ``runs/cpu_study``)::

    data/            the split (sft / rl / heldout .jsonl)
    train/smollm2/M  ms-swift's output of run M (logging.jsonl, completions.jsonl, the adapter)
    models/M         the adapter merged into the warm start (what the evaluations serve)
    heldout/M.json   held-out scores;  results/M/bfcl.json   BFCL smoke scores (eval package's summary)
    logs/            every command's output
    done/M.json      completion marker of run M (wall times, scores), written LAST
    cpu_study.md / .json / .png     the table and the curves (``--publish DIR`` copies them, e.g. to docs/)

Resume: a run whose marker exists is not redone; a run without one (killed part-way) is removed and done
again from the start, so no half-trained or half-evaluated result is ever reported. ``--report-only``
rebuilds the table and the plot from the markers and logs.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from data_prep.manifest import atomic_writer
from eval import plots as P

REPO = Path(__file__).resolve().parents[1]

METHODS = ['grpo', 'mixed_grpo', 'awpo']
ABLATIONS = ['awpo_no_gating', 'awpo_no_difficulty', 'awpo_no_clip']
BEFORE = 'warmstart'                 # the name of the "before" run (the warm start itself)
BFCL_CATEGORIES = ['simple_python', 'multiple']
WINDOW = 5                           # the table's "first / last 5 steps"
LABELS = {'grpo': 'GRPO (outcome)', 'mixed_grpo': 'Mixed-reward GRPO', 'awpo': 'AWPO',
          'awpo_no_gating': 'AWPO w/o gating', 'awpo_no_difficulty': 'AWPO w/o difficulty',
          'awpo_no_clip': 'AWPO w/o dynamic clip', BEFORE: 'warm start (before)'}
COLORS = {'grpo': 'tab:blue', 'mixed_grpo': 'tab:orange', 'awpo': 'tab:green', 'awpo_no_gating': 'tab:red',
          'awpo_no_difficulty': 'tab:purple', 'awpo_no_clip': 'tab:brown'}
# Curves, one panel each: (title, function of a log row -> value or None).
OUTCOME_KEY = 'rewards/AWPOOutcome/mean'
SPLIT_OUTCOME_KEYS = ('rewards/AWPOFormat/mean', 'rewards/AWPOExec/mean')   # grpo logs R_out as two columns
JUDGE_KEY = 'rewards/AWPOJudge/mean'
AWPO_PANELS = ['awpo/gate_open_frac', 'awpo/w_mix_mean', 'awpo/d_mean', 'awpo/clip_eps']


class StudyError(RuntimeError):
    pass


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
# The study: plan, run, resume
# ---------------------------------------------------------------------------------------------------------
def quote(argv: Sequence[str]) -> str:
    return ' '.join(shlex.quote(str(a)) for a in argv)


def env_line(env: Dict[str, str], argv: Sequence[str]) -> str:
    return ' '.join(f'{k}={shlex.quote(str(v))}' for k, v in env.items()) + (' ' if env else '') + quote(argv)


class Study:
    def __init__(self, args: argparse.Namespace):
        self.a = args
        self.dir = Path(args.study_dir).resolve()
        self.dry = args.dry_run
        self.methods = METHODS + (ABLATIONS if args.ablations else [])
        self.warm: Optional[Path] = None
        self.data = self.dir / 'data'

    # ---- paths
    def marker(self, name: str) -> Path:
        return self.dir / 'done' / f'{name}.json'

    def train_out(self, m: str) -> Path:
        return self.dir / 'train' / 'smollm2' / m

    def run_paths(self, name: str) -> List[Path]:
        """Everything one run writes (removed when an unfinished run is redone)."""
        return [self.train_out(name), self.dir / 'models' / name, self.dir / 'results' / name,
                self.dir / 'heldout' / f'{name}.json']

    # ---- running commands
    def sh(self, argv: Sequence[str], log: str, env: Optional[Dict[str, str]] = None, capture: bool = False,
           progress=None) -> str:
        """Run a command (or print it in a dry run); its output goes to logs/<log>.log; returns stdout if
        ``capture``. ``progress()`` is called every few seconds while it runs."""
        env = dict(env or {})
        if self.dry:
            print(env_line(env, argv), flush=True)
            return ''
        logf = self.dir / 'logs' / f'{log}.log'
        logf.parent.mkdir(parents=True, exist_ok=True)
        full_env = {**os.environ, 'HF_HUB_OFFLINE': '1', 'TRANSFORMERS_OFFLINE': '1', 'HF_DATASETS_OFFLINE': '1',
                    'PYTHONUNBUFFERED': '1', 'OMP_NUM_THREADS': str(self.a.threads), **env}
        with open(logf, 'a') as lf:
            lf.write(f'\n$ {env_line(env, argv)}\n')
            lf.flush()
            out_f = subprocess.PIPE if capture else lf
            # its own process group: a stopped study stops everything it started (swift's workers too)
            proc = subprocess.Popen(list(map(str, argv)), cwd=REPO, env=full_env, stdout=out_f, stderr=lf, text=True,
                                    start_new_session=True)
            stdout = ''
            try:
                if capture:
                    stdout, _ = proc.communicate()
                    lf.write(stdout)
                else:
                    while proc.poll() is None:
                        if progress:
                            progress()
                        time.sleep(3)
                    if progress:
                        progress()
            finally:
                if proc.poll() is None:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
        if proc.returncode != 0:
            tail = ''.join(logf.read_text(errors='replace').splitlines(True)[-25:])
            raise StudyError(f'{quote(argv[:4])}... failed with exit code {proc.returncode}; log {logf}:\n{tail}')
        return stdout

    # ---- stages
    def warm_start(self) -> Path:
        """shells/warm_start.sh (idempotent) prints the warm start's folder on its last line."""
        if self.a.warm_start:
            path = Path(self.a.warm_start).resolve()
            if not self.dry:
                self.check_model(path)
            return path
        cmd = ['bash', 'shells/warm_start.sh'] + (['--quick'] if self.a.quick_warm_start else [])
        if self.dry:
            self.sh(cmd, 'warm_start')
            from cpu_model.smollm2 import warm_start_dir
            return warm_start_dir(quick=self.a.quick_warm_start)
        out = self.sh(cmd, 'warm_start', capture=True).strip().splitlines()
        if not out:
            raise StudyError('shells/warm_start.sh printed no folder')
        path = Path(out[-1].strip())
        self.check_model(path)
        return path

    @staticmethod
    def check_model(path: Path) -> None:
        from cpu_model.smollm2 import is_ready
        if not is_ready(path):  # never let train.sh's converter write the base model into this folder
            raise StudyError(f'the warm start {path} is not a complete model folder (config.json, '
                             'model.safetensors, tokenizer.json)')

    def split(self) -> None:
        files = [self.data / f'{s}.jsonl' for s in ('rl', 'heldout')]
        if not self.dry and all(f.is_file() and f.stat().st_size for f in files):
            return
        self.sh(['python', '-m', 'data_prep', 'bfcl-split', '--out', str(self.data)], 'split')

    def heldout(self, name: str, model: Path) -> Optional[Dict[str, Any]]:
        if self.a.heldout_limit <= 0:
            return None
        out = self.dir / 'heldout' / f'{name}.json'
        cmd = ['python', '-m', 'cpu_model.heldout', '--model', str(model), '--rows', str(self.data / 'heldout.jsonl'),
               '--limit', str(self.a.heldout_limit), '--max-new-tokens', str(self.a.max_completion_length),
               '--out', str(out)]
        self.sh(cmd, f'{name}.heldout')
        return None if self.dry else json.loads(out.read_text())['summary']

    def bfcl(self, name: str, model: Path) -> Optional[Dict[str, Any]]:
        if self.a.bfcl_limit <= 0:
            return None
        cmd = ['bash', 'shells/eval.sh', '--only', 'bfcl', '--bfcl-categories', ','.join(BFCL_CATEGORIES),
               '--limit', str(self.a.bfcl_limit)] + (['--dry-run'] if self.dry else []) + [
            str(model), name, '--', *[f'--server-arg={a}' for a in self.server_args()]]
        env = {'RESULTS_DIR': str(self.dir / 'results')}
        if self.dry:  # eval.sh prints its own commands
            print(self.passthrough(cmd, env), end='', flush=True)
            return None
        self.sh(cmd, f'{name}.bfcl', env=env)
        return json.loads((self.dir / 'results' / name / 'bfcl.json').read_text())

    def server_args(self) -> List[str]:
        """eval.serve's swift deploy flags for SmolLM2 (``--smollm2``), with the study's answer budget: its 48
        new tokens would cut the warm start's ``<think>`` plan + call (median 81 tokens) short."""
        from eval.serve import SMOLLM2_SWIFT_ARGS
        args = list(SMOLLM2_SWIFT_ARGS)
        i = args.index('--max_new_tokens')
        args[i + 1] = str(self.a.max_completion_length)
        return args

    def passthrough(self, argv: Sequence[str], env: Dict[str, str]) -> str:
        """A dry run of one of the project's shell scripts: the commands it would run."""
        p = subprocess.run(list(argv), cwd=REPO, env={**os.environ, **env}, capture_output=True, text=True)
        if p.returncode != 0:
            raise StudyError(f'{quote(argv)} failed: {p.stderr[-2000:]}')
        return p.stdout

    def train_env(self) -> Dict[str, str]:
        return {'CPU_STEPS': str(self.a.steps), 'CPU_DATA': str(self.data / 'rl.jsonl'),
                'RUNS_DIR': str(self.dir / 'train'), 'AWPO_SMOLLM2_DIR': str(self.warm)}

    def train_flags(self) -> List[str]:
        """What the study sets beyond train.sh's smollm2 settings, identical for every method."""
        g = self.a.num_generations
        return ['--num_generations', str(g), '--per_device_train_batch_size', str(g * self.a.prompts_per_step),
                '--max_completion_length', str(self.a.max_completion_length)]

    def train(self, m: str) -> float:
        cmd = ['bash', 'shells/train.sh'] + (['--dry-run'] if self.dry else []) + [m, 'smollm2', '--',
                                                                                  *self.train_flags()]
        if self.dry:
            print(self.passthrough(cmd, self.train_env()), end='', flush=True)
            return 0.0
        from tqdm import tqdm
        bar = tqdm(total=self.a.steps, desc=f'{m} steps', unit='step', leave=False, file=sys.stderr,
                   disable=self.a.parallel > 1)
        log = self.train_out(m) / 'logging.jsonl'

        seen = [0]   # steps reported so far (a disabled tqdm bar does not count)

        def progress():
            if log.is_file():
                try:
                    n = len(P.read_log(log))
                except ValueError:  # a line being written
                    return
                if n > seen[0]:
                    if self.a.parallel > 1:
                        say(f'{m}: step {n}/{self.a.steps} ({time.time() - t0:.0f} s)')
                    bar.update(n - seen[0])
                    seen[0] = n
        t0 = time.time()
        try:
            self.sh(cmd, f'{m}.train', env=self.train_env(), progress=progress)
        finally:
            bar.close()
        wall = time.time() - t0
        with atomic_writer(str(self.train_out(m) / 'train_wall.json')) as f:
            json.dump({'wall_s': round(wall, 1), 'steps': self.a.steps, 'flags': self.train_flags()}, f)
        return wall

    def merge(self, m: str) -> Path:
        """The LoRA adapter merged into the warm start: a full folder both evaluations serve alike."""
        dst = self.dir / 'models' / m
        src = self.train_out(m) / 'last-checkpoint'
        if not self.dry:
            src = Path((self.train_out(m) / 'FINAL').read_text().strip())
        self.sh(['swift', 'export', '--adapters', str(src), '--merge_lora', 'true', '--output_dir', str(dst),
                 '--exist_ok', 'true'], f'{m}.merge')
        return dst

    def evaluate(self, name: str, model: Path) -> Dict[str, Any]:
        t0 = time.time()
        rec = {'heldout': self.heldout(name, model), 'bfcl': self.bfcl(name, model)}
        rec['eval_wall_s'] = round(time.time() - t0, 1)
        return rec

    def finish(self, name: str, rec: Dict[str, Any]) -> None:
        """The completion marker: written last, atomically."""
        if self.dry:
            return
        rec = {'name': name, 'finished': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()), **rec}
        with atomic_writer(str(self.marker(name))) as f:
            json.dump(rec, f, indent=1)
            f.write('\n')

    def done(self, name: str) -> bool:
        if self.a.force:
            return False
        try:
            json.loads(self.marker(name).read_text())
            return True
        except (FileNotFoundError, ValueError):
            return False

    def trained(self, name: str) -> Optional[float]:
        """Wall time of a finished training stage of this run (train.sh's DONE and our train_wall.json, both
        written after ms-swift ended, for the same number of steps), else None."""
        out = self.train_out(name)
        try:
            rec = json.loads((out / 'train_wall.json').read_text())
        except (FileNotFoundError, ValueError):
            return None
        ok = (out / 'DONE').is_file() and rec.get('steps') == self.a.steps and rec.get('flags') == self.train_flags()
        return float(rec['wall_s']) if ok else None

    def clean(self, name: str) -> None:
        """An unfinished run is redone from a clean state: what it left is removed, except a training stage
        that had finished (the costly part; its merge and evaluations are redone)."""
        if self.dry:
            return
        with_marker = self.marker(name)
        if with_marker.exists():
            with_marker.unlink()
        keep = self.train_out(name) if self.trained(name) is not None else None
        for p in self.run_paths(name):
            if p == keep:
                continue
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()

    def pending(self) -> List[str]:
        """The runs still to do, in order: the warm start's evaluation, then each method (resume logic)."""
        return [n for n in [BEFORE] + self.methods if not self.done(n)]

    def run(self) -> Dict[str, Any]:
        if not self.dry:
            self.dir.mkdir(parents=True, exist_ok=True)
        say(f'study in {self.dir}: runs {", ".join(self.methods)}, {self.a.steps} steps each; judge: {judge_name()}')
        todo = self.pending()
        for name in [BEFORE] + self.methods:
            if name not in todo:
                say(f'{name}: finished before ({self.marker(name)}): kept, not redone')
        self.warm = self.warm_start()
        say(f'warm start: {self.warm}')
        self.split()
        if not self.dry:
            with atomic_writer(str(self.dir / 'settings.json')) as f:
                json.dump(self.settings(), f, indent=1)
        from tqdm import tqdm
        bar = tqdm(total=len(todo), desc='study runs', unit='run', file=sys.stderr, disable=self.dry)
        if self.dry or self.a.parallel == 1:
            for name in todo:
                self.do(name)
                bar.update(1)
        else:
            # Concurrent runs share the (shared) CPU alike, so the load other jobs put on it hits every method.
            from concurrent.futures import ThreadPoolExecutor, as_completed
            with ThreadPoolExecutor(max_workers=self.a.parallel) as pool:
                futures = {pool.submit(self.do, name): name for name in todo}
                errors = []
                for fut in as_completed(futures):
                    bar.update(1)
                    try:
                        fut.result()
                    except StudyError as e:
                        errors.append(f'{futures[fut]}: {e}')
                if errors:
                    raise StudyError('\n'.join(errors))
        bar.close()
        return {} if self.dry else self.report()

    def do(self, name: str) -> None:
        """One run, from a clean state to its completion marker."""
        self.clean(name)
        if name == BEFORE:
            say('evaluating the warm start (before)')
            self.finish(name, {'model': str(self.warm), **self.evaluate(name, self.warm)})
            return
        wall = self.trained(name)
        if wall is None:
            say(f'{name}: training {self.a.steps} steps')
            wall = self.train(name)
        else:
            say(f'{name}: training had finished ({wall / 60:.1f} min): kept; merging and evaluating again')
        model = self.merge(name)
        if not self.dry:
            say(f'{name}: trained in {wall / 60:.1f} min; evaluating')
        rec = self.evaluate(name, model)
        self.finish(name, {'steps': self.a.steps, 'train_wall_s': round(wall, 1), 'model': str(model),
                           'train_dir': str(self.train_out(name)), 'parallel': self.a.parallel, **rec})
        say(f'{name}: finished')

    def window(self) -> int:
        """Steps averaged for "first" and "last" in the table: 5, or half the run if it is shorter."""
        return max(1, min(WINDOW, self.a.steps // 2))

    def settings(self) -> Dict[str, Any]:
        return {'steps': self.a.steps, 'prompts_per_step': self.a.prompts_per_step,
                'num_generations': self.a.num_generations, 'max_completion_length': self.a.max_completion_length,
                'seed': 42, 'judge': judge_name(), 'heldout_rows': self.a.heldout_limit,
                'bfcl_limit': self.a.bfcl_limit, 'threads': self.a.threads,
                'parallel': self.a.parallel, 'window': self.window(), 'warm_start': str(self.warm),
                'methods': self.methods,
                'command': 'bash shells/cpu_study.sh ' + ' '.join(self.a.argv)}

    def report(self) -> Dict[str, Any]:
        """Table (markdown + JSON) and figure from the finished runs' markers and logs."""
        before = self.load(BEFORE) or {}
        if self.warm is None:
            self.warm = Path(before.get('model', '?'))
        settings = self.settings()
        saved = self.dir / 'settings.json'
        if self.a.report_only and saved.is_file():   # the settings the runs were made with
            settings = json.loads(saved.read_text())
        runs, logs = {}, {}
        for m in settings.get('methods', self.methods):
            rec = self.load(m)
            if rec is None:
                continue
            rows = P.read_log(P.find_run_dir(self.train_out(m)) / 'logging.jsonl')
            rec['log'] = log_summary(rows, settings.get('window', self.window()))
            runs[m], logs[m] = rec, rows
        table = build_table(before, runs, settings)
        md = table_markdown(table)
        with atomic_writer(str(self.dir / 'cpu_study.json')) as f:
            json.dump(table, f, indent=1)
            f.write('\n')
        with atomic_writer(str(self.dir / 'cpu_study.md')) as f:
            f.write(md)
        png = plot_study(logs, self.dir / 'cpu_study.png',
                         f"CPU study: SmolLM2-135M warm start, {settings['steps']} steps per run "
                         f"({settings['prompts_per_step']} prompts x {settings['num_generations']}), "
                         f"judge: {settings['judge']}")
        written = [self.dir / 'cpu_study.md', self.dir / 'cpu_study.json'] + ([png] if png else [])
        if self.a.publish:
            pub = Path(self.a.publish)
            pub.mkdir(parents=True, exist_ok=True)
            for p in written:
                shutil.copyfile(p, pub / p.name)
            written += [pub / p.name for p in written]
        print(md)
        say('wrote ' + ', '.join(map(str, written)))
        return table

    def load(self, name: str) -> Optional[Dict[str, Any]]:
        try:
            return json.loads(self.marker(name).read_text())
        except FileNotFoundError:
            return None


def judge_name() -> str:
    url = os.environ.get('AWPO_JUDGE_BASE_URL')
    return f'LLM judge at {url}' if url else 'offline rubric (deterministic, not an LLM)'


def say(msg: str) -> None:
    print(f"[cpu_study {time.strftime('%H:%M:%S', time.gmtime())}] {msg}", file=sys.stderr, flush=True)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog='bash shells/cpu_study.sh', description=__doc__.split('\n\n')[0])
    p.add_argument('--ablations', action='store_true', help='also AWPO without gating / difficulty / dynamic clip')
    p.add_argument('--steps', type=int, default=20, help='optimiser steps per run (default 20)')
    p.add_argument('--dry-run', action='store_true', help='print the commands, run nothing')
    p.add_argument('--study-dir', default=os.environ.get('STUDY_DIR') or 'runs/cpu_study')
    p.add_argument('--prompts-per-step', type=int, default=2)
    p.add_argument('--num-generations', type=int, default=4, help='completions per prompt (GRPO group size)')
    p.add_argument('--max-completion-length', type=int, default=128,
                   help='new tokens per completion (the warm start writes <think>plan</think> + the call: '
                   'median 81, 90th percentile 114 tokens on the SFT split)')
    p.add_argument('--heldout-limit', type=int, default=41, help='held-out rows scored before/after (0: none)')
    p.add_argument('--bfcl-limit', type=int, default=20, help='BFCL cases per category (0: no BFCL smoke)')
    p.add_argument('--warm-start', default=None, help='use this model folder as the warm start (default: build '
                   'or reuse it with shells/warm_start.sh)')
    p.add_argument('--quick-warm-start', action='store_true', help='build the warm start with --quick')
    p.add_argument('--threads', type=int, default=int(os.environ.get('STUDY_THREADS', '1')),
                   help='OMP_NUM_THREADS of every command (default 1: on this shared 2-core box, 2 threads per '
                   'process spent 3-5x more CPU per generated token than 1, in OpenMP spin-waits)')
    p.add_argument('--parallel', type=int, default=1,
                   help='runs at a time (default 1); on a shared box, concurrent runs see the same load')
    p.add_argument('--force', action='store_true', help='redo finished runs too')
    p.add_argument('--report-only', action='store_true', help='only rebuild the table and plot')
    p.add_argument('--publish', default=None, help='copy the table and the plot into this folder (e.g. docs)')
    args = p.parse_args(argv)
    for k in ('steps', 'prompts_per_step', 'num_generations', 'max_completion_length', 'threads', 'parallel'):
        if getattr(args, k) < 1:
            p.error(f'--{k.replace("_", "-")} must be at least 1')
    if args.bfcl_limit < 0 or args.heldout_limit < 0:
        p.error('--bfcl-limit and --heldout-limit must be >= 0')
    args.argv = list(argv if argv is not None else sys.argv[1:])
    return args


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    # a SIGTERM unwinds like Ctrl-C, so the running command's process group is stopped too
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    study = Study(args)
    try:
        if args.report_only:
            study.report()
        else:
            study.run()
    except StudyError as e:
        print(f'[cpu_study] error: {e}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
