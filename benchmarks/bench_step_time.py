"""CPU step time of a real ``swift rlhf`` GRPO run with and without the AWPO plugin, same data and seed.

    python -m benchmarks.bench_step_time [--steps 4] [--rows 8]

Stock GRPO loads ``plugin/awpo_rewards.py`` (same rewards, ms-swift's trainer); AWPO loads
``plugin/awpo.py``. Both score with ``awpo_outcome awpo_judge`` (offline rubric judge unless
``AWPO_JUDGE_BASE_URL`` is set) on the shortest rows of the bundled demo set, SmolLM2-135M on the CPU.
Run on an otherwise idle machine; repeat (``--repeats``) to see the noise.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from plugin.smollm2 import prepare
from tests.swift_run import REPO, read_log, run_grpo, shortest_rows, train_steps

RUNS = [('stock GRPO', 'plugin/awpo_rewards.py'), ('AWPO', 'plugin/awpo.py')]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--steps', type=int, default=4)
    p.add_argument('--rows', type=int, default=8)
    p.add_argument('--repeats', type=int, default=1, help='alternate stock/AWPO this many times')
    args = p.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix='awpo-steptime-'))
    subprocess.run([sys.executable, '-m', 'data_prep', 'demo', '--out', str(work / 'demo.jsonl')], cwd=REPO,
                   check=True, capture_output=True)
    data = shortest_rows(work / 'demo.jsonl', work / 'train.jsonl', args.rows)
    for rep in range(args.repeats):
        for name, plugin in RUNS:
            out = work / f'{plugin.split("/")[-1][:-3]}_{rep}'
            t = time.time()
            rc, log = run_grpo(prepare(), data, out, ['awpo_outcome', 'awpo_judge'], steps=args.steps, plugin=plugin)
            if rc:
                raise SystemExit(f'{name} run failed (rc {rc}); log: {out}.stdout.txt')
            times = [round(r['step_time'], 1) for r in train_steps(read_log(out)) if 'step_time' in r]
            print(f'{name:>10}: step times {times} s, mean {sum(times) / len(times):.1f} s, '
                  f'wall {time.time() - t:.0f} s', flush=True)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == '__main__':
    main()
