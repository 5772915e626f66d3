"""A small, real OpenAI-compatible HTTP server on 127.0.0.1 that plays the LLM judge in tests.

It answers ``GET /v1/models`` and ``POST /v1/chat/completions`` like the OpenAI API, so the real ``openai``
client talks to it. Behaviour is scriptable (and can be changed while it runs: ``stub.mode = 'fail'``):

    ok            reply ``{"score": <score>}`` (default 0.9)
    fail          HTTP 500
    429           HTTP 429 with ``Retry-After: <retry_after>`` seconds
    401           HTTP 401 whose error message quotes the Authorization header (as careless servers do)
    500auth       HTTP 500 whose error message quotes the Authorization header
    content       reply ``{"score": t}``, t one of the six tiers chosen by a hash of the user message
                  (deterministic per request content, different across completions)
    garbage       reply text that is not JSON
    out_of_range  reply ``{"score": 1.7}``
    echo          reply content = the request's user message (a judge that parrots its input)
    hang          sleep ``hang`` seconds before answering (for client timeouts)
    think         a thinking model (Qwen3 served without thinking off): the reply is an unclosed ``<think>``
                  block filling ``max_tokens`` (finish_reason ``length``), no score. A request carrying
                  ``chat_template_kwargs: {"enable_thinking": false}`` gets the ``ok`` reply instead, unless
                  ``honor_thinking_off=False`` (a model that always thinks). ``reasoning_parser=True``: the
                  think text goes to ``message.reasoning_content`` and ``content`` is null, as vLLM's
                  ``--reasoning-parser`` returns it.
    empty         reply content ``""`` (finish_reason ``stop``)

``reject_kwargs=True``: a request carrying ``chat_template_kwargs`` gets HTTP 400 "Unrecognized request argument
supplied: chat_template_kwargs" (what OpenAI's own API answers). ``ok_first=N``: the first N chat requests
answered get the ``ok`` reply whatever the mode (a judge that goes off after the start-up check).

``dialects`` (default all): the ``response_format`` types the stub accepts (``json_schema``, ``json_object``,
``none`` = no response_format); any other gets HTTP 500 with a validation error naming ``response_format``, as
llama-cpp-python's server answers ``json_schema``. ``latency`` seconds are added before every answer; ``fail_first=N`` answers the first N chat requests with
500 before following ``mode``. Every chat request body is recorded in ``stub.requests`` (parsed JSON).

In-process::

    with JudgeStub(mode='ok', latency=0.3) as stub:
        client = openai.OpenAI(base_url=stub.base_url, api_key='x')
        ...
        len(stub.requests)
    # after the block (or stub.stop()) the port refuses connections: the "down" judge.

As a process (for end-to-end runs that kill it mid-run)::

    python -m testsupport.judge_stub --port 8011 --mode ok --latency 0.3
    # prints "judge stub listening on http://127.0.0.1:8011/v1" once ready; SIGTERM/SIGINT stop it.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, List, Optional

MODES = ('ok', 'fail', '429', '401', '500auth', 'garbage', 'out_of_range', 'echo', 'hang', 'content', 'think',
         'empty')
THINK_TEXT = 'Okay, let me look at the candidate. The user asked for the weather, so first I should check '
DIALECTS = ('json_schema', 'json_object', 'none')
TIERS = (0.0, 0.25, 0.5, 0.75, 0.9, 1.0)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256  # 64+ simultaneous connects must not overflow the listen backlog


class _Handler(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.0'  # one request per connection: a stopped stub truly refuses
    stub: 'JudgeStub'

    def log_message(self, fmt, *args):  # quiet
        pass

    def _send(self, status: int, payload: Any, headers: Optional[dict] = None) -> None:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def do_GET(self):
        s = self.stub
        if self.path.rstrip('/') in ('/v1/models', '/models'):
            s.model_requests += 1
            return self._send(200, {'object': 'list', 'data': [
                {'id': s.model, 'object': 'model', 'created': 0, 'owned_by': 'judge-stub'}]})
        self._send(404, {'error': {'message': f'no route {self.path}', 'type': 'not_found'}})

    def do_POST(self):
        s = self.stub
        if self.path.rstrip('/') not in ('/v1/chat/completions', '/chat/completions'):
            return self._send(404, {'error': {'message': f'no route {self.path}', 'type': 'not_found'}})
        raw = self.rfile.read(int(self.headers.get('Content-Length') or 0))
        try:
            body = json.loads(raw)
        except json.JSONDecodeError:
            return self._send(400, {'error': {'message': 'invalid JSON body', 'type': 'invalid_request_error'}})
        with s._lock:
            s.requests.append(body)
            s.request_headers.append({k.lower(): v for k, v in self.headers.items()})
            n = len(s.requests)
        mode = s.mode
        if s.latency:
            time.sleep(s.latency)
        ctk = body.get('chat_template_kwargs')
        if ctk is not None and s.reject_kwargs:
            return self._send(400, {'error': {'message': 'Unrecognized request argument supplied: chat_template_kwargs',
                                              'type': 'invalid_request_error', 'param': None, 'code': None}})
        rf = body.get('response_format')
        kind = rf.get('type') if isinstance(rf, dict) else 'none'
        if kind not in s.dialects:
            return self._send(500, {'error': {'message': f"1 validation error: ('body', 'response_format', 'type') "
                                                         f"Input should be {' or '.join(s.dialects)}, got {kind!r}",
                                              'type': 'internal_server_error'}})
        with s._lock:
            s.answered += 1
            if s.answered <= s.ok_first:
                mode = 'ok'
        if n <= s.fail_first or mode == 'fail':
            return self._send(500, {'error': {'message': 'stub: internal error', 'type': 'server_error'}})
        if mode == '429':
            return self._send(429, {'error': {'message': 'stub: rate limited', 'type': 'rate_limit'}},
                              {'Retry-After': str(s.retry_after)})
        if mode in ('401', '500auth'):
            auth = self.headers.get('Authorization', '')
            return self._send(401 if mode == '401' else 500,
                              {'error': {'message': f'stub: invalid key in {auth!r}', 'type': 'auth'}})
        if mode == 'hang':
            time.sleep(s.hang)
        finish, reasoning = 'stop', None
        thinking_off = isinstance(ctk, dict) and ctk.get('enable_thinking') is False
        if mode == 'think' and not (thinking_off and s.honor_thinking_off):
            budget = int(body.get('max_tokens') or body.get('max_completion_tokens') or 256)
            think = (THINK_TEXT * (1 + budget * 4 // len(THINK_TEXT)))[:budget * 4]  # ~4 characters a token
            finish = 'length'
            if s.reasoning_parser:
                content, reasoning = None, think
            else:
                content = '<think>\n' + think
        elif mode == 'think':
            content = json.dumps({'score': s.score})
        elif mode == 'empty':
            content = ''
        elif s.reply is not None:
            content = s.reply(body)
        elif mode == 'garbage':
            content = 'The candidate seems fine, I would say about eight out of ten.'
        elif mode == 'out_of_range':
            content = '{"score": 1.7}'
        elif mode == 'content':
            users = [str(m.get('content', '')) for m in body.get('messages', []) if m.get('role') == 'user']
            digest = hashlib.sha256(''.join(users).encode()).digest()
            content = json.dumps({'score': TIERS[digest[0] % len(TIERS)]})
        elif mode == 'echo':
            users = [m.get('content', '') for m in body.get('messages', []) if m.get('role') == 'user']
            content = users[-1] if users else json.dumps(body)
        else:
            content = json.dumps({'score': s.score})
        prompt_tokens = sum(len(str(m.get('content', ''))) // 4 for m in body.get('messages', []))
        completion_tokens = max(1, len(content or reasoning or '') // 4)
        message = {'role': 'assistant', 'content': content}
        if reasoning is not None:
            message['reasoning_content'] = reasoning
        self._send(200, {
            'id': f'chatcmpl-stub-{n}', 'object': 'chat.completion', 'created': int(time.time()),
            'model': body.get('model', s.model),
            'choices': [{'index': 0, 'message': message, 'finish_reason': finish, 'logprobs': None}],
            'usage': {'prompt_tokens': prompt_tokens, 'completion_tokens': completion_tokens,
                      'total_tokens': prompt_tokens + completion_tokens},
        })


class JudgeStub:
    """The stub server, in a background thread. See the module docstring."""

    def __init__(self, mode: str = 'ok', latency: float = 0.0, score: float = 0.9, port: int = 0,
                 retry_after: float = 1, fail_first: int = 0, hang: float = 30.0, model: str = 'judge-stub',
                 reply: Optional[Callable[[dict], str]] = None, dialects=DIALECTS, reject_kwargs: bool = False,
                 honor_thinking_off: bool = True, reasoning_parser: bool = False, ok_first: int = 0):
        if mode not in MODES:
            raise ValueError(f'judge stub: unknown mode {mode!r} (modes: {", ".join(MODES)})')
        self.dialects = tuple(dialects)
        self.mode, self.latency, self.score, self.retry_after = mode, latency, score, retry_after
        self.fail_first, self.hang, self.model, self.reply = fail_first, hang, model, reply
        self.reject_kwargs, self.honor_thinking_off = reject_kwargs, honor_thinking_off
        self.reasoning_parser, self.ok_first = reasoning_parser, ok_first
        self.answered = 0  # chat requests past the kwarg / dialect checks (what ok_first counts)
        self.requests: List[dict] = []
        self.request_headers: List[dict] = []  # lower-case header names
        self.model_requests = 0
        self._lock = threading.Lock()
        handler = type('Handler', (_Handler,), {'stub': self})
        self._server = _Server(('127.0.0.1', port), handler)
        self.port = self._server.server_address[1]
        self._thread: Optional[threading.Thread] = None

    @property
    def base_url(self) -> str:
        return f'http://127.0.0.1:{self.port}/v1'

    def start(self) -> 'JudgeStub':
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={'poll_interval': 0.05},
                                        daemon=True, name=f'judge-stub-{self.port}')
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket: later connections are refused (the 'down' judge)."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> 'JudgeStub':
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(prog='python -m testsupport.judge_stub', description=__doc__.split('\n')[0])
    p.add_argument('--port', type=int, default=0, help='0 = any free port (printed)')
    p.add_argument('--mode', choices=MODES, default='ok')
    p.add_argument('--latency', type=float, default=0.0)
    p.add_argument('--score', type=float, default=0.9)
    p.add_argument('--retry-after', type=float, default=1)
    p.add_argument('--fail-first', type=int, default=0)
    p.add_argument('--model', default='judge-stub')
    p.add_argument('--dialects', default=','.join(DIALECTS), help='accepted response_format types')
    p.add_argument('--reject-kwargs', action='store_true', help='HTTP 400 on chat_template_kwargs')
    p.add_argument('--always-think', action='store_true', help='mode think ignores enable_thinking: false')
    p.add_argument('--reasoning-parser', action='store_true', help='think text in reasoning_content')
    p.add_argument('--ok-first', type=int, default=0, help='the first N answered requests get the ok reply')
    a = p.parse_args(argv)
    stub = JudgeStub(mode=a.mode, latency=a.latency, score=a.score, port=a.port, retry_after=a.retry_after,
                     fail_first=a.fail_first, model=a.model, dialects=a.dialects.split(','),
                     reject_kwargs=a.reject_kwargs, honor_thinking_off=not a.always_think,
                     reasoning_parser=a.reasoning_parser, ok_first=a.ok_first)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stub.start()
    print(f'judge stub listening on {stub.base_url} (mode={a.mode}, latency={a.latency}s, model={a.model})',
          flush=True)
    stop.wait()
    stub.stop()
    print(f'judge stub stopped after {len(stub.requests)} chat requests', flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
