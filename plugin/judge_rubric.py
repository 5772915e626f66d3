"""The offline judge backend: pure rubric maths approximating Figure 2 (paper appendix B), and RubricJudge.

:class:`RubricJudge` (``judge.backend: rubric``, or ``auto`` without a ``base_url``) is offline and
deterministic: an approximation of Figure 2's four weighted dimensions — reasoning path 35 %, tool selection
30 %, parameter setting 25 %, execution strategy 10 % (:func:`rubric_reasoning_path`,
:func:`rubric_tool_selection`, :func:`rubric_parameters`, :func:`rubric_execution`) — computed from the ground
truth, the reference rationale and the completion, capped by Figure 2's hard constraints and snapped to the six
tiers (:func:`rubric_score`). It is NOT an LLM judge, and says so in the logs. A completion it cannot read gets
no score (``Verdict(None, 'unparseable')``), never an exception.
"""
from __future__ import annotations

import json
import logging
import re
from collections import Counter
from typing import Any, List, Optional, Sequence

from plugin.config import JudgeConfig
from plugin.judge_base import BaseJudge, JudgeSample, Verdict
from plugin.judge_prompt import cut_reasoning, snap_to_tier
from plugin.outcome_reward import json_equal, pair_calls
from plugin.toolcall_format import parse_completion, parse_ground_truth

logger = logging.getLogger('awpo.judge')

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


__all__ = ['rubric_reasoning_path', 'rubric_tool_selection', 'rubric_parameters', 'rubric_execution',
           'rubric_score', 'RubricJudge']
