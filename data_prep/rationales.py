"""Reference rationales (paper Sec. 4.1: GPT-4o / GLM-4.6 write a short reasoning per instance).

Pure parts: the request a teacher model gets for one instance, the reply -> rationale rule, the OpenAI
Batch API line formats. Glue: `run` sends the requests with any OpenAI-compatible server through
`openai.AsyncOpenAI`, `concurrency` at a time, appends every finished row to the output at once (so a
killed run resumes with nothing lost or duplicated, rows keyed by (source, dialogue_id, step)), lets the
SDK retry what waiting can fix (its `max_retries`, honouring Retry-After), stops the whole run on what it
cannot (401/403/404, quota/billing 429), keeps a token rate and a cost ceiling (`data_prep.usage`), and
reports failed rows instead of writing empty rationales. The Batch API path: `data_prep.rationale_batch`.
"""
from __future__ import annotations

import asyncio
import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from tqdm import tqdm

from .dialogue import row_key
from .manifest import count_lines, remove_manifest, write_manifest
from .schema import validate_row

SYSTEM_PROMPT = (
    'You write the reasoning a careful tool-using assistant would think before its next action. '
    'You are shown the available tools, the conversation so far and the correct next action. '
    'In 2-4 sentences explain why this action is right: what the user needs at this point, which tool '
    '(if any) serves it and why the others do not, and where each argument value comes from in the '
    'conversation (quote the words or tool results it is taken from). If the action is a text answer '
    'without a call, say why no call is needed or possible. Write in the first person, as thinking, '
    'without repeating the call syntax and without tags. Output only the reasoning.')
_THINK_TAGS = re.compile(r'</?think>', re.I)


def _tool_line(tool: dict) -> str:
    fn = tool['function']
    props = fn['parameters'].get('properties', {})
    req = set(fn['parameters'].get('required', []))
    params = ', '.join(f'{p}{"" if p in req else "?"}: {spec.get("type", "any") if isinstance(spec, dict) else "any"}'
                       for p, spec in props.items())
    return f'- {fn["name"]}({params}): {fn["description"]}'


def _turn_line(msg: dict) -> str:
    label = {'system': 'SYSTEM', 'user': 'USER', 'assistant': 'ASSISTANT', 'tool_call': 'ASSISTANT CALL',
             'tool_response': 'TOOL RESULT'}[msg['role']]
    return f'[{label}] {msg["content"]}'


def target_text(row: dict) -> str:
    calls = json.loads(row['ground_truth'])
    if calls:
        return '\n'.join('CALL ' + json.dumps(c, ensure_ascii=False) for c in calls)
    answer = row.get('reference_answer') or ''
    return f'TEXT ANSWER (no call): {answer}' if answer else 'TEXT ANSWER (no call)'


def request_messages(row: dict) -> list[dict]:
    """The chat request for one instance: tools, context turns, the target action."""
    tools = '\n'.join(_tool_line(t) for t in json.loads(row['tools'])) or '(none)'
    context = '\n'.join(_turn_line(m) for m in row['messages'])
    user = (f'## Tools\n{tools}\n\n## Conversation so far\n{context}\n\n'
            f'## Correct next action\n{target_text(row)}\n\nWrite the reasoning.')
    return [{'role': 'system', 'content': SYSTEM_PROMPT}, {'role': 'user', 'content': user}]


def clean_rationale(text: str | None) -> str:
    """Reply -> rationale: `<think>` tags dropped, whitespace trimmed. Empty means failure."""
    return _THINK_TAGS.sub('', text or '').strip()


def custom_id(row: dict) -> str:
    return json.dumps(list(row_key(row)), ensure_ascii=False)


def key_of_custom_id(cid: str) -> tuple[str, str, int]:
    source, did, step = json.loads(cid)
    return (source, str(did), int(step))


def batch_request(row: dict, model: str, max_tokens: int, temperature: float) -> dict:
    """One line of an OpenAI Batch API input file (endpoint /v1/chat/completions)."""
    return {'custom_id': custom_id(row), 'method': 'POST', 'url': '/v1/chat/completions',
            'body': {'model': model, 'messages': request_messages(row), 'max_tokens': max_tokens,
                     'temperature': temperature}}


