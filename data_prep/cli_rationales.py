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


def _export_batch(args, rows) -> int:
    """Request files for the Batch API by hand (`--batch` does upload, polling and import itself): split
    under both file limits; one file is FILE, several are FILE with .partN before the suffix."""
    from .rationale_batch import split_requests
    done = R.done_keys(args.out) if args.out else set()
    todo = [r for r in R.unique_rows(rows, args.inp) if R.row_key(r) not in done]
    lines = [(json.dumps(R.batch_request(r, args.model, args.max_tokens, args.temperature), ensure_ascii=False)
              + '\n').encode() for r in todo]
    parts = split_requests(lines, args.batch_max_requests, args.batch_max_bytes)
    base = Path(args.export_batch)
    base.parent.mkdir(parents=True, exist_ok=True)
    names = [base] if len(parts) <= 1 else [base.with_name(f'{base.stem}.part{j}{base.suffix}') for j in range(len(parts))]
    for name, chunk in zip(names, parts or [[]]):
        name.write_bytes(b''.join(chunk))
    print(f'wrote {len(todo)} Batch API requests in {len(names)} file(s) ({", ".join(map(str, names))}; '
          f'{len(rows) - len(todo)} rows already done). `rationales --batch --out OUT` uploads, polls and imports '
          f'them itself; by hand: client.files.create(file=open(F, "rb"), purpose="batch"), '
          f'client.batches.create(input_file_id=..., endpoint="/v1/chat/completions", completion_window="24h"), '
          f'then `python -m data_prep import-batch --in {args.inp} --results RESULTS.jsonl --out OUT`')
    return 0


def _price(args, batch: bool):
    from .usage import price_for
    return price_for(args.model, args.price_in, args.price_out, batch=batch)


def cmd_rationales(args) -> int:
    data = _load_input(args.inp, args.limit)
    rows = data.rows
    if args.max_length:
        from .length_filter import apply_filter
        rows = apply_filter(rows, args.tokenizer, args.max_length, args.thinking, where=args.inp,
                            report=args.out or args.export_batch, template_type=args.template,
                            model_type=args.model_type)
    if args.export_batch:
        return _export_batch(args, rows)
    if not args.out:
        raise SystemExit('rationales: --out is required unless --export-batch is given')
    if Path(args.out).resolve() == Path(args.inp).resolve():
        raise SystemExit('rationales: --out must differ from --in (the output is appended to)')
    if args.batch:
        from openai import OpenAI
        from .rationale_batch import BatchSettings, run_batch
        from .usage import add_to_ledger
        key = R.api_key(args.base_url, args.api_key_env)
        client = OpenAI(base_url=args.base_url, api_key=key, timeout=args.timeout, max_retries=args.retries)
        settings = BatchSettings(args.model, args.max_tokens, args.temperature, args.batch_max_requests,
                                 args.batch_max_bytes, args.poll_seconds, wait=not args.no_wait)
        summary = run_batch(rows, args.out, client, settings, inp=args.inp, bad_input=data.bad)
        summary.usage.price = _price(args, batch=True)
    else:
        from .usage import add_to_ledger
        client = R.make_client(args.base_url, args.api_key_env, args.timeout, max_retries=args.retries)
        limits = R.Limits(tpm=args.tpm, max_cost=args.max_cost, price=_price(args, batch=False))
        summary = asyncio.run(R.run(rows, args.out, client, args.model, args.concurrency, args.max_tokens,
                                    args.temperature, progress=not args.quiet, bad_input=data.bad, limits=limits))
    if summary.usage is not None and summary.usage.requests:
        ledger = add_to_ledger(f'{args.out}.usage.json', summary.usage, model=args.model,
                               via='batch' if args.batch else 'live')
        tot = ledger['total']
        print(f'all runs on {args.out}: {tot["tokens_in"]} tokens in, {tot["tokens_out"]} out, '
              f'${tot["usd"]:.4f} ({args.out}.usage.json)')
    print(summary.text(args.out))
    return 1 if (summary.failures or summary.stopped) else 0


def cmd_import_batch(args) -> int:
    data = _load_input(args.inp, None)
    summary = R.import_batch(data.rows, args.results, args.out, bad_input=data.bad)
    print(summary.text(args.out))
    return 1 if summary.failures else 0


def cmd_sft(args) -> int:
    from .sft import export_sft
    summary = export_sft(args.inp, args.out, strict=args.strict, progress=not args.quiet,
                         thinking=args.thinking == 'true')
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
    p.add_argument('--retries', type=int, default=2,
                   help="the openai SDK's max_retries: 408/409/429/5xx and connection errors are retried with its "
                        'back-off or the Retry-After the server sends; 401/403/404 and quota/billing 429s stop the run')
    p.add_argument('--timeout', type=float, default=120.0)
    p.add_argument('--limit', type=int, default=None, help='only the first N input rows')
    p.add_argument('--tpm', type=float, default=None, help='at most this many tokens per minute (prompt + max_tokens)')
    p.add_argument('--max-cost', type=float, default=None, metavar='USD',
                   help='stop before a request could take this run past USD (needs a price: table or --price-in/out)')
    p.add_argument('--price-in', type=float, default=None, help='USD per 1M input tokens (overrides the table)')
    p.add_argument('--price-out', type=float, default=None, help='USD per 1M output tokens (overrides the table)')
    p.add_argument('--max-length', type=int, default=None, metavar='TOKENS',
                   help="drop rows whose prompt the backbone's template makes longer than this, before any request "
                        '(the recipe: MAX_LENGTH in shells/recipes/common.sh)')
    p.add_argument('--tokenizer', default=None, help="the backbone's tokenizer folder or hub id (with --max-length)")
    p.add_argument('--thinking', choices=['true', 'false'], default='false',
                   help="the template's thinking mode for --max-length (false renders the longer prompt)")
    p.add_argument('--template', default=None, help="--max-length: ms-swift template type, if not the folder's")
    p.add_argument('--model-type', default=None, help='--max-length: ms-swift model type, if not detected')
    p.add_argument('--batch', action='store_true',
                   help='use the OpenAI Batch API: split, upload, create, poll, import (resumable, state in OUT.batch.json)')
    p.add_argument('--no-wait', action='store_true', help='--batch: submit / poll once and exit; rerun to continue')
    p.add_argument('--poll-seconds', type=float, default=60.0, help='--batch: seconds between polls')
    p.add_argument('--batch-max-requests', type=int, default=50_000, help='requests per Batch API file (limit 50,000)')
    p.add_argument('--batch-max-bytes', type=int, default=200 * 1024 * 1024, help='bytes per Batch API file (limit 200 MB)')
    p.add_argument('--export-batch', metavar='FILE', help='only write the Batch API request file(s), split under the limits')
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
    p.add_argument('--thinking', choices=['true', 'false'], default='true',
                   help="the backbone's thinking mode: false = no <think> block, the rationale as plain text before "
                        "the calls (shells/recipes/common.sh THINKING)")
    p.add_argument('--quiet', action='store_true')
    p.set_defaults(func=cmd_sft)


__all__ = ['add_parsers']
