"""Wall time of one judge batch: N samples against the stub judge at a fixed latency (issue 12, item 4).

    python -m benchmarks.bench_judge_batch [--samples 64] [--latency 0.3] [--batches 5]

The stub runs as its own process (``python -m testsupport.judge_stub``), so its threads do not share this process's
interpreter. Every batch holds new completions (no cache hits). Printed per batch: the wall time of
``score_sync`` and its floor, one round trip (``latency``), and the CPU time this process spent on it (what a
busy machine stretches: on a shared box, compare CPU time and interleave runs); the first batch also pays the one-off costs (SDK
import, loop and client creation). Also printed: the time to build the 64 prompts and cache keys alone.
"""
from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GOLD = json.dumps([{'name': 'get_weather', 'arguments': {'city': 'Oslo', 'unit': 'c'}}])
TOOLS = json.dumps([{'name': 'get_weather', 'parameters': {'type': 'object', 'properties': {'city': {}, 'unit': {}}}}])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--samples', type=int, default=64)
    p.add_argument('--latency', type=float, default=0.3)
    p.add_argument('--batches', type=int, default=5)
    a = p.parse_args(argv)
    from plugin.config import JudgeConfig
    from plugin.judge import make_judge
    from plugin.judge_base import JudgeSample, judge_input
    from plugin.judge_prompt import build_messages, cache_key

    port = _free_port()
    stub = subprocess.Popen([sys.executable, '-m', 'testsupport.judge_stub', '--port', str(port), '--latency',
                             str(a.latency), '--score', '0.75', '--model', 'judge-stub'], cwd=Path.cwd(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert 'listening' in stub.stdout.readline()
        cfg = JudgeConfig(backend='openai', base_url=f'http://127.0.0.1:{port}/v1', model='judge-stub',
                          max_retries=0, concurrency=max(64, a.samples)).validate()
        judge = make_judge(cfg)
        judge.health_check()
        messages = [{'role': 'system', 'content': 'You can call tools.'},
                    {'role': 'user', 'content': 'What is the weather in Oslo right now, in Celsius?'}]

        def batch(b: int):
            return [JudgeSample(completion=f'<think>batch {b} sample {i}: the user wants the weather in Oslo, so '
                                           f'I call get_weather.</think>\n<tool_call>\n{{"name": "get_weather", '
                                           f'"arguments": {{"city": "Oslo", "unit": "c"}}}}\n</tool_call>',
                                history=messages, ground_truth=GOLD, reference_rationale='Call get_weather.',
                                tools=TOOLS) for i in range(a.samples)]

        t = time.perf_counter()
        for s in batch(-1):
            m, _, _ = build_messages(judge_input(s), cfg.reasoning_budget_chars)
            cache_key(cfg.model, m, cfg.temperature, cfg.max_tokens, cfg.guided_json)
        prep = time.perf_counter() - t
        walls, cpus = [], []
        for b in range(a.batches):
            t, c = time.perf_counter(), time.process_time()
            verdicts = judge.score_sync(batch(b))
            walls.append(time.perf_counter() - t)
            cpus.append(time.process_time() - c)
            ok = sum(v.score is not None for v in verdicts)
            print(f'batch {b}: {a.samples} samples in {walls[-1]:.3f} s wall, {cpus[-1]:.3f} s CPU of this process '
                  f'({ok} scored; one round trip = {a.latency:.3f} s)', flush=True)
        warm = walls[1:] or walls
        print(f'summary: prompts+keys {prep * 1000:.0f} ms for {a.samples}; first batch {walls[0]:.3f} s; '
              f'later batches median {statistics.median(warm):.3f} s, max {max(warm):.3f} s '
              f'(latency {a.latency} s); client CPU per batch median {statistics.median(cpus[1:] or cpus):.3f} s')
    finally:
        stub.kill()
        stub.wait()
    return 0


if __name__ == '__main__':
    sys.exit(main())
