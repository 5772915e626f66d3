"""The CPU study (issue 10, part 2): AWPO vs stock GRPO vs Mixed-reward GRPO, from one warm start.

    bash shells/cpu_study.sh [--ablations] [--steps N] [--dry-run]      # = python -m benchmarks.cpu_study

Every run starts from the same warm start (SmolLM2-135M-Instruct after SFT on tool calls,
``shells/warm_start.sh``), trains on the same rows (the ``rl`` split of ``python -m data_prep bfcl-split``)
with the same seed, the same batch and the same number of steps, through the project's own recipe
(``shells/train.sh METHOD smollm2``; only the method's switches differ, ``shells/recipes/METHOD.sh``):

* ``grpo``        stock ms-swift GRPO on the outcome reward R_out = S_format + S_exec (Eq. 14);
* ``mixed_grpo``  stock GRPO on R_out + R_judge (the paper's Figure 1 baseline);
* ``gdpo``        ms-swift's GDPO (``--scale_rewards gdpo``) on the same two rewards (ours, not the paper's);
* ``awpo``        AWPO (Eqs. 21-29);
* ``--ablations`` adds ``awpo_no_gating``, ``awpo_no_difficulty``, ``awpo_no_clip`` (Table 5) and the gate-rule
  readings ``awpo_gate_plus_flat``, ``awpo_gate_flat_only`` (ours; docs/settings.md).

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

This module is the runner (commands, resume, markers); the table and the curves are computed by
``benchmarks/cpu_study_report.py`` (pure: log rows and markers in, table and figure out).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from benchmarks.cpu_study_report import BEFORE, BFCL_CATEGORIES, WINDOW, log_summary, write_report
from data_prep.manifest import atomic_writer
from eval import plots as P

REPO = Path(__file__).resolve().parents[1]

METHODS = ['grpo', 'mixed_grpo', 'gdpo', 'awpo']
ABLATIONS = ['awpo_no_gating', 'awpo_no_difficulty', 'awpo_no_clip', 'awpo_gate_plus_flat', 'awpo_gate_flat_only']


class StudyError(RuntimeError):
    pass


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
        table, md, written = write_report(self.dir, before, runs, logs, settings, self.a.publish)
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
    p.add_argument('--ablations', action='store_true',
                   help='also AWPO without gating / difficulty / dynamic clip, and its two other gate readings')
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
