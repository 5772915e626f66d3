"""The reasoning reward's judge (paper Sec. 3.2, R^reasoning in [0, 1]; appendix B).

Two backends behind one interface, ``await judge.score(samples) -> [Verdict]``:

* :class:`OpenAIJudge` — any OpenAI-compatible endpoint (vLLM serving Qwen3-235B-A22B in the paper) through
  ``openai.AsyncOpenAI``. The judge runs on an event loop of its own in a background thread (:class:`JudgeLoop`),
  so one client and its connections live for the whole run although ms-swift runs async rewards under a
  fresh ``asyncio.run`` every step, and a batch can be left in flight (:meth:`BaseJudge.submit`) while the
  trainer does the log-prob pass (issue 12). All samples of a call are judged concurrently under a semaphore
  (``concurrency``), so a step costs about one round-trip. Each request has a ``timeout``; the whole call a
  ``batch_deadline``. Structured output: ``guided_json`` names the request dialect (``json_schema``: OpenAI,
  vLLM, SGLang, llama.cpp's C++ server; ``json_object`` + ``schema``: llama-cpp-python; ``none``); ``auto``
  probes the server once at start-up with a tiny request and, if the server later rejects the dialect,
  switches once with a warning. The reply is parsed strictly whatever the dialect. Retries are the SDK's own (``max_retries``; it backs off on 408/409/429/5xx and honours
  ``Retry-After``) — there is no second retry layer. A circuit breaker opens after ``breaker_failures``
  consecutive failed requests and lets one probe through every ``breaker_cooldown`` seconds. Identical
  requests are judged once (content-hash cache in memory, optionally appended to a JSONL file and reloaded
  by the next run). ``max_requests`` / ``max_total_tokens`` cap the run's cost; at the cap the judge stops
  calling, returns no score and says so once.
* :class:`RubricJudge` — offline and deterministic: an approximation of Figure 2's four weighted dimensions
  computed from the ground truth, the reference rationale and the completion, snapped to the six tiers.
  It is NOT an LLM judge, and says so in the logs.

Every failure is ``Verdict(score=None, reason=...)`` (NaN in ms-swift's reward matrix), never 0 and never
an exception: a missing score makes AWPO fall back to the outcome reward for that group.

Secrets: the API key is read from the environment variable named by ``judge.api_key_env`` when the client is
built; it lives only inside that client (never in the config, never on these objects). Every text that
leaves the judge goes through one redaction: :func:`redact` (exception texts, audit output) and the
:class:`RedactFilter` on the loggers that can carry it (``awpo*``, ``openai``, ``httpx``, ``swift``). The
cache file holds content hashes and scores only.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import json
import logging
import os
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import openai

from .config import DIALECTS, JudgeConfig
from .judge_prompt import (REPLY_SCHEMA, TIERS, JudgeInput, build_messages, cache_key, cut_reasoning,
                           parse_reply, snap_to_tier)
from plugin.outcome_reward import json_equal, pair_calls
from plugin.toolcall_format import parse_completion, parse_ground_truth, render_tool_calls

logger = logging.getLogger('awpo.judge')

# Reasons a request counts against the circuit breaker (the endpoint, not the judge model, failed).
ENDPOINT_FAILURES = ('timeout', 'connection', 'rate_limited', 'http_5xx', 'http_4xx')


class JudgeUnreachable(RuntimeError):
    """The start-up health check failed (and ``judge.tolerate_unreachable`` is off)."""


# ----------------------------------------------------------------------------------------- redaction
# Names of the environment variables that hold judge secrets; their values are cut from every text we emit.
_SECRET_ENVS = {'AWPO_JUDGE_API_KEY'}
_REDACTED_LOGGERS = ('awpo', 'awpo.judge', 'openai', 'openai._base_client', 'httpx', 'httpcore', 'swift')


def redact(text: Any) -> str:
    """``text`` with the value of every secret variable replaced by ``***`` (the one redaction function)."""
    text = text if isinstance(text, str) else str(text)
    for name in _SECRET_ENVS:
        secret = os.environ.get(name)
        if secret and len(secret) >= 4 and secret in text:
            text = text.replace(secret, '***')
    return text


class RedactFilter(logging.Filter):
    """Logging filter: the formatted message and any traceback of a record pass through :func:`redact`."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            msg = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string must not hide the record
            msg = str(record.msg)
        record.msg, record.args = redact(msg), None
        if record.exc_info:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


_FILTER = RedactFilter()