def batch_result(line: dict) -> tuple[tuple, str | None, str | None]:
    """One line of a Batch API output file -> (key, rationale or None, error or None)."""
    key = key_of_custom_id(line['custom_id'])
    if line.get('error'):
        return key, None, json.dumps(line['error'])
    resp = line.get('response') or {}
    if resp.get('status_code') != 200:
        return key, None, f'status {resp.get("status_code")}: {json.dumps(resp.get("body"))[:200]}'
    try:
        text = resp['body']['choices'][0]['message']['content']
    except (KeyError, IndexError, TypeError):
        return key, None, 'no choices[0].message.content in response body'
    text = clean_rationale(text)
    return (key, text, None) if text else (key, None, 'empty rationale')


# ------------------------------------------------------------------------------ append-only output

def read_rows(path: str | Path) -> list[dict]:
    rows = []
    with open(path, encoding='utf-8') as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except (ValueError, RecursionError) as exc:
                    raise ValueError(f'{path} line {n}: not JSON ({str(exc)[:200]})') from None
    return rows


@dataclass
class InputRows:
    """The rows of an input file that can be sent, and a report line per row that cannot."""
    rows: list
    bad: list   # 'PATH line N: why (naming the field)'


def read_input(path: str | Path, limit: int | None = None) -> InputRows:
    """Every input line checked before any request is paid for: JSON, the row contract (`schema.validate_row`,
    the message names the field) and a key seen once. Bad lines are reported and left out; the rest are kept.
    `limit`: only the first N good rows."""
    rows, bad, first_line = [], [], {}
    with open(path, encoding='utf-8') as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except (ValueError, RecursionError) as exc:
                bad.append(f'{path} line {n}: not JSON ({str(exc)[:200]})')
                continue
            why = row_problem(row)
            if why is None and row_key(row) in first_line:
                why = f'row {row_key(row)} already at line {first_line[row_key(row)]}'
            if why is not None:
                bad.append(f'{path} line {n}: {why}')
                continue
            first_line[row_key(row)] = n
            rows.append(row)
    return InputRows(rows[:limit] if limit else rows, bad)


def row_problem(row) -> str | None:
    """Why `row` cannot be sent (the row contract's message names the field), or None."""
    try:
        if not isinstance(row, dict):
            return f'a row is a JSON object, not {type(row).__name__}'
        validate_row(row)
        row_key(row)
    except RecursionError:
        return 'nested too deep'
    except (ValueError, TypeError, KeyError) as exc:
        return str(exc)[:300]
    return None


def unique_rows(rows: Iterable[dict], where: str) -> list[dict]:
    seen, out = set(), []
    for row in rows:
        k = row_key(row)
        if k in seen:
            raise ValueError(f'{where}: row {k} appears twice')
        seen.add(k)
        out.append(row)
    return out


def done_keys(out_path: str | Path) -> set:
    """Keys already in the output. A last line cut by a kill (no newline / not JSON) is removed first."""
    path = Path(out_path)
    if not path.exists():
        return set()
    data = path.read_bytes()
    cut = data.rfind(b'\n') + 1
    if cut < len(data):
        with open(path, 'r+b') as f:  # drop the partial tail line written when the process was killed
            f.truncate(cut)
    keys = set()
    for n, line in enumerate(data[:cut].decode('utf-8').splitlines(), 1):
        if line.strip():
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f'{path} line {n} is not JSON ({exc}); fix or remove it') from None
            if not row.get('reference_rationale'):
                raise ValueError(f'{path} line {n}: empty reference_rationale')
            keys.add(row_key(row))
    return keys


class Appender:
    """Appends finished rows, one flushed line each: what is on disk is always whole rows."""

    def __init__(self, path: str | Path):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.f = open(path, 'a', encoding='utf-8')

    def write(self, row: dict) -> None:
        validate_row(row)
        self.f.write(json.dumps(row, ensure_ascii=False) + '\n')
        self.f.flush()

    def close(self) -> None:
        self.f.close()


