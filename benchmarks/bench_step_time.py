"""CPU step time of a real ``swift rlhf`` GRPO run with and without the AWPO plugin, same data and seed.

    python -m benchmarks.bench_step_time [--steps 4] [--rows 8] [--repeats 1]
    python -m benchmarks.bench_step_time --latencies 0,5,10 [--steps 3] [--repeats 1] [--out FILE.json]

Stock GRPO loads ``plugin/baselines.py`` (same rewards, ms-swift's trainer); AWPO loads
``plugin/awpo.py``. Both score with ``awpo_outcome awpo_judge`` on the shortest rows of the bundled demo set,
SmolLM2-135M on the CPU.

Without ``--latencies`` the judge is the offline rubric (or ``AWPO_JUDGE_BASE_URL``). With ``--latencies`` the
judge is the stub (``python -m testsupport.judge_stub``, its own process) answering after L seconds, and three
runs are interleaved per repeat: stock GRPO, AWPO waiting for the judge inside the reward call
(``AWPO_JUDGE_OVERLAP=0``, the old behaviour) and AWPO with the judge in flight during the old/ref log-prob
pass (``judge.overlap``, the default). Reported: mean step time without the first step (warm-up), AWPO's
log-prob pass T_logp (``awpo/logp_pass_s``) and its wait for the judge (``awpo/judge_wait_s``), and the goal
of issue 12: AWPO overlap <= stock + max(0, L - T_logp) + 2 %. Each run holds ``/tmp/awpo-heavy.lock`` so
that timed runs do not overlap other heavy jobs that take the lock; the machine may still be shared.
"""
from __future__ import annotations

import argparse
import fcntl
import json
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from cpu_model.smollm2 import prepare
from testsupport.swift_run import REPO, read_log, run_grpo, shortest_rows, train_steps

RUNS = [('stock GRPO', 'plugin/baselines.py'), ('AWPO', 'plugin/awpo.py')]
LATENCY_RUNS = [('stock GRPO', 'plugin/baselines.py', {}),
                ('AWPO wait', 'plugin/awpo.py', {'AWPO_JUDGE_OVERLAP': '0'}),
                ('AWPO overlap', 'plugin/awpo.py', {'AWPO_JUDGE_OVERLAP': '1'})]
LOCK = '/tmp/awpo-heavy.lock'


@contextmanager
def heavy_lock(use: bool = True):
    if not use:
        yield
        return
    with open(LOCK, 'a') as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _mean(xs):
    return statistics.fmean(xs) if xs else float('nan')


def timed_run(model, data, out, plugin, steps, env=None, extra=(), lock=True):
    with heavy_lock(lock):
        t = time.time()
        rc, _ = run_grpo(model, data, out, ['awpo_outcome', 'awpo_judge'], steps=steps, plugin=plugin, env=env,
                         extra=extra)
        wall = time.time() - t
    if rc:
        raise SystemExit(f'run failed (rc {rc}); log: {out}.stdout.txt')
    recs = [r for r in train_steps(read_log(out)) if 'step_time' in r]
    return {'step_times': [round(r['step_time'], 2) for r in recs],
            'logp': [r['awpo/logp_pass_s'] for r in recs if 'awpo/logp_pass_s' in r],
            'wait': [r['awpo/judge_wait_s'] for r in recs if 'awpo/judge_wait_s' in r],
            'missing': [r['awpo/judge_missing_frac'] for r in recs if 'awpo/judge_missing_frac' in r],
            'wall': round(wall, 1)}


def _size_flags(args):
    return ['--per_device_train_batch_size', str(args.batch), '--max_completion_length', str(args.completion)]