def install_redaction(secret_env: Optional[str] = None) -> None:
    """Register ``secret_env`` as a secret and put the filter on every logger that can carry it (idempotent).
    Logger filters do not apply to child loggers, so each is named."""
    if secret_env:
        _SECRET_ENVS.add(secret_env)
    for name in _REDACTED_LOGGERS:
        lg = logging.getLogger(name)
        if _FILTER not in lg.filters:
            lg.addFilter(_FILTER)


# ----------------------------------------------------------------------------------------- event loop
class JudgeLoop:
    """One asyncio loop in a daemon thread per process: the judge's client and connections outlive ms-swift's
    per-step ``asyncio.run``, and a batch can run while the caller's thread does other work."""
    _instance: Optional['JudgeLoop'] = None
    _lock = threading.Lock()

    def __init__(self):
        self.pid = os.getpid()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name='awpo-judge-loop', daemon=True)
        self.thread.start()

    @classmethod
    def get(cls) -> 'JudgeLoop':
        with cls._lock:
            if cls._instance is None or cls._instance.pid != os.getpid() or not cls._instance.thread.is_alive():
                cls._instance = JudgeLoop()  # also after a fork: the parent's thread does not exist here
            return cls._instance

    def submit(self, coro) -> concurrent.futures.Future:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(self, coro, timeout: Optional[float] = None):
        return self.submit(coro).result(timeout)


# ----------------------------------------------------------------------------------------- data
@dataclass
class JudgeSample:
    """One sample to judge: the completion, the dialogue before it and the row's reference data."""
    completion: str
    history: List[dict] = field(default_factory=list)
    ground_truth: Any = '[]'            # JSON string or list of {"name", "arguments"}
    reference_rationale: str = ''
    tools: Any = None                   # JSON string or list, as in the dataset's `tools` column


@dataclass
class Verdict:
    score: Optional[float]              # in [0, 1] (on a tier when snapping), None = no score
    reason: str                         # 'ok', 'cache', or why there is no score
    reasoning_cut: bool = False         # the candidate's reasoning exceeded the length budget
    reasoning_chars: int = 0            # its length before the cut


def _as_json_text(value: Any) -> str:
    if value is None:
        return '[]'
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # multimodal-style content parts
        return ''.join(p.get('text', '') if isinstance(p, dict) else str(p) for p in content)
    return '' if content is None else json.dumps(content, ensure_ascii=False)


def split_history(history: Sequence[dict]) -> tuple[str, str]:
    """(dialogue context, tool outputs) rendered from ms-swift messages (roles system/user/assistant/
    tool_call/tool_response/tool). Tool outputs are what the tools returned; everything else is context."""
    context, outputs = [], []
    for m in history:
        role = m.get('role', '?')
        text = _content_text(m.get('content'))
        if role in ('tool', 'tool_response', 'observation'):
            outputs.append(text)
        else:
            context.append(f'[{role}] {text}')
    return '\n'.join(context), '\n'.join(outputs)


ACTION_CHARS = 6000  # the candidate's action (answer, or raw text when unparseable) is cut to this length


def judge_input(sample: JudgeSample) -> JudgeInput:
    """Extract what the judge reads from one sample (reasoning via the outcome reward's own parser). Model
    text is hostile input: if the parser fails on it anyway, the judge sees the raw text (fenced)."""
    # Unparseable: the judge sees the raw text (fenced like the rest).
    reasoning, action = '', sample.completion if isinstance(sample.completion, str) else str(sample.completion)
    try:
        parsed = parse_completion(sample.completion)
    except Exception:  # noqa: BLE001 - e.g. RecursionError on deep nesting: never raise on model output
        parsed = None
    if parsed is not None:
        reasoning = parsed.reasoning
        if parsed.calls:
            action = render_tool_calls(parsed.calls)
        elif parsed.calls == []:
            action = parsed.answer
    if len(action) > ACTION_CHARS:  # the action (answer or raw text) is bounded like the reasoning
        action = action[:ACTION_CHARS] + f' [... cut: {len(action)} characters in all]'
    context, outputs = split_history(sample.history)
    return JudgeInput(candidate_reasoning=_utf8(reasoning), candidate_action=_utf8(action),
                      reference_rationale=sample.reference_rationale or '',
                      ground_truth=_as_json_text(sample.ground_truth), tools=_as_json_text(sample.tools),
                      dialogue_context=context, tool_outputs=outputs)


# ----------------------------------------------------------------------------------------- helpers
def _utf8(text: str) -> str:
    """Model text as valid UTF-8: a lone surrogate (fuzzed or mis-decoded output) becomes U+FFFD, so hashing the
    prompt for the cache and sending it as JSON never raise."""
    try:
        text.encode('utf-8')
        return text
    except UnicodeEncodeError:
        return text.encode('utf-8', 'replace').decode('utf-8')


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