@dataclass
class Summary:
    total: int = 0
    already_done: int = 0
    written: int = 0
    requests: int = 0
    failures: dict = field(default_factory=dict)   # key -> last error
    seconds: float = 0.0
    bad_input: list = field(default_factory=list)  # input lines not sent (`read_input`)
    manifest: str | None = None                    # written when every input row is in the output
    usage: object = None                           # usage.Usage: tokens and $ the server reported
    stopped: str | None = None                     # why the run stopped early (fatal error, cost ceiling)
    not_started: int = 0                           # rows left unsent when it stopped

    def text(self, out: str) -> str:
        lines = [f'rows in input: {self.total}; already in {out}: {self.already_done}; written now: {self.written}; '
                 f'failed: {len(self.failures)}; requests sent: {self.requests}; {self.seconds:.1f} s'
                 + (f' ({self.written / self.seconds:.2f} rows/s)' if self.seconds > 0 and self.written else '')]
        for key, err in list(self.failures.items())[:10]:
            lines.append(f'  FAILED {key}: {err}')
        if len(self.failures) > 10:
            lines.append(f'  ... and {len(self.failures) - 10} more')
        if self.failures:
            lines.append('failed rows are not written; run the same command again to retry them')
        if self.bad_input:
            lines.append(f'skipped {len(self.bad_input)} invalid input rows (no request sent):')
            lines += [f'  {b}' for b in self.bad_input[:10]]
            if len(self.bad_input) > 10:
                lines.append(f'  ... and {len(self.bad_input) - 10} more')
        if self.usage is not None and self.usage.requests:
            lines.append(self.usage.text())
        if self.stopped:
            lines.append(f'STOPPED: {self.stopped}' + (f'; {self.not_started} rows not sent' if self.not_started else '')
                         + '. What was written is kept; run the same command again to continue')
        lines.append(f'complete: manifest {self.manifest}' if self.manifest else
                     f'not complete: no manifest beside {out} (rerun to finish)')
        return '\n'.join(lines)


def finish(summary: Summary, out_path: str, **meta) -> Summary:
    """Mark `out_path` complete (`manifest.write_manifest`, written last) when no row failed."""
    if not summary.failures and Path(out_path).exists():
        summary.manifest = write_manifest(out_path, count_lines(out_path), skipped_input=len(summary.bad_input),
                                          **meta)
    return summary


# ------------------------------------------------------------------------------ live requests

# Errors that retrying cannot fix: the run stops at the first one (rows written so far stay; rerun resumes).
# 401 bad key, 403 no access, 404 unknown model or URL, and a 429 whose code says the quota or the billing
# limit is used up (an ordinary 429 is a rate limit: the SDK waits its Retry-After and retries it).
FATAL_STATUS = {401: 'the API key was refused (401)', 403: 'access denied (403)',
                404: 'not found (404): check --model and --base-url'}
QUOTA_CODES = ('insufficient_quota', 'billing_hard_limit_reached', 'billing_not_active', 'quota_exceeded')


def fatal_reason(exc: BaseException) -> str | None:
    """Why `exc` should stop the whole run, or None if it is a failure of this row only."""
    status = getattr(exc, 'status_code', None)
    if status in FATAL_STATUS:
        return f'{FATAL_STATUS[status]}: {str(exc)[:300]}'
    if status == 429 and _is_quota(exc):
        return f'quota or billing limit reached (429 {getattr(exc, "code", None) or "quota"}): {str(exc)[:300]}'
    return None


def _is_quota(exc) -> bool:
    code = str(getattr(exc, 'code', None) or '')
    body = getattr(exc, 'body', None)
    text = json.dumps(body) if isinstance(body, (dict, list)) else str(body or '')
    return any(c in code or c in text for c in QUOTA_CODES) or 'billing' in text.lower()


async def _no_retry_on_quota(response) -> None:
    """httpx response hook: a 429 that is a quota / billing error gets `x-should-retry: false`, the header the
    openai SDK obeys, so the SDK does not retry what no wait can fix (it retries every other 429)."""
    if response.status_code == 429:
        body = await response.aread()
        if any(c.encode() in body for c in QUOTA_CODES) or b'billing' in body.lower():
            response.headers['x-should-retry'] = 'false'


