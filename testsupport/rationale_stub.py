"""An OpenAI-compatible ``/v1/chat/completions`` server on 127.0.0.1 (aiohttp, its own thread) that writes
rationales the way ``data_prep rationales`` asks for them: used by tests/test_data_prep_rationales.py and
``python -m benchmarks.bench_data_prep``."""
from __future__ import annotations

import asyncio
import threading

from aiohttp import web

ACTION_HEAD, ACTION_TAIL = '## Correct next action\n', '\n\nWrite the reasoning.'


def stub_rationale(target: str) -> str:
    return f'I act because the context asks for: {target}'


class RationaleStub:
    """OpenAI-compatible `/v1/chat/completions` that returns a rationale text derived from the request's
    target action (so the test can check each row got its own answer), after `latency` seconds.
    `fail_every=k`: the first attempt of every k-th distinct prompt gets HTTP 500 (a transient failure); `fail_if=s`: requests whose prompt contains s always
    get 500; `empty_if=s`: an empty reply. Counts requests and the peak number in flight."""

    def __init__(self, latency=0.0, fail_every=0, fail_if=None, empty_if=None):
        self.latency, self.fail_every, self.fail_if, self.empty_if = latency, fail_every, fail_if, empty_if
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
            with self._lock:
                first = user not in self.seen
                rank = self.seen.setdefault(user, len(self.seen) + 1)
                transient = bool(self.fail_every and first and rank % self.fail_every == 0)
                if transient:
                    self.transient.append(user)
            if transient or (self.fail_if and self.fail_if in user):
                return web.json_response({'error': {'message': 'stub failure', 'type': 'server_error'}}, status=500)
            target = user.split(ACTION_HEAD, 1)[1].split(ACTION_TAIL, 1)[0]
            content = '' if self.empty_if and self.empty_if in user else f'<think>{stub_rationale(target)}</think>'
            return web.json_response({
                'id': f'chatcmpl-{n}', 'object': 'chat.completion', 'created': 0, 'model': body['model'],
                'choices': [{'index': 0, 'finish_reason': 'stop',
                             'message': {'role': 'assistant', 'content': content}}],
                'usage': {'prompt_tokens': 1, 'completion_tokens': 1, 'total_tokens': 2}})
        finally:
            with self._lock:
                self.inflight -= 1

    def __enter__(self):
        ready = threading.Event()

        def serve():
            self.loop = asyncio.new_event_loop()
            app = web.Application()
            app.router.add_post('/v1/chat/completions', self._chat)
            self.runner = web.AppRunner(app)
            self.loop.run_until_complete(self.runner.setup())
            site = web.TCPSite(self.runner, '127.0.0.1', 0)
            self.loop.run_until_complete(site.start())
            self.port = site._server.sockets[0].getsockname()[1]
            ready.set()
            self.loop.run_forever()
            self.loop.run_until_complete(self.runner.cleanup())
            self.loop.close()

        self.thread = threading.Thread(target=serve, daemon=True)
        self.thread.start()
        assert ready.wait(10)
        self.base_url = f'http://127.0.0.1:{self.port}/v1'
        return self

    def __exit__(self, *exc):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