def _http_problem(e: BaseException) -> str:
    status = getattr(e, 'status_code', None)
    return f'{type(e).__name__}{f" (HTTP {status})" if status else ""}: {redact(str(e))[:200]}'


class _Once:
    """Log a message once per run per key."""

    def __init__(self):
        self.seen = set()

    def __call__(self, key: str, level: int, msg: str, *args) -> None:
        if key not in self.seen:
            self.seen.add(key)
            logger.log(level, msg, *args)


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


# ----------------------------------------------------------------------------------------- base
class BaseJudge:
    backend = 'base'
    label = 'judge'

    def __init__(self, cfg: JudgeConfig):
        self.cfg = cfg
        self.stats: Counter = Counter()  # run totals: samples, missing, per-reason counts, cuts
        self._once = _Once()

    def submit(self, samples: Sequence[JudgeSample]) -> concurrent.futures.Future:
        """Start judging on the judge's own loop; the future's result is :meth:`score`'s."""
        return JudgeLoop.get().submit(self._score_batch(list(samples)))

    async def score(self, samples: Sequence[JudgeSample]) -> List[Verdict]:
        """One verdict per sample, in order (awaitable from any event loop)."""
        return await asyncio.wrap_future(self.submit(samples))

    async def _score_batch(self, samples: Sequence[JudgeSample]) -> List[Verdict]:
        """A row whose ground truth is missing or broken gets no score (with a warning naming the row) and is
        not sent anywhere."""
        bad = {}
        for i, s in enumerate(samples):
            try:
                if s.ground_truth is None:
                    raise ValueError('ground_truth is missing')
                parse_ground_truth(s.ground_truth)
            except ValueError as e:
                bad[i] = str(e)
                logger.warning('[AWPO judge] row %d: %s -> no judge score', i, str(e)[:200])
        good = [s for i, s in enumerate(samples) if i not in bad]
        scored = iter(await self._score(good) if good else [])
        out = [Verdict(None, 'bad_ground_truth') if i in bad else next(scored) for i in range(len(samples))]
        self._account(out)
        return out

    async def _score(self, samples: Sequence[JudgeSample]) -> List[Verdict]:
        raise NotImplementedError

    def score_sync(self, samples: Sequence[JudgeSample]) -> List[Verdict]:
        return self.submit(samples).result()

    def health_check(self) -> None:
        return None

    def _account(self, verdicts: Sequence[Verdict]) -> None:
        """Log the missing share of this batch (and the run so far)."""
        n = len(verdicts)
        missing = [v.reason for v in verdicts if v.score is None]
        self.stats['samples'] += n
        self.stats['missing'] += len(missing)
        self.stats['reasoning_cut'] += sum(v.reasoning_cut for v in verdicts)
        for v in verdicts:
            self.stats['reason.' + v.reason] += 1
        self.last_missing_share = len(missing) / n if n else 0.0
        why = ', '.join(f'{k}={c}' for k, c in sorted(Counter(missing).items()))
        run_share = self.stats['missing'] / max(1, self.stats['samples'])
        level = logging.WARNING if missing else logging.INFO
        logger.log(level, '[AWPO judge] %s: %d/%d scores missing (%.1f%%)%s; run: %d/%d missing (%.1f%%)',
                   self.label, len(missing), n, 100 * self.last_missing_share, f' [{why}]' if why else '',
                   self.stats['missing'], self.stats['samples'], 100 * run_share)


# ----------------------------------------------------------------------------------------- rubric backend
_WORD = re.compile(r'\w+', re.U)


def _tokens(text: str) -> Counter:
    return Counter(w.lower() for w in _WORD.findall(text or ''))


def rubric_reasoning_path(reasoning: str, reference: str, gold: list) -> float:
    """Reasoning path (35 %): token-overlap F1 of the candidate's reasoning with the reference rationale.

    Without a reference rationale: the share of the gold trajectory's anchors (tool names, parameter
    names, string/number values) the reasoning mentions; 1 for a non-empty reasoning when there are none.
    An empty reasoning has no path: 0."""
    cand = _tokens(reasoning)
    if not cand:
        return 0.0
    ref = _tokens(reference)
    if ref:
        common = sum((cand & ref).values())
        if not common:
            return 0.0
        p, r = common / sum(cand.values()), common / sum(ref.values())
        return 2 * p * r / (p + r)
    anchors = set()
    for g in gold:
        anchors |= set(_tokens(g['name']))
        for k, v in g['arguments'].items():
            anchors |= set(_tokens(k))
            if isinstance(v, (str, int, float)) and not isinstance(v, bool):
                anchors |= set(_tokens(str(v)))
    if not anchors:
        return 1.0
    return len(anchors & set(cand)) / len(anchors)


