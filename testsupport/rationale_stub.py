"""An OpenAI-compatible server on 127.0.0.1 (aiohttp, its own thread) that writes rationales the way
``data_prep rationales`` asks for them: ``/v1/chat/completions`` and the Batch API's ``/v1/files`` and
``/v1/batches``; used by tests/test_data_prep_rationales.py and ``python -m benchmarks.bench_data_prep``.

Error behaviours, as the OpenAI API sends them: a 429 rate limit with a ``Retry-After`` header, 401 / 403 /
404, a 429 ``insufficient_quota`` (a quota error has the same status as a rate limit; only the body's code
tells them apart)."""
from __future__ import annotations

import asyncio
import json
import threading
import time

from aiohttp import web

from testsupport.aiohttp_thread import ThreadedApp

ACTION_HEAD, ACTION_TAIL = '## Correct next action\n', '\n\nWrite the reasoning.'


def stub_rationale(target: str) -> str:
    return f'I act because the context asks for: {target}'


class RationaleStub:
    """OpenAI-compatible `/v1/chat/completions` that returns a rationale text derived from the request's
    target action (so the test can check each row got its own answer), after `latency` seconds.
    `fail_every=k`: the first attempt of every k-th distinct prompt gets HTTP 500 (a transient failure); `fail_if=s`: requests whose prompt contains s always
    get 500; `empty_if=s`: an empty reply. Counts requests and the peak number in flight."""

    ERRORS = {401: ('Incorrect API key provided', 'invalid_request_error', 'invalid_api_key'),
              403: ('You are not allowed to use this model', 'invalid_request_error', 'model_not_allowed'),
              404: ('The model `m` does not exist or you do not have access to it', 'invalid_request_error',
                    'model_not_found'),
              'quota': ('You exceeded your current quota, please check your plan and billing details.',
                        'insufficient_quota', 'insufficient_quota')}

    def __init__(self, latency=0.0, fail_every=0, fail_if=None, empty_if=None, rate_limit_first=0, retry_after=1.0,
                 error_after=None, error=None, batch_polls=2, batch_fail_if=None, batch_max_requests=None,
                 batch_max_bytes=None):
        """`rate_limit_first=n`: the first n chat requests get 429 with `Retry-After: retry_after`;
        `error_after=n, error=E` (E in ERRORS: 401, 403, 404, 'quota'): after n answered requests every request
        gets that error. Batches: `batch_polls` retrieves before a batch completes, `batch_fail_if=s`: its
        requests whose prompt contains s fail (they go to the error file); `batch_max_*`: files over these
        limits are refused (400), as the API refuses them."""
        self.latency, self.fail_every, self.fail_if, self.empty_if = latency, fail_every, fail_if, empty_if
        self.rate_limit_first, self.retry_after = rate_limit_first, retry_after
        self.error_after, self.error = error_after, error
        self.batch_polls, self.batch_fail_if = batch_polls, batch_fail_if
        self.batch_max_requests, self.batch_max_bytes = batch_max_requests, batch_max_bytes
        self.answered = self.tokens_in = self.tokens_out = 0
        self.arrivals = []                    # (monotonic time, prompt, HTTP status) per chat request
        self.files, self.batches = {}, {}     # id -> {'bytes', 'purpose', ...}; id -> batch dict
        self.batch_creates = 0
        self.requests = 0
        self.seen, self.transient = {}, []   # prompt -> arrival rank; prompts that got a transient 500
        self.inflight = self.max_inflight = 0
        self._lock = threading.Lock()

    async def _chat(self, request):
        body = await request.json()
        with self._lock:
            self.requests += 1
            n = self.requests
            self.inflight += 1
            self.max_inflight = max(self.max_inflight, self.inflight)
        try:
            await asyncio.sleep(self.latency)
            user = body['messages'][-1]['content']
            early = self._early_error(n)
            if early is not None:
                self.arrivals.append((time.monotonic(), user, early.status))
                return early
            self.arrivals.append((time.monotonic(), user, 200))
            with self._lock:
                first = user not in self.seen
                rank = self.seen.setdefault(user, len(self.seen) + 1)
                transient = bool(self.fail_every and first and rank % self.fail_every == 0)
                if transient:
                    self.transient.append(user)
            if transient or (self.fail_if and self.fail_if in user):
                return web.json_response({'error': {'message': 'stub failure', 'type': 'server_error'}}, status=500)
            with self._lock:
                self.answered += 1
            return web.json_response(self.completion(body, n))
        finally:
            with self._lock:
                self.inflight -= 1

    def completion(self, body: dict, n) -> dict:
        """A chat.completion for `body`; usage: ~4 characters per token of the request and the reply."""
        user = body['messages'][-1]['content']
        target = user.split(ACTION_HEAD, 1)[1].split(ACTION_TAIL, 1)[0]
        content = '' if self.empty_if and self.empty_if in user else f'<think>{stub_rationale(target)}</think>'
        pin = sum(len(m['content']) for m in body['messages']) // 4 + 1
        pout = len(content) // 4 + 1
        with self._lock:
            self.tokens_in += pin
            self.tokens_out += pout
        return {'id': f'chatcmpl-{n}', 'object': 'chat.completion', 'created': 0, 'model': body['model'],
                'choices': [{'index': 0, 'finish_reason': 'stop', 'message': {'role': 'assistant', 'content': content}}],
                'usage': {'prompt_tokens': pin, 'completion_tokens': pout, 'total_tokens': pin + pout}}

    def _error(self, status: int, kind) -> web.Response:
        msg, typ, code = self.ERRORS[kind]
        return web.json_response({'error': {'message': msg, 'type': typ, 'code': code, 'param': None}}, status=status)

    def _early_error(self, n: int):
        if n <= self.rate_limit_first:
            return web.json_response({'error': {'message': 'Rate limit reached for requests', 'type': 'requests',
                                                'code': 'rate_limit_exceeded', 'param': None}}, status=429,
                                     headers={'Retry-After': str(self.retry_after)})
        if self.error is not None and self.answered >= (self.error_after or 0):
            return self._error(429 if self.error == 'quota' else self.error, self.error)
        return None

    # ------------------------------------------------------------------ Batch API: /v1/files, /v1/batches
    async def _files_create(self, request):
        form = await request.post()
        data = form['file'].file.read()
        lines = [x for x in data.splitlines() if x.strip()]
        if self.batch_max_requests and len(lines) > self.batch_max_requests or \
                self.batch_max_bytes and len(data) > self.batch_max_bytes:
            return web.json_response({'error': {'message': f'file over the limits: {len(lines)} requests, '
                                                           f'{len(data)} bytes', 'type': 'invalid_request_error'}},
                                     status=400)
        fid = f'file-{len(self.files)}'
        self.files[fid] = {'data': data, 'purpose': form['purpose'], 'filename': form['file'].filename}
        return web.json_response(self._file_obj(fid))

    def _file_obj(self, fid):
        f = self.files[fid]
        return {'id': fid, 'object': 'file', 'bytes': len(f['data']), 'created_at': 0, 'filename': f['filename'],
                'purpose': f['purpose'], 'status': 'processed'}

    async def _files_content(self, request):
        fid = request.match_info['fid']
        if fid not in self.files:
            return self._error(404, 404)
        return web.Response(body=self.files[fid]['data'], content_type='application/octet-stream')

    async def _batches_create(self, request):
        body = await request.json()
        if body.get('input_file_id') not in self.files or body.get('endpoint') != '/v1/chat/completions':
            return web.json_response({'error': {'message': 'bad input_file_id or endpoint',
                                                'type': 'invalid_request_error'}}, status=400)
        bid = f'batch_{len(self.batches)}'
        self.batch_creates += 1
        self.batches[bid] = {'id': bid, 'object': 'batch', 'endpoint': body['endpoint'], 'errors': None,
                             'input_file_id': body['input_file_id'], 'completion_window': body['completion_window'],
                             'status': 'validating', 'output_file_id': None, 'error_file_id': None, 'created_at': 0,
                             'metadata': body.get('metadata'), 'polls': 0,
                             'request_counts': {'total': 0, 'completed': 0, 'failed': 0}}
        return web.json_response(self._batch_obj(bid))

    def _batch_obj(self, bid):
        return {k: v for k, v in self.batches[bid].items() if k != 'polls'}

    def _run_batch(self, b):
        ok, bad = [], []
        for i, line in enumerate(self.files[b['input_file_id']]['data'].splitlines()):
            req = json.loads(line)
            user = req['body']['messages'][-1]['content']
            if self.batch_fail_if and self.batch_fail_if in user:
                bad.append({'id': f'batch_req_{i}', 'custom_id': req['custom_id'], 'response': None,
                            'error': {'code': 'server_error', 'message': 'stub batch failure'}})
                continue
            ok.append({'id': f'batch_req_{i}', 'custom_id': req['custom_id'], 'error': None,
                       'response': {'status_code': 200, 'request_id': f'req_{i}', 'body': self.completion(req['body'], i)}})
        for kind, recs in (('output_file_id', ok), ('error_file_id', bad)):
            if recs:
                fid = f'file-{len(self.files)}'
                self.files[fid] = {'data': ''.join(json.dumps(r) + '\n' for r in recs).encode(),
                                   'purpose': 'batch_output', 'filename': f'{b["id"]}_{kind}.jsonl'}
                b[kind] = fid
        b['request_counts'] = {'total': len(ok) + len(bad), 'completed': len(ok), 'failed': len(bad)}

    async def _batches_retrieve(self, request):
        bid = request.match_info['bid']
        if bid not in self.batches:
            return self._error(404, 404)
        b = self.batches[bid]
        b['polls'] += 1
        if b['status'] not in ('completed',):
            b['status'] = 'in_progress' if b['polls'] < self.batch_polls else 'completed'
            if b['status'] == 'completed':
                self._run_batch(b)
        return web.json_response(self._batch_obj(bid))

    async def _batches_list(self, request):
        data = [self._batch_obj(b) for b in reversed(list(self.batches))]
        return web.json_response({'object': 'list', 'data': data, 'has_more': False,
                                  'first_id': data[0]['id'] if data else None, 'last_id': data[-1]['id'] if data else None})

    def _routes(self, app: web.Application) -> None:
        app.router.add_post('/v1/chat/completions', self._chat)
        app.router.add_post('/v1/files', self._files_create)
        app.router.add_get('/v1/files/{fid}/content', self._files_content)
        app.router.add_post('/v1/batches', self._batches_create)
        app.router.add_get('/v1/batches', self._batches_list)
        app.router.add_get('/v1/batches/{bid}', self._batches_retrieve)

    def __enter__(self):
        self._server = ThreadedApp(self._routes).__enter__()
        self.port = self._server.port
        self.base_url = f'{self._server.base_url}/v1'
        return self

    def __exit__(self, *exc):
        self._server.__exit__(*exc)
