"""`rationales` (live or --export-batch), `import-batch` and `sft` sub-commands."""
from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from . import rationales as R


def _load_input(path: str, limit: int | None) -> R.InputRows:
    """All input rows checked before the first request; the bad ones are reported now and skipped."""
    data = R.read_input(path, limit)
    for line in data.bad[:10]:
        print(f'skipping invalid input row: {line}', file=sys.stderr)
    if len(data.bad) > 10:
        print(f'... and {len(data.bad) - 10} more invalid input rows', file=sys.stderr)
    return data


def cmd_rationales(args) -> int:
    data = _load_input(args.inp, args.limit)
    rows = data.rows
    if args.export_batch:
        done = R.done_keys(args.out) if args.out else set()
        n = 0
        Path(args.export_batch).parent.mkdir(parents=True, exist_ok=True)
        with open(args.export_batch, 'w', encoding='utf-8') as f:
            for row in R.unique_rows(rows, args.inp):
                if R.row_key(row) not in done:
                    f.write(json.dumps(R.batch_request(row, args.model, args.max_tokens, args.temperature),
                                       ensure_ascii=False) + '\n')
                    n += 1
        print(f'wrote {n} Batch API requests to {args.export_batch} ({len(rows) - n} already done); upload it '
              f'with `openai api files.create -p batch` / client.batches.create(endpoint="/v1/chat/completions"), '
              f'then `python -m data_prep import-batch --in {args.inp} --results RESULTS.jsonl --out OUT`')
        return 0
    if not args.out:
        raise SystemExit('rationales: --out is required unless --export-batch is given')
    if Path(args.out).resolve() == Path(args.inp).resolve():
        raise SystemExit('rationales: --out must differ from --in (the output is appended to)')
    client = R.make_client(args.base_url, args.api_key_env, args.timeout)
    summary = asyncio.run(R.run(rows, args.out, client, args.model, args.concurrency, args.max_tokens,
                                args.temperature, args.retries, args.retry_wait, progress=not args.quiet,
                                bad_input=data.bad))
    print(summary.text(args.out))
    return 1 if summary.failures else 0


def cmd_import_batch(args) -> int:
    data = _load_input(args.inp, None)
    summary = R.import_batch(data.rows, args.results, args.out, bad_input=data.bad)
    print(summary.text(args.out))
    return 1 if summary.failures else 0


def cmd_sft(args) -> int:
    from .sft import export_sft
    summary = export_sft(args.inp, args.out, strict=args.strict, progress=not args.quiet)
    print(summary.text(args.out))
    return 0


def add_parsers(sub) -> None:
    p = sub.add_parser('rationales', help='reference rationale per instance from an OpenAI-compatible model')
    p.add_argument('--in', dest='inp', required=True)
    p.add_argument('--out', help='rows with rationales, appended as they finish (resumable)')
    p.add_argument('--model', required=True)
    p.add_argument('--base-url', default=None, help='OpenAI-compatible endpoint (default: api.openai.com)')
    p.add_argument('--api-key-env', default='OPENAI_API_KEY', help='environment variable holding the API key')
    p.add_argument('--concurrency', type=int, default=32)
    p.add_argument('--max-tokens', type=int, default=256)
    p.add_argument('--temperature', type=float, default=0.2)
    p.add_argument('--retries', type=int, default=3, help='retries per row after the first attempt')
    p.add_argument('--retry-wait', type=float, default=1.0, help='first back-off in seconds (doubles)')
    p.add_argument('--timeout', type=float, default=120.0)
    p.add_argument('--limit', type=int, default=None, help='only the first N input rows')
    p.add_argument('--export-batch', metavar='FILE', help='write an OpenAI Batch API request file instead')
    p.add_argument('--quiet', action='store_true')
    p.set_defaults(func=cmd_rationales)

    p = sub.add_parser('import-batch', help='attach OpenAI Batch API results to the rows')
    p.add_argument('--in', dest='inp', required=True, help='the rows the batch was exported from')
    p.add_argument('--results', required=True, help='the batch output file (JSONL)')
    p.add_argument('--out', required=True)
    p.set_defaults(func=cmd_import_batch)

    p = sub.add_parser('sft', help='SFT rows: <think>rationale</think> + native calls / answer')
    p.add_argument('--in', dest='inp', required=True)
    p.add_argument('--out', required=True)
    p.add_argument('--strict', action='store_true', help='a row that cannot be exported is an error naming its line')
    p.add_argument('--quiet', action='store_true')
    p.set_defaults(func=cmd_sft)


__all__ = ['add_parsers']
