"""The HTTP judge backend: OpenAIJudge on any OpenAI-compatible endpoint, its request dialects, cache and breaker.

:class:`OpenAIJudge` talks to any OpenAI-compatible endpoint (vLLM serving Qwen3-235B-A22B in the paper) through
``openai.AsyncOpenAI``. The judge runs on an event loop of its own in a background thread
(``plugin/judge_runtime.py``: ``JudgeLoop``), so one client and its connections live for the whole run although
ms-swift runs async rewards under a fresh ``asyncio.run`` every step, and a batch can be left in flight
(``BaseJudge.submit``) while the trainer does the log-prob pass (issue 12). All samples of a call are judged
concurrently under a semaphore (``concurrency``), so a step costs about one round-trip. Each request has a
``timeout``; the whole call a ``batch_deadline``.

Structured output: ``guided_json`` names the request dialect (``json_schema``: OpenAI, vLLM, SGLang,
llama.cpp's C++ server; ``json_object`` + ``schema``: llama-cpp-python; ``none``); ``auto`` probes the server
once at start-up with a tiny request and, if the server later rejects the dialect, switches once with a
warning. The reply is parsed strictly whatever the dialect (``plugin/judge_prompt.py``).

Retries are the SDK's own (``max_retries``; it backs off on 408/409/429/5xx and honours ``Retry-After``) —
there is no second retry layer. A :class:`CircuitBreaker` opens after ``breaker_failures`` consecutive failed
requests and lets one probe through every ``breaker_cooldown`` seconds. Identical requests are judged once
(content-hash :class:`DiskCache` in memory, optionally appended to a JSONL file and reloaded by the next run).
``max_requests`` / ``max_total_tokens`` cap the run's cost; at the cap the judge stops calling, returns no
score and says so once.

Thinking off (issue 21): every request carries ``chat_template_kwargs: {"enable_thinking": false}`` (vLLM and
SGLang pass it to the chat template; ``judge.disable_thinking``), so a Qwen3 judge does not spend its 32 output
tokens in ``<think>`` whatever the server's default. A server that rejects the kwarg (OpenAI's API answers 400
"Unrecognized request argument") is asked again without it, and the run says so once. The start-up check
then sends one real judge prompt and parses its reply: a think block that ate the tokens, an empty reply or
an unparseable one fails the start with that reason. During the run a reply that is only thinking is
recorded as reason ``thinking``; the stop rule of ``plugin/judge_base.py`` ends a run whose judge stays off. The API key is read from the environment when the client is built and lives only in
that client; the loggers it can reach are redacted (``plugin/judge_runtime.py``).
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import openai

from plugin.config import DIALECTS, JudgeConfig
from plugin.judge_base import BaseJudge, JudgeSample, JudgeUnreachable, Verdict, judge_input
from plugin.judge_prompt import REPLY_SCHEMA, build_messages, cache_key, parse_reply
from plugin.judge_runtime import JudgeLoop, install_redaction, redact

logger = logging.getLogger('awpo.judge')

# Reasons a request counts against the circuit breaker (the endpoint, not the judge model, failed).
ENDPOINT_FAILURES = ('timeout', 'connection', 'rate_limited', 'http_5xx', 'http_4xx')

# ----------------------------------------------------------------------------------------- dialects
DIALECT_ORDER = ('json_schema', 'json_object', 'none')  # what ``auto`` tries, in this order
PROBE_MESSAGES = [{'role': 'user', 'content': 'Reply with the JSON object {"score": 1.0} and nothing else.'}]
# Statuses with which servers reject a response_format they do not speak (llama-cpp-python: 500).
DIALECT_STATUSES = (400, 422, 500, 501)
_DIALECT_WORDS = re.compile(r'response_format|json_schema|json_object|schema|grammar|guided', re.I)


def response_format(dialect: str) -> Optional[dict]:
    """The request's ``response_format`` for a dialect (None: no constraint)."""
    if dialect == 'json_schema':  # OpenAI, vLLM, SGLang, llama.cpp's C++ server, Ollama
        return {'type': 'json_schema', 'json_schema': {'name': 'judge_score', 'schema': REPLY_SCHEMA, 'strict': True}}
    if dialect == 'json_object':  # llama-cpp-python's server: a JSON object constrained by this schema
        return {'type': 'json_object', 'schema': REPLY_SCHEMA}
    if dialect == 'none':
        return None
    raise ValueError(f'unknown dialect {dialect!r} (known: {", ".join(DIALECTS)})')


