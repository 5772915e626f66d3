"""The reasoning reward's judge (paper Sec. 3.2, R^reasoning in [0, 1]; appendix B): pick a backend.

Two backends behind one interface, ``await judge.score(samples) -> [Verdict]`` (``plugin/judge_base.py``):

* ``OpenAIJudge`` (``plugin/judge_openai.py``) — any OpenAI-compatible endpoint (vLLM serving Qwen3-235B-A22B
  in the paper): request dialects, disk cache, circuit breaker, cost ceilings.
* ``RubricJudge`` (``plugin/judge_rubric.py``) — offline and deterministic: an approximation of Figure 2's
  four weighted dimensions computed from the ground truth, the reference rationale and the completion. It is
  NOT an LLM judge, and says so in the logs.

The prompt and the strict reading of the reply: ``plugin/judge_prompt.py``; secret redaction and the judge's
own event loop: ``plugin/judge_runtime.py``; the ms-swift reward class: ``plugin/orm_judge.py``.
"""
from __future__ import annotations

from plugin.config import JudgeConfig
from plugin.judge_base import BaseJudge
from plugin.judge_openai import OpenAIJudge
from plugin.judge_rubric import RubricJudge


def make_judge(cfg: JudgeConfig) -> BaseJudge:
    """The backend named by ``cfg.resolved_backend`` (auto: openai if base_url is set, else rubric)."""
    cfg.validate()
    if cfg.resolved_backend == 'openai':
        return OpenAIJudge(cfg)
    return RubricJudge(cfg)