def rubric_tool_selection(pred: list, gold: list) -> float:
    """Tool selection (30 %): Jaccard of the tool-name multisets (coverage and no extras); gold [] -> 1 iff
    no call. Order is not scored (parallel calls have none)."""
    if not gold:
        return 0.0 if pred else 1.0
    g, p = Counter(c['name'] for c in gold), Counter(c['name'] for c in pred)
    return sum((g & p).values()) / sum((g | p).values())


def rubric_parameters(pred: list, gold: list) -> float:
    """Parameter setting (25 %): per gold call, exact-value matches (type-strict) over the union of gold and
    predicted keys of its paired call (same name; 0 if unpaired); mean over gold calls. Gold [] -> 1 iff no
    call."""
    if not gold:
        return 0.0 if pred else 1.0
    total = 0.0
    for g, j in zip(gold, pair_calls(pred, gold)):
        if j is None:
            continue
        ga, pa = g['arguments'], pred[j]['arguments']
        keys = set(ga) | set(pa)
        if not keys:
            total += 1.0
            continue
        total += sum(1 for k in ga if k in pa and json_equal(ga[k], pa[k])) / len(keys)
    return total / len(gold)


def rubric_execution(pred: list, gold: list) -> float:
    """Execution strategy (10 %), approximated by the stop condition: as many calls as the gold trajectory
    (a direct answer when gold is [])."""
    return 1.0 - abs(len(pred) - len(gold)) / max(len(pred), len(gold), 1)


def rubric_score(completion: str, ground_truth: Any, reference_rationale: str, tools: Any = None,
                 reasoning_budget_chars: Optional[int] = None) -> float:
    """Deterministic approximation of Figure 2: weighted dimensions, then the hard constraints as caps,
    then the nearest tier. Hard constraints: a gold tool missing -> at most C (0.50); a tool that is neither
    in the tool list nor in the gold trajectory (hallucinated) -> at most D (0.25); any parameter deviation
    on a paired call -> at most B (0.75); calling a tool when a direct answer was due -> at most D.
    The reasoning is cut to ``reasoning_budget_chars`` first, as for the LLM judge."""
    gold = parse_ground_truth(ground_truth)
    parsed = parse_completion(completion)
    pred = parsed.calls or []
    reasoning = parsed.reasoning
    if reasoning_budget_chars is not None:
        reasoning, _ = cut_reasoning(reasoning, reasoning_budget_chars)
    raw = (0.35 * rubric_reasoning_path(reasoning, reference_rationale, gold)
           + 0.30 * rubric_tool_selection(pred, gold)
           + 0.25 * rubric_parameters(pred, gold)
           + 0.10 * rubric_execution(pred, gold))
    cap = 1.0
    gold_names, pred_names = {c['name'] for c in gold}, {c['name'] for c in pred}
    if gold_names - pred_names:
        cap = min(cap, 0.5)
    known = _tool_names(tools) | gold_names
    if pred_names - known:
        cap = min(cap, 0.25)
    if not gold and pred:
        cap = min(cap, 0.25)
    for g, j in zip(gold, pair_calls(pred, gold)):
        if j is not None and not json_equal(g['arguments'], pred[j]['arguments']):
            cap = min(cap, 0.75)
    return snap_to_tier(min(raw, cap))


def _tool_names(tools: Any) -> set:
    if isinstance(tools, str):
        try:
            tools = json.loads(tools) if tools.strip() else []
        except json.JSONDecodeError:
            return set()
    names = set()
    for t in tools or []:
        if isinstance(t, dict):
            fn = t.get('function', t)
            if isinstance(fn, dict) and isinstance(fn.get('name'), str):
                names.add(fn['name'])
    return names