def is_dialect_error(e: BaseException) -> bool:
    """An HTTP error that reads like a rejected ``response_format`` (status and wording)."""
    status = getattr(e, 'status_code', None)
    return status in DIALECT_STATUSES and bool(_DIALECT_WORDS.search(str(getattr(e, 'message', '') or e)))


# ----------------------------------------------------------------------------------------- thinking off
THINKING_OFF = {'chat_template_kwargs': {'enable_thinking': False}}
_KWARG_WORDS = re.compile(r'chat_template_kwargs|enable_thinking', re.I)


def is_kwarg_error(e: BaseException) -> bool:
    """An HTTP error rejecting ``chat_template_kwargs`` (OpenAI: 400 "Unrecognized request argument supplied:
    chat_template_kwargs"; pydantic servers: 422 "Extra inputs are not permitted" naming the field)."""
    status = getattr(e, 'status_code', None)
    return status in DIALECT_STATUSES and bool(_KWARG_WORDS.search(str(getattr(e, 'message', '') or e)))


def read_reply(resp, snap: bool = True) -> tuple:
    """(score or None, reason, text) of a chat completion. Besides :func:`parse_reply`'s reasons, ``thinking``:
    the reply is a think block that never closed (or, behind a reasoning parser, only ``reasoning_content``
    and no content), i.e. the judge thought instead of scoring."""
    try:
        choice = resp.choices[0]
        msg = choice.message
        text = msg.content
    except (AttributeError, IndexError, TypeError):
        return None, 'empty_reply', None
    score, reason = parse_reply(text, snap=snap)
    if score is None:
        extra = getattr(msg, 'model_extra', None) or {}
        thought = extra.get('reasoning_content') or extra.get('reasoning')
        unclosed = isinstance(text, str) and text.lstrip().startswith('<think>') and '</think>' not in text
        if unclosed or (thought and not (text or '').strip()):
            reason = 'thinking'
    return score, reason, text


# The start-up probe: one real judge prompt (a candidate that matches its reference), scored like any sample.
PROBE_SAMPLE = JudgeSample(
    completion='<think>The user wants the weather in Oslo; get_weather takes the city.</think>\n<tool_call>\n'
               '{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>',
    history=[{'role': 'user', 'content': 'What is the weather in Oslo?'}],
    ground_truth=[{'name': 'get_weather', 'arguments': {'city': 'Oslo'}}],
    reference_rationale='The user asks for the weather in Oslo: call get_weather with city Oslo.',
    tools=[{'type': 'function', 'function': {'name': 'get_weather', 'parameters': {
        'type': 'object', 'properties': {'city': {'type': 'string'}}, 'required': ['city']}}}])


def _http_problem(e: BaseException) -> str:
    status = getattr(e, 'status_code', None)
    return f'{type(e).__name__}{f" (HTTP {status})" if status else ""}: {redact(str(e))[:200]}'