@dataclass
class Limits:
    """Per-run limits of the live path: tokens per minute, a cost ceiling (needs a price)."""
    tpm: float | None = None
    max_cost: float | None = None
    price: object = None        # usage.Price or None


async def _one(client, row: dict, model: str, max_tokens: int, temperature: float,
               summary: Summary) -> tuple[str | None, str | None]:
    """One request (the SDK retries 408/409/429/5xx and connection errors itself, honouring Retry-After:
    no second retry loop here). Returns (rationale, None) or (None, error); fatal errors propagate."""
    summary.requests += 1
    try:
        resp = await client.chat.completions.create(model=model, messages=request_messages(row),
                                                    max_tokens=max_tokens, temperature=temperature)
    except Exception as exc:  # openai.APIError, timeouts, connection errors after the SDK's retries
        if fatal_reason(exc):
            raise
        return None, f'{type(exc).__name__}: {str(exc)[:200]}'
    usage = getattr(resp, 'usage', None)
    summary.usage.add(getattr(usage, 'prompt_tokens', 0) or 0, getattr(usage, 'completion_tokens', 0) or 0)
    text = clean_rationale(resp.choices[0].message.content if resp.choices else None)
    return (text, None) if text else (None, 'empty rationale')


async def run(rows: list[dict], out_path: str, client, model: str, concurrency: int = 32,
              max_tokens: int = 256, temperature: float = 0.2, progress: bool = True,
              bad_input: Iterable[str] = (), limits: Limits | None = None) -> Summary:
    """Rationale for every row not yet in `out_path`; `concurrency` requests in flight at most, `limits.tpm`
    tokens per minute, no request that could take the run's cost past `limits.max_cost`. The output's
    manifest is removed first and written last, only when every row is done (`finish`). A fatal error
    (`fatal_reason`) or the cost ceiling stops the run cleanly: requests in flight finish and are written,
    no new ones start, the summary says why. `bad_input`: the lines `read_input` left out."""
    from .usage import Budget, TokenRate, Usage, estimate_tokens
    limits = limits or Limits()
    t0 = time.perf_counter()
    bad_input = list(bad_input)
    checked = [(i, r, row_problem(r)) for i, r in enumerate(rows)]  # before any request is paid for
    bad_input += [f'input row {i}: {why}' for i, _, why in checked if why is not None]
    rows = unique_rows([r for _, r, why in checked if why is None], 'input')
    remove_manifest(out_path)
    done = done_keys(out_path)
    todo = [r for r in rows if row_key(r) not in done]
    summary = Summary(total=len(rows), already_done=len(rows) - len(todo), bad_input=bad_input,
                      usage=Usage(price=limits.price))
    if limits.max_cost is not None and limits.price is None:
        raise ValueError(f'--max-cost needs a price for {model!r}: pass --price-in and --price-out (USD per 1M tokens)')
    budget = Budget(limits.max_cost, limits.price) if limits.max_cost is not None else None
    rate = TokenRate(limits.tpm) if limits.tpm else None
    queue: asyncio.Queue = asyncio.Queue()
    for r in todo:
        queue.put_nowait(r)
    out = Appender(out_path)
    bar = tqdm(total=len(rows), initial=summary.already_done, desc='rationales', unit='row', disable=not progress)

    async def worker():
        while summary.stopped is None:
            try:
                row = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            est = estimate_tokens(request_messages(row))
            held = None
            if budget is not None:
                held = budget.try_reserve(est, max_tokens)
                if held is None:
                    summary.stopped = (f'cost ceiling: ${budget.spent:.4f} spent, another request could cost up to '
                                       f'${budget.worst_case(est, max_tokens):.4f} and pass --max-cost {limits.max_cost:g}')
                    return
            if rate is not None:
                await rate.take(est + max_tokens)
            if summary.stopped is not None:
                if budget is not None:
                    budget.settle(held, 0, 0)
                return
            before = (summary.usage.tokens_in, summary.usage.tokens_out)
            try:
                text, error = await _one(client, row, model, max_tokens, temperature, summary)
            except Exception as exc:
                summary.stopped = summary.stopped or fatal_reason(exc)
                summary.failures[row_key(row)] = f'{type(exc).__name__}: {str(exc)[:200]}'
                return
            finally:
                if budget is not None:
                    budget.settle(held, summary.usage.tokens_in - before[0], summary.usage.tokens_out - before[1])
            if text is None:
                summary.failures[row_key(row)] = error
            else:
                out.write({**row, 'reference_rationale': text})
                summary.written += 1
                bar.update(1)

    try:
        await asyncio.gather(*(worker() for _ in range(max(1, min(concurrency, len(todo))))))
    finally:
        out.close()
        bar.close()
    summary.not_started = queue.qsize()
    summary.seconds = time.perf_counter() - t0
    if summary.stopped is not None:
        return summary
    return finish(summary, out_path, model=model)