class RubricJudge(BaseJudge):
    """Offline backend: :func:`rubric_score` per sample. Not an LLM judge."""
    backend = 'rubric'
    label = 'rubric (NOT an LLM judge)'

    def __init__(self, cfg: JudgeConfig):
        super().__init__(cfg)
        logger.warning('[AWPO judge] backend=rubric: R_reasoning is a deterministic rule-based APPROXIMATION '
                       'of the Figure-2 rubric (reasoning overlap with the reference, tool selection, '
                       'parameters, call count). It is NOT an LLM judge. Set judge.base_url / '
                       'AWPO_JUDGE_BASE_URL to use one.')

    async def _score(self, samples: Sequence[JudgeSample]) -> List[Verdict]:
        out = []
        for s in samples:
            try:
                reasoning = parse_completion(s.completion).reasoning
                score = rubric_score(s.completion, s.ground_truth, s.reference_rationale, s.tools,
                                     self.cfg.reasoning_budget_chars)
            except Exception as e:  # noqa: BLE001 - model text must never crash training: no score instead
                self._once('rubric_error', logging.WARNING, '[AWPO judge] rubric could not read a completion '
                           '(%s): no score for it', type(e).__name__)
                out.append(Verdict(None, 'unparseable'))
                continue
            _, cut = cut_reasoning(reasoning, self.cfg.reasoning_budget_chars)
            out.append(Verdict(score, 'ok', cut, len(reasoning)))
        return out


# ----------------------------------------------------------------------------------------- openai backend
class OpenAIJudge(BaseJudge):
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
        self._switch_lock: Optional[asyncio.Lock] = None
        self._client = None
        self._client_key = None  # sha256 of the key the client was built with (a changed key rebuilds it)
        JudgeLoop.get()
        logger.warning('[AWPO judge] backend=openai (LLM judge) model=%s base_url=%s concurrency=%d timeout=%.0fs '
                       'deadline=%.0fs retries=%d guided_json=%s key from $%s (%s)', cfg.model, cfg.base_url,
                       cfg.concurrency, cfg.timeout, cfg.batch_deadline, cfg.max_retries, cfg.guided_json,
                       cfg.api_key_env, 'set' if cfg.api_key() else 'not set')

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

    # -------------------------------------------------------------- start-up
    def health_check(self) -> None:
        """``GET /models`` once, then one tiny chat request per dialect tried, without retries. Raises
        :class:`JudgeUnreachable` naming the problem and the setting that fixes it, unless
        ``tolerate_unreachable`` (then a warning; failed requests will simply give no score)."""
        problem = JudgeLoop.get().run(self._startup_check())
        if problem is None:
            return
        msg = (f'AWPO judge endpoint {self.cfg.base_url} failed its start-up check: {redact(problem)}')
        if 'judge.guided_json' not in problem:
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
            return f'model {self.cfg.model!r} is not served there (served: {", ".join(served) or "none"})'
        logger.info('[AWPO judge] health check passed: %s serves %s', self.cfg.base_url, self.cfg.model)
        return await self._pick_dialect()

    async def _try_dialect(self, dialect: str) -> Optional[BaseException]:
        """One tiny request in ``dialect``, no retries: None if the server accepted it, else the error."""
        client = self._get_client().with_options(max_retries=0)
        kw = {'response_format': response_format(dialect)} if dialect != 'none' else {}
        try:
            await client.chat.completions.create(model=self.cfg.model, messages=PROBE_MESSAGES, temperature=0.0,
                                                 max_tokens=self.cfg.max_tokens, **kw)
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
                extra = {'response_format': response_format(dialect)} if dialect != 'none' else {}
                try:
                    resp = await client.chat.completions.create(
                        model=cfg.model, messages=messages, temperature=cfg.temperature, max_tokens=cfg.max_tokens,
                        **extra)
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
                try:
                    text = resp.choices[0].message.content
                except (AttributeError, IndexError, TypeError):
                    text = None
                score, reason = parse_reply(text, snap=cfg.snap_to_tier)
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
        if status >= 500:
            self._once(f'http{status}', logging.WARNING, '[AWPO judge] endpoint answered HTTP %d: %s%s', status,
                       redact(str(e))[:200], hint)
            return 'http_5xx'
        self._once(f'http{status}', logging.WARNING, '[AWPO judge] endpoint answered HTTP %d: %s%s', status,
                   redact(str(e))[:200], hint)
        return 'http_4xx'

    def _account(self, verdicts: Sequence[Verdict]) -> None:
        super()._account(verdicts)
        self.stats['requests'] = self.requests_made
        self.stats['tokens'] = self.tokens_used


def make_judge(cfg: JudgeConfig) -> BaseJudge:
    """The backend named by ``cfg.resolved_backend`` (auto: openai if base_url is set, else rubric)."""
    cfg.validate()
    return OpenAIJudge(cfg) if cfg.resolved_backend == 'openai' else RubricJudge(cfg)


__all__ = ['JudgeSample', 'Verdict', 'BaseJudge', 'OpenAIJudge', 'RubricJudge', 'make_judge', 'rubric_score',
           'JudgeUnreachable', 'CircuitBreaker', 'DiskCache', 'TIERS']