# ----------------------------------------------------------------------------------------- cache, breaker
class DiskCache:
    """Append-only JSONL of ``{"key": sha256, "score": x}``; a torn last line (killed run) is skipped."""

    def __init__(self, path: Optional[str]):
        self.path = Path(path) if path else None
        self.mem: Dict[str, float] = {}
        if self.path and self.path.is_file():
            for line in self.path.read_text(encoding='utf-8').splitlines():
                try:
                    rec = json.loads(line)
                    self.mem[rec['key']] = float(rec['score'])
                except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                    continue
            logger.info('[AWPO judge] cache: %d scores loaded from %s', len(self.mem), self.path)

    def get(self, key: str) -> Optional[float]:
        return self.mem.get(key)

    def put(self, key: str, score: float) -> None:
        if key in self.mem:
            return
        self.mem[key] = score
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, 'a', encoding='utf-8') as f:
                f.write(json.dumps({'key': key, 'score': score}) + '\n')


class CircuitBreaker:
    """Opens after ``failures`` consecutive endpoint failures; while open, requests are refused; after
    ``cooldown`` seconds one probe is let through (half-open): success closes it, failure re-opens it."""

    def __init__(self, failures: int, cooldown: float, clock=time.monotonic):
        self.failures, self.cooldown, self.clock = failures, cooldown, clock
        self.consecutive = 0
        self.opened_at: Optional[float] = None
        self.probing = False
        self.times_opened = 0

    def allow(self) -> bool:
        if self.opened_at is None:
            return True
        if not self.probing and self.clock() - self.opened_at >= self.cooldown:
            self.probing = True
            return True
        return False

    def record(self, ok: bool) -> None:
        if ok:
            self.consecutive, self.opened_at, self.probing = 0, None, False
            return
        self.consecutive += 1
        if self.probing or (self.opened_at is None and self.consecutive >= self.failures):
            if self.opened_at is None:
                self.times_opened += 1
            self.opened_at, self.probing = self.clock(), False

    def abandon(self) -> None:
        """A request ended without an answer either way (cancelled): free the half-open probe slot."""
        self.probing = False

    @property
    def is_open(self) -> bool:
        return self.opened_at is not None


