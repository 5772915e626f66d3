"""Rationales through the OpenAI Batch API as one resumable command (`rationales --batch`).

    split -> upload (client.files.create, purpose "batch") -> client.batches.create -> poll
    client.batches.retrieve -> download (client.files.content) -> append rows (`rationales.import_results`)

The Batch API takes at most 50,000 requests and 200 MB per input file (`MAX_REQUESTS`, `MAX_BYTES`); the
requests are cut into parts under both (`split_requests`). Every step is recorded in a state file beside
the output (`OUT.batch.json`, written atomically after each step), so a rerun of the same command picks up
where the last one stopped: parts not uploaded are uploaded, batches not created are created (after asking
the server whether a batch for that file already exists, so a kill between create and the state write does
not pay twice), running batches are polled, finished ones imported once. When every part of a round is
imported and rows are still missing (failed or expired requests), the next run starts a new round with
only those rows. `--no-wait` submits / polls once and exits: run it again later (from cron, say).
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from .dialogue import row_key
from .manifest import atomic_writer
from .rationales import Summary, batch_request, done_keys, finish, import_results, remove_manifest, unique_rows

MAX_REQUESTS = 50_000          # per input file (OpenAI Batch API limit)
MAX_BYTES = 200 * 1024 * 1024  # per input file (200 MB)
TERMINAL = ('completed', 'failed', 'expired', 'cancelled')


def split_requests(lines: list[bytes], max_requests: int = MAX_REQUESTS, max_bytes: int = MAX_BYTES) -> list[list[bytes]]:
    """Consecutive parts, each at most `max_requests` lines and `max_bytes` bytes (lines end in a newline).
    A single line over `max_bytes` is an error naming it (no file could carry it)."""
    parts, cur, size = [], [], 0
    for i, line in enumerate(lines):
        if len(line) > max_bytes:
            raise ValueError(f'request {i} alone is {len(line)} bytes, over the {max_bytes}-byte file limit')
        if cur and (len(cur) >= max_requests or size + len(line) > max_bytes):
            parts.append(cur)
            cur, size = [], 0
        cur.append(line)
        size += len(line)
    if cur:
        parts.append(cur)
    return parts


@dataclass
class BatchSettings:
    model: str
    max_tokens: int = 256
    temperature: float = 0.2
    max_requests: int = MAX_REQUESTS
    max_bytes: int = MAX_BYTES
    poll_seconds: float = 60.0
    wait: bool = True                  # poll until every batch ends; False: one pass, then exit
    completion_window: str = '24h'


def state_path(out_path: str) -> Path:
    return Path(f'{out_path}.batch.json')


def work_dir(out_path: str) -> Path:
    return Path(f'{out_path}.batch')


def _save(path: Path, state: dict) -> None:
    with atomic_writer(str(path)) as f:
        f.write(json.dumps(state, indent=1) + '\n')


def _load(path: Path, inp: str, model: str) -> dict:
    if not path.exists():
        return {'input': str(inp), 'model': model, 'rounds': []}
    try:
        state = json.loads(path.read_text(encoding='utf-8'))
    except ValueError as exc:
        raise ValueError(f'{path}: unreadable batch state ({exc}); move it away to start over') from None
    if state.get('model') != model:
        raise ValueError(f'{path}: these batches were made with --model {state.get("model")!r}, not {model!r}; '
                         'use the same model, or another --out')
    return state


def _new_round(state: dict, todo: list[dict], s: BatchSettings, wdir: Path) -> dict | None:
    if not todo:
        return None
    lines = [(json.dumps(batch_request(r, s.model, s.max_tokens, s.temperature), ensure_ascii=False) + '\n').encode()
             for r in todo]
    k = len(state['rounds'])
    wdir.mkdir(parents=True, exist_ok=True)
    parts = []
    for j, chunk in enumerate(split_requests(lines, s.max_requests, s.max_bytes)):
        path = wdir / f'round{k}-part{j}.input.jsonl'
        with atomic_writer(str(path), 'wb') as f:
            f.write(b''.join(chunk))
        parts.append({'input': str(path), 'requests': len(chunk), 'bytes': sum(map(len, chunk)),
                      'file_id': None, 'batch_id': None, 'status': 'written', 'imported': False})
    rnd = {'rows': len(todo), 'parts': parts}
    state['rounds'].append(rnd)
    return rnd


def _existing_batch(client, file_id: str):
    """A batch already created for `file_id` (a kill between create and the state write), or None."""
    try:
        page = client.batches.list(limit=100)
    except Exception:  # listing is a convenience; creating anew is the fallback
        return None
    for b in getattr(page, 'data', []) or []:
        if getattr(b, 'input_file_id', None) == file_id:
            return b
    return None


def _submit(client, part: dict, s: BatchSettings, save) -> None:
    if part['file_id'] is None:
        with open(part['input'], 'rb') as f:
            part['file_id'] = client.files.create(file=f, purpose='batch').id
        part['status'] = 'uploaded'
        save()
    if part['batch_id'] is None:
        b = _existing_batch(client, part['file_id']) or client.batches.create(
            input_file_id=part['file_id'], endpoint='/v1/chat/completions', completion_window=s.completion_window,
            metadata={'awpo': Path(part['input']).name})
        part['batch_id'], part['status'] = b.id, b.status
        save()


def _download(client, file_id: str | None, dest: Path) -> Path | None:
    if not file_id:
        return None
    data = client.files.content(file_id).content
    with atomic_writer(str(dest), 'wb') as f:
        f.write(data)
    return dest


def run_batch(rows: list[dict], out_path: str, client, s: BatchSettings, inp: str = '',
              bad_input=(), log=print) -> Summary:
    """Submit, poll and import until every row has its rationale or every batch has ended (see module doc)."""
    from .usage import Usage, price_for
    t0 = time.perf_counter()
    rows = unique_rows(rows, 'input')
    by_key = {row_key(r): r for r in rows}
    spath, wdir = state_path(out_path), work_dir(out_path)
    state = _load(spath, inp, s.model)
    save = lambda: _save(spath, state)  # noqa: E731
    remove_manifest(out_path)
    done = done_keys(out_path)
    summary = Summary(total=len(rows), already_done=len(done & by_key.keys()), bad_input=list(bad_input),
                      usage=Usage(price=price_for(s.model, batch=True)))
    rnd = state['rounds'][-1] if state['rounds'] else None
    if rnd is None or all(p['imported'] for p in rnd['parts']):
        rnd = _new_round(state, [r for r in rows if row_key(r) not in done], s, wdir)
        if rnd is not None:
            save()
            log(f'batch round {len(state["rounds"]) - 1}: {rnd["rows"]} requests in {len(rnd["parts"])} file(s) '
                f'(<= {s.max_requests} requests and {s.max_bytes} bytes each) under {wdir}')
    if rnd is not None:
        for part in rnd['parts']:
            if part['batch_id'] is None:
                summary.requests += part['requests']
            _submit(client, part, s, save)
        while True:
            for part in rnd['parts']:
                if part['imported']:
                    continue
                b = client.batches.retrieve(part['batch_id'])
                if b.status != part['status']:
                    part['status'] = b.status
                    save()
                if b.status not in TERMINAL:
                    continue
                base = Path(part['input']).name.replace('.input.jsonl', '')
                res = [p for p in (_download(client, b.output_file_id, wdir / f'{base}.output.jsonl'),
                                   _download(client, getattr(b, 'error_file_id', None), wdir / f'{base}.errors.jsonl')) if p]
                for path in res:
                    import_results(by_key, path, out_path, summary, done)
                part['imported'] = True
                save()
                log(f'{base}: batch {b.id} {b.status}; imported {len(res)} result file(s)')
            pending = [p for p in rnd['parts'] if not p['imported']]
            if not pending or not s.wait:
                break
            counts = ', '.join(f'{p["batch_id"]} {p["status"]}' for p in pending)
            log(f'waiting {s.poll_seconds:g} s for {len(pending)} batch(es): {counts}')
            time.sleep(s.poll_seconds)
        if any(not p['imported'] for p in rnd['parts']):
            summary.stopped = (f'{sum(not p["imported"] for p in rnd["parts"])} batch(es) still running '
                               f'(state in {spath})')
            summary.not_started = 0
    done = done_keys(out_path)
    summary.written = len(done & by_key.keys()) - summary.already_done
    for key in by_key.keys() - done:
        summary.failures.setdefault(key, 'no rationale yet (failed or expired request): rerun to resubmit it')
    if summary.stopped:
        summary.failures = {}
    summary.seconds = time.perf_counter() - t0
    return summary if summary.stopped else finish(summary, out_path, model=s.model, via='batch')
