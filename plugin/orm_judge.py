"""ms-swift glue of the reasoning reward R^reasoning (paper Sec. 3.2, appendix B): ``orms['awpo_judge']``.

Registered by ``plugin/registry.py`` (``orms['awpo_judge'] = AWPOJudge``), not here. ms-swift builds
``AWPOJudge(args=GRPOConfig)`` once per rank and, every step, awaits ``AWPOJudge()(completions, **kwargs)``
inside a fresh ``asyncio.run``. kwargs carry the dataset columns this reward reads:

    messages             history + the generated turn (the completion is the last message)
    ground_truth         JSON string, list of {"name", "arguments"}; [] = a direct text answer was right
    reference_rationale  the reference chain of thought for this step (may be empty)
    tools                the tool list (JSON string or list)

Returns one ``float | None`` per completion: ``None`` (NaN in the reward matrix) when the judge gave no
score — never 0. The settings come from ``load_config().judge`` (file ``$AWPO_CONFIG`` + ``AWPO_JUDGE_*``).

Overlap (issue 12, ``judge.overlap``): when the AWPO trainer sets ``defer = True``, a call starts the batch on
the judge's own loop and returns placeholders (``None``) at once; the trainer computes the outcome rewards and
the old/ref log-prob pass meanwhile and calls :meth:`AWPOJudge.collect` inside ``_compute_advantages``, which
waits for the scores and writes them into the reward matrix before anything reads that column. Stock GRPO never
sets ``defer``: there the call waits for its scores as usual.

A failing judge degrades training (no score -> the group falls back to the outcome reward) but cannot switch
itself off silently: after each batch :meth:`BaseJudge.check_switched_off` applies the stop rule
(``judge.max_missing_share`` / ``judge.missing_patience``) and raises :class:`JudgeSwitchedOff`, which ends the
run with its reasons, unless ``judge.tolerate_missing``.
"""
from __future__ import annotations

import concurrent.futures
from typing import Any, List, Optional, Tuple

from swift.rewards import AsyncORM

from plugin.config import load_config
from plugin.judge import make_judge
from plugin.judge_base import BaseJudge, JudgeSample


def _column(kwargs: dict, name: str, n: int, required: bool) -> List[Any]:
    col = kwargs.get(name)
    if col is None:
        if required:
            raise ValueError(f'awpo_judge: the dataset has no {name!r} column (see docs/data.md, "the data contract"); '
                             f'got columns: {", ".join(sorted(k for k in kwargs if k != "trainer_state"))}')
        return [None] * n
    if len(col) != n:
        raise ValueError(f'awpo_judge: column {name!r} has {len(col)} rows for {n} completions')
    return list(col)


def build_samples(completions: List[str], kwargs: dict) -> List[JudgeSample]:
    """One :class:`JudgeSample` per completion from ms-swift's reward kwargs."""
    n = len(completions)
    gts = _column(kwargs, 'ground_truth', n, required=True)
    refs = _column(kwargs, 'reference_rationale', n, required=False)
    tools = _column(kwargs, 'tools', n, required=False)
    msgs = _column(kwargs, 'messages', n, required=False)
    samples = []
    for i, completion in enumerate(completions):
        history = list(msgs[i] or [])
        if history and history[-1].get('role') == 'assistant':
            history = history[:-1]  # the generated turn itself is the candidate, not context
        samples.append(JudgeSample(completion=completion, history=history, ground_truth=gts[i],
                                   reference_rationale=refs[i] or '', tools=tools[i]))
    return samples


class AWPOJudge(AsyncORM):
    """R^reasoning in [0, 1] from the configured judge (LLM endpoint or the offline rubric approximation)."""
    awpo_role = 'judge'

    def __init__(self, args: Optional[Any] = None, **kwargs):
        super().__init__(args, **kwargs)
        self.config = load_config().judge
        self.judge: BaseJudge = make_judge(self.config)
        self.judge.health_check()  # raises JudgeUnreachable unless judge.tolerate_unreachable
        self.defer = False  # set by the AWPO trainer when judge.overlap applies
        self._pending: List[Tuple[int, concurrent.futures.Future]] = []

    @property
    def last_missing_share(self) -> float:
        """The share of the judge's last batch without a score (the judge's own state)."""
        return self.judge.last_missing_share

    async def __call__(self, completions: List[str], **kwargs) -> List[Optional[float]]:
        samples = build_samples(list(completions), kwargs)  # a dataset without the columns is a clear error
        if self.defer:
            self._pending.append((len(samples), self.judge.submit(samples)))
            return [None] * len(samples)  # placeholders: filled in by collect() before the column is read
        try:
            scores = [v.score for v in await self.judge.score(samples)]
        except Exception as e:  # noqa: BLE001 - training never crashes because the judge did
            scores = self._failed(e, len(samples))
        self.judge.check_switched_off()  # ... unless it stays off: the stop rule (judge.max_missing_share)
        return scores

    def collect(self) -> Optional[List[Optional[float]]]:
        """Wait for every deferred batch (in call order) and return their scores; None if nothing is pending."""
        if not self._pending:
            return None
        pending, self._pending = self._pending, []
        scores: List[Optional[float]] = []
        for n, fut in pending:
            try:  # the judge's own batch_deadline bounds this; the margin only guards against a wedged loop
                scores += [v.score for v in fut.result(timeout=self.config.batch_deadline + 60)]
            except Exception as e:  # noqa: BLE001 - training never crashes because the judge did
                fut.cancel()
                scores += self._failed(e, n)
        self.judge.check_switched_off()  # raises JudgeSwitchedOff out of the trainer's step when the rule fires
        return scores

    def _failed(self, e: BaseException, n: int) -> List[None]:
        self.judge.record_failed_batch(n, e)
        return [None] * n
