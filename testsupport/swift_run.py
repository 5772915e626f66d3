"""Run a real ``swift rlhf --rlhf_type grpo`` on the CPU with the small SmolLM2 model, and read its logs.

Used by the end-to-end tests; nothing here fakes ms-swift: it is the installed ``swift`` CLI in a subprocess.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

from cpu_model import smollm2

REPO = Path(__file__).resolve().parents[1]

# The model's own training flags (cpu_model/smollm2.py), the project's tool-call format, then the settings
# of these tests that work for SmolLM2-135M on 2 CPU cores (see docs/cpu.md, "CPU runs").
CPU_FLAGS = [*smollm2.TRAIN_FLAGS, '--agent_template', smollm2.AGENT_TEMPLATE,
             '--tuner_type', 'lora', '--dataloader_num_workers', '0', '--dataloader_persistent_workers', 'false',
             '--report_to', 'none',
             '--num_generations', '4', '--per_device_train_batch_size', '8', '--gradient_accumulation_steps', '1',
             '--max_completion_length', '40', '--max_length', '1536', '--temperature', '1.0', '--logging_steps', '1',
             '--save_strategy', 'no', '--learning_rate', '1e-5', '--seed', '42', '--dataset_num_proc', '1']


def swift_bin() -> str:
    exe = Path(sys.executable).with_name('swift')
    return str(exe) if exe.exists() else 'swift'


def shortest_rows(src: Path, dst: Path, n: int) -> Path:
    """Keep the n rows with the shortest prompts (CPU time), in their original order."""
    rows = [json.loads(line) for line in src.read_text().splitlines() if line.strip()]
    keep = sorted(sorted(range(len(rows)), key=lambda i: len(json.dumps(rows[i])))[:n])
    dst.write_text(''.join(json.dumps(rows[i]) + '\n' for i in keep))
    return dst


def read_log(output_dir: Path) -> List[Dict]:
    """Records of ms-swift's ``logging.jsonl`` (one per logged step), numbers as floats. Read while the run
    writes it: a torn last line is left out, a bad middle line names file and line (``eval.jsonl``)."""
    from eval.jsonl import read_jsonl
    files = sorted(Path(output_dir).glob('**/logging.jsonl'))
    records = []
    for f in files:
        for _, rec in read_jsonl(f)[0]:
            records.append({k: _num(v) for k, v in rec.items()})
    return records


def _num(v):
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return v
    return v


def train_steps(records: List[Dict]) -> List[Dict]:
    return [r for r in records if 'awpo/clip_eps' in r or 'reward' in r]


def run_grpo(model_dir: Path, dataset: Path, output_dir: Path, reward_funcs: Sequence[str], steps: int,
             plugin: str = 'plugin/awpo.py', env: Optional[Dict[str, str]] = None, extra: Sequence[str] = (),
             on_record: Optional[Callable[[Dict], None]] = None, timeout: float = 1800):
    """Run swift rlhf; call ``on_record(record)`` as each step's log line appears. Returns (rc, output)."""
    cmd = [swift_bin(), 'rlhf', '--rlhf_type', 'grpo', '--external_plugins', str(REPO / plugin),
           '--reward_funcs', *reward_funcs, '--model', str(model_dir), '--dataset', str(dataset),
           '--output_dir', str(output_dir), '--max_steps', str(steps), *CPU_FLAGS, *extra]
    full_env = {**os.environ, 'HF_HUB_OFFLINE': '1', 'PYTHONUNBUFFERED': '1', **(env or {})}
    log_path = Path(output_dir).with_suffix('.stdout.txt')
    Path(output_dir).parent.mkdir(parents=True, exist_ok=True)
    seen = 0
    with open(log_path, 'w') as log:
        # its own process group: on a time-out or an exception the trainer swift starts is ended too, not only the
        # swift wrapper (a leftover trainer would hold a core for the rest of the suite).
        proc = subprocess.Popen(cmd, cwd=REPO, env=full_env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        deadline = time.time() + timeout
        try:
            while proc.poll() is None:
                if time.time() > deadline:
                    raise TimeoutError(f'swift rlhf did not finish in {timeout} s; log: {log_path}')
                recs = train_steps(read_log(output_dir)) if Path(output_dir).exists() else []
                for rec in recs[seen:]:
                    if on_record:
                        on_record(rec)
                seen = len(recs)
                time.sleep(1.0)
        finally:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()
    return proc.returncode, log_path.read_text()