# ----------------------------------------------------------------------------------------- openai backend
class OpenAIJudge(BaseJudge):
    """The LLM judge on an OpenAI-compatible endpoint: one request per distinct prompt, never an exception."""
    backend = 'openai'
    label = 'openai'

    def __init__(self, cfg: JudgeConfig):
        super().__init__(cfg)
        install_redaction(cfg.api_key_env)
        self.cache = DiskCache(cfg.cache_path)
        self.breaker = CircuitBreaker(cfg.breaker_failures, cfg.breaker_cooldown)
        self.requests_made = 0
        self.tokens_used = 0
        # The dialect in use: fixed by the config, or None until ``auto`` has probed the server.
        self.dialect: Optional[str] = None if cfg.guided_json == 'auto' else cfg.guided_json
        self.dialect_switched = False
        self.send_thinking_off = cfg.disable_thinking  # False once the server rejected the kwarg
        self.kwarg_rejected: Optional[str] = None      # why (the server's error), for the messages
        self._switch_lock: Optional[asyncio.Lock] = None
        self._client = None
        self._client_key = None  # sha256 of the key the client was built with (a changed key rebuilds it)
        JudgeLoop.get()
        logger.warning('[AWPO judge] backend=openai (LLM judge) model=%s base_url=%s concurrency=%d timeout=%.0fs '
                       'deadline=%.0fs retries=%d guided_json=%s thinking off requested=%s key from $%s (%s)',
                       cfg.model, cfg.base_url, cfg.concurrency, cfg.timeout, cfg.batch_deadline, cfg.max_retries,
                       cfg.guided_json, cfg.disable_thinking, cfg.api_key_env, 'set' if cfg.api_key() else 'not set')

    def _get_client(self):
        """The run's client (built on the judge loop; rebuilt only if the key in the environment changed)."""
        secret = self.cfg.api_key()
        tag = hashlib.sha256((secret or '').encode()).hexdigest()
        if self._client is None or tag != self._client_key:
            self._client = openai.AsyncOpenAI(base_url=self.cfg.base_url, api_key=secret or 'EMPTY',
                                              timeout=self.cfg.timeout, max_retries=self.cfg.max_retries)
            self._client_key = tag
        return self._client

    def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            try:
                JudgeLoop.get().run(client.close(), timeout=5)
            except Exception:  # noqa: BLE001 - closing is best effort
                pass

    async def _create(self, client, messages: List[dict], dialect: str, **kw):
        """One chat request in ``dialect``, asking for thinking off while the server accepts that; a server
        that rejects the kwarg gets the request again without it (and the kwarg is dropped for the run)."""
        if dialect != 'none':
            kw['response_format'] = response_format(dialect)
        while True:
            asked = self.send_thinking_off
            try:
                return await client.chat.completions.create(
                    model=self.cfg.model, messages=messages, extra_body=THINKING_OFF if asked else None, **kw)
            except openai.APIStatusError as e:
                if not (asked and is_kwarg_error(e)):
                    raise
                if self.send_thinking_off:
                    self.send_thinking_off, self.kwarg_rejected = False, _http_problem(e)
                    logger.warning('[AWPO judge] the server rejects chat_template_kwargs (%s): thinking cannot be '
                                   'switched off by the client, requests go without it. A thinking judge spends '
                                   'its %d output tokens in <think>: serve it with thinking off (the start-up check '
                                   'tests a real reply; the stop rule judge.max_missing_share watches the run)',
                                   self.kwarg_rejected, self.cfg.max_tokens)

    # -------------------------------------------------------------- start-up
    def health_check(self) -> None:
        """``GET /models`` once, then one tiny chat request per dialect tried, without retries. Raises
        :class:`JudgeUnreachable` naming the problem and the setting that fixes it, unless
        ``tolerate_unreachable`` (then a warning; failed requests will simply give no score)."""
        problem = JudgeLoop.get().run(self._startup_check())
        if problem is None:
            return
        msg = (f'AWPO judge endpoint {self.cfg.base_url} failed its start-up check: {redact(problem)}')
        if 'real judge prompt' in problem:
            msg += ('. Set judge.tolerate_unreachable: true to train on regardless (the stop rule, '
                    'judge.max_missing_share, still ends a run whose judge gives no scores)')
        if 'judge.guided_json' not in problem and 'real judge prompt' not in problem:
            msg += ('. Start the judge server (shells/serve_judge.sh), fix judge.base_url / judge.model (or '
                    'AWPO_JUDGE_BASE_URL / AWPO_JUDGE_MODEL), use judge.backend: rubric for the offline '
                    'approximation, or set judge.tolerate_unreachable: true to train on regardless (missing judge '
                    'scores then fall back to the outcome reward).')
        if not self.cfg.tolerate_unreachable:
            raise JudgeUnreachable(msg)
        logger.warning('[AWPO judge] %s [tolerated]', msg)

    async def _startup_check(self) -> Optional[str]:
        client = self._get_client().with_options(max_retries=0, timeout=min(self.cfg.timeout, 10.0))
        try:
            served = [m.id async for m in client.models.list()]
        except Exception as e:  # noqa: BLE001 - any failure means "unreachable"
            return _http_problem(e)
        if self.cfg.model not in served:
            fix = (f': set judge.model / AWPO_JUDGE_MODEL={served[0]} (shells/serve_judge.sh prints the exact '
                   'line to export)' if served else '')
            return f'model {self.cfg.model!r} is not served there (served: {", ".join(served) or "none"}){fix}'
        logger.info('[AWPO judge] health check passed: %s serves %s', self.cfg.base_url, self.cfg.model)
        return await self._pick_dialect() or await self._probe_reply()

    async def _probe_reply(self) -> Optional[str]:
        """One real judge prompt (:data:`PROBE_SAMPLE`) as training sends it; None if its reply parses to a
        score, else why not (thinking, empty, unparseable, with what the client asked)."""
        cfg = self.cfg
        client = self._get_client().with_options(max_retries=0)
        messages, _, _ = build_messages(judge_input(PROBE_SAMPLE), cfg.reasoning_budget_chars)
        try:
            resp = await self._create(client, messages, self.dialect or 'none', temperature=cfg.temperature,
                                      max_tokens=cfg.max_tokens)
        except openai.APIError as e:
            slow = (f' within judge.timeout = {cfg.timeout:.0f} s (every judgment would time out too: raise '
                    'judge.timeout or give the judge more compute)' if isinstance(e, openai.APITimeoutError) else '')
            return f'a real judge prompt failed: {_http_problem(e)}{slow}'
        score, reason, text = read_reply(resp, snap=cfg.snap_to_tier)
        if score is not None:
            logger.warning('[AWPO judge] start-up probe: a real judge prompt was scored %.2f (dialect %s, thinking '
                           'off %s)', score, self.dialect or 'none',
                           'requested' if self.send_thinking_off else
                           f'NOT requested ({"rejected by the server" if self.kwarg_rejected else "judge.disable_thinking: false"})')
            return None
        finish = getattr(resp.choices[0], 'finish_reason', None) if getattr(resp, 'choices', None) else None
        asked = ('the client asked for thinking off (chat_template_kwargs enable_thinking=false)' if self.send_thinking_off
                 else f'the server rejected chat_template_kwargs ({self.kwarg_rejected}), so thinking could not be '
                      'switched off by the client' if self.kwarg_rejected
                 else 'judge.disable_thinking is false, so thinking off was not requested')
        if reason == 'thinking':
            why = (f'the reply was a think block with no score: its {cfg.max_tokens} output tokens (judge.max_tokens) '
                   f'went to <think> (finish_reason={finish}); {asked}. Serve the judge with thinking off '
                   '(shells/serve_judge.sh; vLLM: --default-chat-template-kwargs \'{"enable_thinking": false}\' '
                   'and no --reasoning-parser) or use a model that does not think')
        elif reason == 'empty_reply':
            why = f'the reply was empty (finish_reason={finish}); {asked}'
        else:
            why = (f'the reply did not parse as {{"score": x}} in [0, 1] ({reason}, finish_reason={finish}): '
                   f'{redact(repr(text))[:200]}; {asked}')
        return f'a real judge prompt got no score: {why}'

    async def _try_dialect(self, dialect: str) -> Optional[BaseException]:
        """One tiny request in ``dialect``, no retries: None if the server accepted it, else the error."""
        client = self._get_client().with_options(max_retries=0)
        try:
            await self._create(client, PROBE_MESSAGES, dialect, temperature=0.0, max_tokens=self.cfg.max_tokens)
        except openai.APIError as e:
            return e
        return None

    async def _pick_dialect(self, after: Optional[str] = None) -> Optional[str]:
        """``auto``: the first dialect of :data:`DIALECT_ORDER` (after ``after``) the server accepts. A fixed
        dialect: check it, and if rejected say which one the server accepts. Returns a problem or None."""
        want = self.cfg.guided_json
        order = DIALECT_ORDER[DIALECT_ORDER.index(after) + 1:] if after else DIALECT_ORDER
        candidates = order if want == 'auto' else (want,)
        errors = {}
        for d in candidates:
            e = await self._try_dialect(d)
            if e is None:
                self.dialect = d
                logger.warning('[AWPO judge] structured output: dialect %s%s', d,
                               (f' (picked by judge.guided_json: auto{"; rejected: " + ", ".join(errors) if errors else ""})'
                                if want == 'auto' else ''))
                return None
            if getattr(e, 'status_code', None) not in DIALECT_STATUSES:
                return _http_problem(e)  # not about the dialect: unreachable, unauthorised, ...
            errors[d] = _http_problem(e)
        rejected = '; '.join(f'{d}: {why}' for d, why in errors.items())
        if want == 'auto':
            return (f'the server rejected every request dialect ({rejected}); not a structured-output problem '
                    f'alone: check the server log (judge.guided_json: auto tried {", ".join(candidates)})')
        accepted = [d for d in DIALECT_ORDER if d != want and await self._try_dialect(d) is None]
        fix = (f'set judge.guided_json: {accepted[0]} (or auto), AWPO_JUDGE_GUIDED_JSON={accepted[0]}' if accepted
               else 'no other dialect is accepted either: check the server log')
        return f'the server rejects judge.guided_json: {want} ({rejected}); it accepts {", ".join(accepted) or "none of them"}: {fix}'

    async def _switch_dialect(self, failed: str, err: BaseException) -> bool:
        """A dialect error during the run (``auto`` only, once per run): probe the next dialects and switch.
        Returns True when the request should be retried with ``self.dialect``."""
        if self._switch_lock is None:
            self._switch_lock = asyncio.Lock()
        async with self._switch_lock:
            if self.dialect != failed:  # another request already switched
                return True
            if self.cfg.guided_json != 'auto' or self.dialect_switched:
                return False
            self.dialect_switched = True
            logger.warning('[AWPO judge] the server rejected the %s request dialect during the run (%s): probing '
                           'the next ones once (judge.guided_json: auto)', failed, _http_problem(err))
            problem = await self._pick_dialect(after=failed)
            if problem:
                logger.warning('[AWPO judge] no other dialect works: %s', problem)
                return False
            return True

    # -------------------------------------------------------------- one batch
    async def _score(self, samples: Sequence[JudgeSample]) -> List[Verdict]:
        cfg = self.cfg
        prepared = []  # (messages, key, cut, chars)
        for s in samples:
            messages, cut, chars = build_messages(judge_input(s), cfg.reasoning_budget_chars)
            key = cache_key(cfg.model, messages, cfg.temperature, cfg.max_tokens, cfg.guided_json)
            prepared.append((messages, key, cut, chars))
            if cut:
                self._once('cut', logging.INFO, '[AWPO judge] candidate reasoning longer than %d characters is '
                           'cut before judging (recorded per sample as reasoning_cut)', cfg.reasoning_budget_chars)
        results: Dict[str, tuple] = {}
        unique = {}
        for messages, key, _, _ in prepared:
            hit = self.cache.get(key)
            if hit is not None:
                results[key] = (hit, 'cache')
            elif key not in unique:
                unique[key] = messages
        if unique:
            if self.dialect is None:  # auto, and no start-up check ran: probe now
                problem = await self._pick_dialect()
                if problem:  # the next batch probes again; this one goes out unconstrained
                    self._once('dialect', logging.WARNING, '[AWPO judge] dialect probe failed: %s', redact(problem))
            client = self._get_client()
            sem = asyncio.Semaphore(cfg.concurrency)
            tasks = {key: asyncio.ensure_future(self._judge_one(client, sem, messages, key))
                     for key, messages in unique.items()}
            done, pending = await asyncio.wait(tasks.values(), timeout=cfg.batch_deadline)
            for t in pending:
                t.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
                self._once('deadline', logging.WARNING, '[AWPO judge] batch deadline of %.0fs reached: '
                           'unfinished judgments give no score', cfg.batch_deadline)
            for key, t in tasks.items():
                if t in pending or t.cancelled():
                    results[key] = (None, 'deadline')
                elif t.exception() is not None:  # a bug, not an endpoint failure: never crash training
                    logger.error('[AWPO judge] unexpected error: %s', redact(repr(t.exception()))[:300])
                    results[key] = (None, 'error')
                else:
                    results[key] = t.result()
        out = []
        for messages, key, cut, chars in prepared:
            score, reason = results[key]
            out.append(Verdict(score, reason, cut, chars))
        return out

    def _ceiling_reached(self) -> Optional[str]:
        c = self.cfg
        if c.max_requests is not None and self.requests_made >= c.max_requests:
            self._once('max_requests', logging.WARNING, '[AWPO judge] request ceiling reached (%d requests): the '
                       'judge stops calling and gives no score from now on; training goes on', c.max_requests)
            return 'ceiling'
        if c.max_total_tokens is not None and self.tokens_used >= c.max_total_tokens:
            self._once('max_tokens', logging.WARNING, '[AWPO judge] token ceiling reached (%d >= %d tokens): the '
                       'judge stops calling and gives no score from now on; training goes on',
                       self.tokens_used, c.max_total_tokens)
            return 'ceiling'
        return None

    async def _judge_one(self, client, sem: asyncio.Semaphore, messages: List[dict], key: str) -> tuple:
        cfg = self.cfg
        async with sem:
            # Checked after the semaphore: queued requests see the breaker / ceiling as it is now.
            stop = self._ceiling_reached()
            if stop:
                return None, stop
            if not self.breaker.allow():
                return None, 'breaker_open'
            is_probe = self.breaker.is_open  # allowed while open: this request is the half-open probe
            self.requests_made += 1  # reserved before the await: the ceiling is exact under concurrency
            for attempt in range(2):  # the second only after a dialect switch
                dialect = self.dialect or 'none'
                try:
                    resp = await self._create(client, messages, dialect, temperature=cfg.temperature,
                                              max_tokens=cfg.max_tokens)
                except BaseException as e:
                    if not isinstance(e, openai.APIError):  # cancelled by the deadline, or a bug: no verdict on
                        if is_probe:                        # the endpoint, but the half-open probe slot is freed
                            self.breaker.abandon()
                        raise
                    if attempt == 0 and dialect != 'none' and is_dialect_error(e) and \
                            await self._switch_dialect(dialect, e):
                        continue
                    reason = self._failure_reason(e)
                    break
                self.breaker.record(True)
                usage = getattr(resp, 'usage', None)
                if usage is not None and getattr(usage, 'total_tokens', None):
                    self.tokens_used += int(usage.total_tokens)
                score, reason, _ = read_reply(resp, snap=cfg.snap_to_tier)
                if reason == 'thinking':
                    self._once('thinking', logging.WARNING, '[AWPO judge] the judge replied with a think block and '
                               'no score (its %d output tokens went to <think>): the server ignores thinking off',
                               cfg.max_tokens)
                if score is not None:
                    self.cache.put(key, score)
                return score, reason
            was_open = self.breaker.is_open
            self.breaker.record(False)
            if self.breaker.is_open and not was_open:
                logger.warning('[AWPO judge] circuit breaker OPEN after %d consecutive failures (last: %s): no '
                               'requests for %.0fs, then one probe', cfg.breaker_failures, reason,
                               cfg.breaker_cooldown)
            return None, reason

    def _failure_reason(self, e: Exception) -> str:
        if isinstance(e, openai.APITimeoutError):
            return 'timeout'
        if isinstance(e, openai.APIConnectionError):
            return 'connection'
        if isinstance(e, openai.RateLimitError):
            return 'rate_limited'
        status = getattr(e, 'status_code', None) or 0
        hint = (f' (the request dialect was {self.dialect}: if the server rejects it, set judge.guided_json: auto)'
                if is_dialect_error(e) else '')
        self._once(f'http{status}', logging.WARNING, '[AWPO judge] endpoint answered HTTP %d: %s%s', status,
                   redact(str(e))[:200], hint)
        return 'http_5xx' if status >= 500 else 'http_4xx'

    def _account(self, verdicts: Sequence[Verdict]) -> None:
        super()._account(verdicts)
        self.stats['requests'] = self.requests_made
        self.stats['tokens'] = self.tokens_used


__all__ = ['OpenAIJudge', 'DiskCache', 'CircuitBreaker', 'response_format', 'is_dialect_error', 'is_kwarg_error',
           'read_reply', 'DIALECT_ORDER', 'THINKING_OFF', 'PROBE_SAMPLE']