def api_key(base_url: str | None, api_key_env: str) -> str:
    key = os.environ.get(api_key_env)
    if not key:
        if not base_url:
            raise ValueError(f'set ${api_key_env} (or pass --api-key-env NAME) to call the OpenAI API')
        key = 'EMPTY'  # local OpenAI-compatible servers usually ignore the key
    return key


def make_client(base_url: str | None, api_key_env: str, timeout: float, max_retries: int = 2):
    """`AsyncOpenAI` with the SDK's own retries (`max_retries`, exponential back-off or the server's
    Retry-After) except for quota / billing 429s (`_no_retry_on_quota`)."""
    from openai import AsyncOpenAI, DefaultAsyncHttpxClient
    key = api_key(base_url, api_key_env)
    http = DefaultAsyncHttpxClient(event_hooks={'response': [_no_retry_on_quota]})
    return AsyncOpenAI(base_url=base_url, api_key=key, timeout=timeout, max_retries=max_retries, http_client=http)


def import_results(by_key: dict, results_path: str | Path, out_path: str, summary: Summary, done: set) -> None:
    """Append the rationales of one Batch API result file (output or error file) for rows in `by_key` not yet
    in `done` (updated); failures are recorded in `summary`, the tokens billed in `summary.usage`."""
    out = Appender(out_path)
    try:
        for n, line in enumerate(read_rows(results_path), 1):
            try:
                key, text, error = batch_result(line)
            except (ValueError, KeyError, TypeError, AttributeError) as exc:  # not a Batch API output line
                summary.failures[f'{results_path} record {n}'] = f'unreadable result ({type(exc).__name__}: {exc})'
                continue
            usage = ((line.get('response') or {}).get('body') or {}).get('usage') if isinstance(line, dict) else None
            if summary.usage is not None and isinstance(usage, dict):
                summary.usage.add(usage.get('prompt_tokens') or 0, usage.get('completion_tokens') or 0)
            if key not in by_key:
                summary.failures[key] = 'custom_id not in the input rows'
                continue
            if key in done:
                continue
            if text is None:
                summary.failures[key] = error
                continue
            out.write({**by_key[key], 'reference_rationale': text})
            done.add(key)
            summary.failures.pop(key, None)
            summary.written += 1
    finally:
        out.close()


def import_batch(rows: list[dict], results_path: str | Path, out_path: str, bad_input: Iterable[str] = ()) -> Summary:
    """Attach Batch API results to their rows; append those not yet in `out_path`; report the rest.
    The manifest is written when every row has its rationale (`finish`)."""
    from .usage import Usage
    t0 = time.perf_counter()
    rows = unique_rows(rows, 'input')
    by_key = {row_key(r): r for r in rows}
    remove_manifest(out_path)
    done = done_keys(out_path)
    summary = Summary(total=len(rows), already_done=len(done & by_key.keys()), bad_input=list(bad_input),
                      usage=Usage())
    import_results(by_key, results_path, out_path, summary, done)
    for key in by_key.keys() - done - summary.failures.keys():
        summary.failures[key] = 'no result in the batch output'
    summary.seconds = time.perf_counter() - t0
    return finish(summary, out_path, results=Path(results_path).name)