def latency_bench(args, model, data, work) -> dict:
    results = {}
    for L in [float(x) for x in args.latencies.split(',')]:
        port = _free_port()
        stub = subprocess.Popen([sys.executable, '-m', 'testsupport.judge_stub', '--port', str(port), '--latency', str(L),
                                 '--mode', 'content', '--model', 'stub-judge'], cwd=REPO, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        try:
            assert 'listening' in stub.stdout.readline()
            env = {'AWPO_JUDGE_BASE_URL': f'http://127.0.0.1:{port}/v1', 'AWPO_JUDGE_MODEL': 'stub-judge',
                   'AWPO_JUDGE_TIMEOUT': str(max(60, 3 * L)), 'AWPO_JUDGE_MAX_RETRIES': '0'}
            for rep in range(args.repeats):
                for name, plugin, extra in LATENCY_RUNS:
                    if args.runs and name not in args.runs.split(','):
                        continue
                    r = timed_run(model, data, work / f'L{L:g}_{name.replace(" ", "_")}_{rep}', plugin, args.steps,
                                  {**env, **extra}, _size_flags(args), lock=not args.no_lock)
                    results.setdefault(f'{L:g}', {}).setdefault(name, []).append(r)
                    print(f'L={L:g}s {name:>12} rep {rep}: step times {r["step_times"]} s, T_logp '
                          f'{[round(x, 2) for x in r["logp"]]}, judge wait {[round(x, 2) for x in r["wait"]]}, '
                          f'missing {r["missing"]}, wall {r["wall"]} s', flush=True)
        finally:
            stub.kill()
            stub.wait()
    print('\n| L (s) | stock GRPO step (s) | AWPO wait step (s) | AWPO overlap step (s) | T_logp (s) | '
          'judge wait, overlap (s) | goal: stock + max(0, L - T_logp) + 2 % | met |')
    print('|---|---|---|---|---|---|---|---|')
    for L, by in results.items():
        def steady(name):  # mean step time without each run's first (warm-up) step, unless it is the only one
            return _mean([t for r in by[name] for t in (r['step_times'][1:] or r['step_times'])])
        stock, wait, over = (steady(n) if n in by else float('nan') for n in ('stock GRPO', 'AWPO wait', 'AWPO overlap'))
        t_logp = _mean([x for r in by.get('AWPO overlap', []) for x in (r['logp'][1:] or r['logp'])])
        waited = _mean([x for r in by.get('AWPO overlap', []) for x in (r['wait'][1:] or r['wait'])])
        goal = (stock + max(0.0, float(L) - t_logp)) * 1.02
        print(f'| {L} | {stock:.1f} | {wait:.1f} | {over:.1f} | {t_logp:.1f} | {waited:.1f} | {goal:.1f} | '
              f'{"yes" if over <= goal else "no"} |')
    return results


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--steps', type=int, default=4)
    p.add_argument('--rows', type=int, default=8)
    p.add_argument('--repeats', type=int, default=1, help='alternate the runs this many times')
    p.add_argument('--batch', type=int, default=8, help='completions per step (num_generations 4)')
    p.add_argument('--completion', type=int, default=40, help='--max_completion_length')
    p.add_argument('--latencies', help='comma-separated stub judge latencies in seconds (e.g. 0,5,10)')
    p.add_argument('--runs', help='only these of "stock GRPO,AWPO wait,AWPO overlap" (with --latencies)')
    p.add_argument('--no-lock', action='store_true', help=f'do not wait for {LOCK} (timings then overlap other jobs)')
    p.add_argument('--out', help='write the raw per-run numbers here (JSON)')
    args = p.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix='awpo-steptime-'))
    subprocess.run([sys.executable, '-m', 'data_prep', 'demo', '--out', str(work / 'demo.jsonl')], cwd=REPO,
                   check=True, capture_output=True)
    data = shortest_rows(work / 'demo.jsonl', work / 'train.jsonl', args.rows)
    model = prepare()
    if args.latencies:
        results = latency_bench(args, model, data, work)
    else:
        results = {}
        for rep in range(args.repeats):
            for name, plugin in RUNS:
                r = timed_run(model, data, work / f'{plugin.split("/")[-1][:-3]}_{rep}', plugin, args.steps,
                              extra=_size_flags(args))
                results.setdefault(name, []).append(r)
                times = r['step_times']
                print(f'{name:>10}: step times {times} s, mean {_mean(times):.1f} s, wall {r["wall"]} s', flush=True)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=1) + '\n')
        print(f'wrote {args.out}')
    shutil.rmtree(work, ignore_errors=True)


if __name__ == '__main__':
    main()
