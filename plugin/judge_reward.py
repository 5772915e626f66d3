"""ms-swift glue of the reasoning reward R^reasoning (paper Sec. 3.2, appendix B): ``orms['awpo_judge']``.

Registered by ``plugin/registry.py`` (``orms['awpo_judge'] = AWPOJudge``), not here. ms-swift builds
``AWPOJudge(args=GRPOConfig)`` once per rank and, every step, awaits ``AWPOJudge()(completions, **kwargs)``
inside a fresh ``asyncio.run``. kwargs carry the dataset columns this reward reads:

    messages             history + the generated turn (the completion is the last message)
    ground_truth         JSON string, list of {"name", "arguments"}; [] = a direct text answer was right
    reference_rationale  the reference chain of thought for this step (may be empty)
    tools                the tool list (JSON string or list)

Returns one ``float | None`` per completion: ``None`` (NaN in the reward matrix) when the judge gave no
score — never 0. The settings come from ``AWPOConfig.load().judge`` (file ``$AWPO_CONFIG`` + ``AWPO_JUDGE_*``).
"""
from __future__ import annotations

import logging
from typing import Any, List, Optional

from swift.rewards import AsyncORM

from .config import AWPOConfig
from .judge import BaseJudge, JudgeSample, make_judge

logger = logging.getLogger('awpo.judge')


def _column(kwargs: dict, name: str, n: int, required: bool) -> List[Any]:
    col = kwargs.get(name)
    if col is None:
        if required:
            raise ValueError(f'awpo_judge: the dataset has no {name!r} column (see README, "Data contract"); '
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
        self.config = AWPOConfig.load().judge
        self.judge: BaseJudge = make_judge(self.config)
        self.judge.health_check()  # raises JudgeUnreachable unless judge.tolerate_unreachable

    @property
    def last_missing_share(self) -> float:
        return getattr(self.judge, 'last_missing_share', 0.0)

    async def __call__(self, completions: List[str], **kwargs) -> List[Optional[float]]:
        samples = build_samples(list(completions), kwargs)  # a dataset without the columns is a clear error
        try:
            verdicts = await self.judge.score(samples)
        except Exception as e:  # noqa: BLE001 - training never crashes because the judge did
            logger.error('[AWPO judge] judging failed (%s: %s): no judge score for this batch of %d',
                         type(e).__name__, str(e)[:200].replace(self.config.api_key() or '\0', '***'), len(samples))
            self.judge.last_missing_share = 1.0
            return [None] * len(samples)
        return [v.score for v in verdicts]
