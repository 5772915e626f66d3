"""What every judge backend shares (paper Sec. 3.2, R^reasoning in [0, 1]; appendix B): the types, the judge's
input, the base class.

:class:`JudgeSample` and :class:`Verdict`, :func:`judge_input` (what the judge reads from a sample; the prompt
itself is ``plugin/judge_prompt.py``), and :class:`BaseJudge` (batches on the judge's own loop, rows with a
broken ground truth, the missing-score bookkeeping). The backends subclass it; :func:`plugin.judge.make_judge`
builds one. The redaction of secrets and the loop live in ``plugin/judge_runtime.py``.

Every failure is ``Verdict(score=None, reason=...)`` (NaN in ms-swift's reward matrix), never 0 and never
an exception: a missing score makes AWPO fall back to the outcome reward for that group.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, List, Optional, Sequence

from plugin.config import JudgeConfig
from plugin.judge_prompt import JudgeInput
from plugin.judge_runtime import JudgeLoop, redact
from plugin.toolcall_format import parse_completion, parse_ground_truth, render_tool_calls

logger = logging.getLogger('awpo.judge')


class JudgeUnreachable(RuntimeError):
    """The start-up health check failed (and ``judge.tolerate_unreachable`` is off)."""


class JudgeSwitchedOff(RuntimeError):
    """The judge's missing share stayed above ``judge.max_missing_share`` for ``judge.missing_patience``
    consecutive batches (and ``judge.tolerate_missing`` is off): AWPO would silently train outcome-only."""


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


# ----------------------------------------------------------------------------------------- input
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


def _utf8(text: str) -> str:
    """Model text as valid UTF-8: a lone surrogate (fuzzed or mis-decoded output) becomes U+FFFD, so hashing the
    prompt for the cache and sending it as JSON never raise."""
    try:
        text.encode('utf-8')
        return text
    except UnicodeEncodeError:
        return text.encode('utf-8', 'replace').decode('utf-8')


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


# ----------------------------------------------------------------------------------------- base
class _Once:
    """Log a message once per run per key."""

    def __init__(self):
        self.seen = set()

    def __call__(self, key: str, level: int, msg: str, *args) -> None:
        if key not in self.seen:
            self.seen.add(key)
            logger.log(level, msg, *args)


class BaseJudge:
    """The interface (:meth:`score`, :meth:`submit`, :meth:`score_sync`, :meth:`health_check`) and the run's
    bookkeeping: ``stats`` (run totals) and ``last_missing_share`` (the share of the last batch without a
    score, 1.0 after a batch that failed as a whole) and the stop rule (:meth:`check_switched_off`, called by the
    reward after each batch). Backends implement :meth:`_score`."""
    backend = 'base'
    label = 'judge'

    def __init__(self, cfg: JudgeConfig):
        self.cfg = cfg
        self.stats: Counter = Counter()  # run totals: samples, missing, per-reason counts, cuts
        self.last_missing_share = 0.0    # of the last batch: set by _account and record_failed_batch
        self.missing_streak = 0          # consecutive batches whose missing share > judge.max_missing_share
        self.streak_reasons: Counter = Counter()  # why their scores were missing
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
        """Raise :class:`JudgeUnreachable` if the judge cannot work (the HTTP backend checks its endpoint)."""
        return None

    def record_failed_batch(self, n: int, error: BaseException) -> None:
        """A batch of ``n`` samples failed as a whole (the judging itself raised or timed out, so no verdicts
        and no :meth:`_account`): log it, and the last batch's missing share is 1."""
        logger.error('[AWPO judge] judging failed (%s: %s): no judge score for this batch of %d',
                     type(error).__name__, redact(str(error))[:200], n)
        self.last_missing_share = 1.0
        self._streak(1.0, Counter({f'batch_failed ({type(error).__name__})': n}))

    # -------------------------------------------------------------- the stop rule
    def _streak(self, share: float, reasons: Counter) -> None:
        """Count consecutive batches whose missing share is above ``judge.max_missing_share``."""
        if share > self.cfg.max_missing_share:
            self.missing_streak += 1
            self.streak_reasons.update(reasons)
        else:
            self.missing_streak, self.streak_reasons = 0, Counter()

    def check_switched_off(self) -> None:
        """Raise :class:`JudgeSwitchedOff` when the stop rule fires (``judge.missing_patience`` consecutive
        batches above ``judge.max_missing_share``), unless ``judge.tolerate_missing``: then warn once."""
        c = self.cfg
        if self.missing_streak < c.missing_patience:
            return
        why = ', '.join(f'{k}={v}' for k, v in self.streak_reasons.most_common())
        msg = (f'AWPO judge ({self.label}, {getattr(c, "model", "")} at {c.base_url or "-"}) gave no score for more '
               f'than {100 * c.max_missing_share:.0f}% of the samples in {self.missing_streak} consecutive batches '
               f'(judge.max_missing_share={c.max_missing_share}, judge.missing_patience={c.missing_patience}; '
               f'last batch {100 * self.last_missing_share:.0f}% missing; reasons: {why or "-"}). Without judge '
               'scores AWPO trains outcome-only. '
               + (f'Reason "thinking": the judge spends its {c.max_tokens} output tokens in a <think> block; serve '
                  'it with thinking off (shells/serve_judge.sh; vLLM --default-chat-template-kwargs '
                  '\'{"enable_thinking": false}\' and no --reasoning-parser). ' if 'thinking' in why else '')
               + 'Fix the judge and resume from the last checkpoint, or set judge.tolerate_missing: true '
               '(AWPO_JUDGE_TOLERATE_MISSING=true) to train on with the outcome reward where scores are missing.')
        if c.tolerate_missing:
            self._once('switched_off', logging.WARNING, '[AWPO judge] %s [tolerated]', msg)
            return
        logger.error('[AWPO judge] %s', msg)
        raise JudgeSwitchedOff(redact(msg))

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
        self._streak(self.last_missing_share, Counter(missing))
        why = ', '.join(f'{k}={c}' for k, c in sorted(Counter(missing).items()))
        run_share = self.stats['missing'] / max(1, self.stats['samples'])
        level = logging.WARNING if missing else logging.INFO
        logger.log(level, '[AWPO judge] %s: %d/%d scores missing (%.1f%%)%s; run: %d/%d missing (%.1f%%)',
                   self.label, len(missing), n, 100 * self.last_missing_share, f' [{why}]' if why else '',
                   self.stats['missing'], self.stats['samples'], 100 * run_share)


__all__ = ['JudgeSample', 'Verdict', 'BaseJudge', 'JudgeUnreachable', 'JudgeSwitchedOff', 'judge_input', 'split_history']
