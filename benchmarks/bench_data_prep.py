"""Throughput of data_prep: conversion (dialogues/s per source) and rationales against a local
OpenAI-compatible stub with fixed latency (rows/s at a given concurrency).

    python -m benchmarks.bench_data_prep [--dialogues 3000] [--rows 640] [--latency 0.3] [--concurrency 32]

Conversion input: the bundled fixtures replicated with fresh ids (`--dialogues` per source), converted
in-process by the same code `build` runs (parse + decompose + jsonschema validation + JSON write).
Rationales: the real `rationales` runner with the real `openai.AsyncOpenAI` client against the aiohttp stub
testsupport/rationale_stub.py; the ideal time is ceil(rows / concurrency) * latency.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import math
import tempfile
import time
from pathlib import Path

from data_prep import rationales as R
from data_prep.pipeline import Stats, convert_source, write_rows
from data_prep.sources import SOURCES, fixture_path, read_local


def replicate(raw: list[dict], n: int) -> list[dict]:
    # `bench_copy` makes each copy's content distinct too (build drops repeated content, not only repeated ids)
    return [{**raw[i % len(raw)], 'id': f'bench-{i}', 'bench_copy': i} for i in range(n)]


def bench_conversion(n: int) -> None:
    print(f'conversion: {n} dialogues per source (fixtures replicated), parse + decompose + validate + write')
    total_d = total_t = 0.0
    for name in SOURCES:
        raw = replicate(read_local(fixture_path(name)), n)
        stats = Stats()
        t0 = time.perf_counter()
        write_rows(convert_source(name, raw, None, 0, strict=True, stats=stats, progress=False), io.StringIO())
        dt = time.perf_counter() - t0
        total_d += stats.dialogues[name]
        total_t += dt
        print(f'  {name:<8} {stats.dialogues[name]:>6} dialogues -> {stats.written[name]:>6} instances '
              f'in {dt:6.2f} s: {stats.dialogues[name] / dt:8.0f} dialogues/s, {stats.written[name] / dt:8.0f} instances/s')
    print(f'  all      {total_d / total_t:8.0f} dialogues/s')


def bench_rationales(n_rows: int, latency: float, concurrency: int) -> None:
    from testsupport.rationale_stub import RationaleStub
    with tempfile.TemporaryDirectory() as tmp:
        demo = Path(tmp) / 'demo.jsonl'
        from data_prep.__main__ import main
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            main(['demo', '--out', str(demo)])
        base = R.read_rows(demo)
        rows = [{**base[i % len(base)], 'dialogue_id': f'bench-{i}'} for i in range(n_rows)]
        with RationaleStub(latency=latency) as stub:
            client = R.make_client(stub.base_url, 'AWPO_BENCH_NO_KEY', timeout=30)
            t0 = time.perf_counter()
            summary = asyncio.run(R.run(rows, str(Path(tmp) / 'out.jsonl'), client, 'stub', concurrency=concurrency,
                                        progress=False))
            dt = time.perf_counter() - t0
        ideal = math.ceil(n_rows / concurrency) * latency
        assert summary.written == n_rows and not summary.failures, summary.text('out')
        print(f'rationales: {n_rows} rows, stub latency {latency} s, concurrency {concurrency}: {dt:.2f} s, '
              f'{n_rows / dt:.1f} rows/s (ideal {n_rows / ideal:.1f} rows/s; peak in flight {stub.max_inflight})')


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--dialogues', type=int, default=3000)
    ap.add_argument('--rows', type=int, default=640)
    ap.add_argument('--latency', type=float, default=0.3)
    ap.add_argument('--concurrency', type=int, default=32)
    args = ap.parse_args()
    bench_conversion(args.dialogues)
    bench_rationales(args.rows, args.latency, args.concurrency)


if __name__ == '__main__':
    main()
