"""The offline ``rubric`` backend (deterministic approximation of Figure 2) and the ms-swift glue."""
from __future__ import annotations

import asyncio
import json
import logging

import pytest

from plugin.config import JudgeConfig
from plugin.judge import make_judge
from plugin.judge_base import JudgeSample
from plugin.judge_prompt import TIERS
from plugin.judge_rubric import (RubricJudge, rubric_execution, rubric_parameters, rubric_reasoning_path,
                                 rubric_score, rubric_tool_selection)
from testsupport.judge_stub import JudgeStub

TOOLS = [{'name': 'get_weather', 'parameters': {'city': {'type': 'string'}, 'unit': {'type': 'string'}}},
         {'name': 'get_time', 'parameters': {'city': {'type': 'string'}}}]
GOLD = [{'name': 'get_weather', 'arguments': {'city': 'Oslo', 'unit': 'c'}}]
REF = 'The user asks for the weather in Oslo in Celsius, so call get_weather with city Oslo and unit c.'


def call(name, **args):
    return f'<tool_call>\n{json.dumps({"name": name, "arguments": args})}\n</tool_call>'


PERFECT = f'<think>{REF}</think>\n' + call('get_weather', city='Oslo', unit='c')
WRONG_UNIT = f'<think>{REF}</think>\n' + call('get_weather', city='Oslo', unit='f')
WRONG_TOOL = f'<think>{REF}</think>\n' + call('get_time', city='Oslo')
HALLUCINATED = f'<think>{REF}</think>\n' + call('weather_oracle', city='Oslo')
NO_REASONING = call('get_weather', city='Oslo', unit='c')


def test_hand_computed_dimensions():
    pred = [{'name': 'get_weather', 'arguments': {'city': 'Oslo', 'unit': 'f'}}]
    assert rubric_reasoning_path(REF, REF, GOLD) == 1.0
    assert rubric_tool_selection(pred, GOLD) == 1.0
    assert rubric_parameters(pred, GOLD) == 0.5          # 1 of the 2 keys {city, unit} has the gold value
    assert rubric_execution(pred, GOLD) == 1.0
    # 0.35 + 0.30 + 0.25 * 0.5 + 0.10 = 0.875 -> tier 0.90, but a parameter deviation caps at B (0.75).
    assert rubric_score(WRONG_UNIT, GOLD, REF, TOOLS) == 0.75
    # Reasoning F1: "a b c d" vs "a b x": common 2, P = 2/4, R = 2/3 -> F1 = 4/7.
    assert rubric_reasoning_path('a b c d', 'a b x', GOLD) == pytest.approx(4 / 7)
    assert rubric_execution([], GOLD) == 0.0 and rubric_execution(pred * 2, GOLD) == 0.5


def test_monotone_and_on_tiers():
    scores = {name: rubric_score(text, json.dumps(GOLD), REF, json.dumps(TOOLS)) for name, text in
              [('perfect', PERFECT), ('wrong_unit', WRONG_UNIT), ('wrong_tool', WRONG_TOOL),
               ('hallucinated', HALLUCINATED), ('no_reasoning', NO_REASONING)]}
    assert set(scores.values()) <= set(TIERS)
    assert scores['perfect'] == 1.0
    assert scores['perfect'] >= scores['wrong_unit'] >= scores['wrong_tool'] >= scores['hallucinated']
    assert scores['wrong_tool'] <= 0.5        # missing gold tool: at most C
    assert scores['hallucinated'] <= 0.25     # invented tool: at most D
    assert scores['no_reasoning'] < scores['perfect']


def test_direct_answer_rows():
    assert rubric_score('<think>No tool fits; answer directly.</think>\nHello!', '[]',
                        'No tool fits; answer directly.') == 1.0
    assert rubric_score('<think>No tool fits; answer directly.</think>\n' + call('get_time', city='x'), '[]',
                        'No tool fits; answer directly.', TOOLS) <= 0.25


def test_deterministic_and_never_none(caplog):
    with caplog.at_level(logging.WARNING, logger='awpo.judge'):
        judge = make_judge(JudgeConfig())  # auto without base_url -> rubric
    assert isinstance(judge, RubricJudge)
    assert 'NOT an LLM judge' in caplog.text
    batch = [JudgeSample(completion=t, ground_truth=json.dumps(GOLD), reference_rationale=REF, tools=TOOLS)
             for t in (PERFECT, WRONG_UNIT, WRONG_TOOL, HALLUCINATED, NO_REASONING, 'garbage <tool_call>')]
    a = [v.score for v in judge.score_sync(batch)]
    b = [v.score for v in make_judge(JudgeConfig(backend='rubric')).score_sync(batch)]
    assert a == b and None not in a and a[0] == 1.0


def test_awpo_judge_glue_against_the_stub(monkeypatch):
    """AWPOJudge as ms-swift calls it: built with args, awaited under asyncio.run with the reward kwargs."""
    from swift.rewards import AsyncORM

    from plugin.orm_judge import AWPOJudge
    assert issubclass(AWPOJudge, AsyncORM) and AWPOJudge.awpo_role == 'judge'
    completions = [PERFECT, WRONG_TOOL, PERFECT]
    history = [{'role': 'system', 'content': 'You are a tool user.'},
               {'role': 'user', 'content': 'Weather in Oslo, Celsius?'}]
    kwargs = dict(messages=[history + [{'role': 'assistant', 'content': c}] for c in completions],
                  ground_truth=[json.dumps(GOLD)] * 3, reference_rationale=[REF] * 3,
                  tools=[json.dumps(TOOLS)] * 3, trainer_state=None, prompt_id=['p0'] * 3)
    with JudgeStub(mode='ok', score=0.75, latency=0.05) as stub:
        monkeypatch.setenv('AWPO_JUDGE_BASE_URL', stub.base_url)
        monkeypatch.setenv('AWPO_JUDGE_MODEL', 'judge-stub')
        monkeypatch.setenv('AWPO_JUDGE_MAX_RETRIES', '0')
        monkeypatch.delenv('AWPO_CONFIG', raising=False)
        reward = AWPOJudge(args=None)
        assert asyncio.run(reward(completions, **kwargs)) == [0.75, 0.75, 0.75]
        # guided_json auto: one start-up probe of the dialect, then one real judge prompt (issue 21)
        probe, real_probe, *judged = stub.requests
        assert probe['response_format']['type'] == 'json_schema' and len(probe['messages']) == 1
        assert len(real_probe['messages']) == 2 and real_probe['response_format']['type'] == 'json_schema'
        assert len(judged) == 2  # the two identical completions were judged once
        user = judged[0]['messages'][1]['content']
        assert 'You are a tool user.' in user and 'Weather in Oslo, Celsius?' in user
        assert user.count('get_weather') >= 2
        stub.mode = 'fail'
        out = asyncio.run(reward([c.replace('<think>', '<think>Anew. ') for c in completions], **kwargs))
        assert out == [None, None, None] and reward.last_missing_share == 1.0
    monkeypatch.delenv('AWPO_JUDGE_BASE_URL')
    offline = AWPOJudge()  # no endpoint configured: the rubric backend
    assert asyncio.run(offline(completions, **kwargs)) == [1.0, rubric_score(WRONG_TOOL, GOLD, REF, TOOLS), 1.0]
    with pytest.raises(ValueError, match="no 'ground_truth' column"):
        asyncio.run(offline(completions, messages=kwargs['messages']))

    async def broken(samples):  # a bug inside the judge must not stop training
        raise RuntimeError('boom')
    monkeypatch.setattr(offline.judge, '_score', broken)
    assert asyncio.run(offline(completions, **kwargs)) == [None, None, None]
    assert offline.last_missing_share == 1.0


def test_rubric_reads_only_the_reasoning_budget():
    padded = f'<think>{REF} ' + 'synergy ' * 500 + '</think>\n' + call('get_weather', city='Oslo', unit='c')
    assert rubric_score(padded, GOLD, REF, TOOLS) < 1.0  # the padding dilutes the overlap with the reference
    assert rubric_score(padded, GOLD, REF, TOOLS, reasoning_budget_chars=len(REF)) == 1.0
    judge = make_judge(JudgeConfig(backend='rubric', reasoning_budget_chars=len(REF)))
    v = judge.score_sync([JudgeSample(completion=padded, ground_truth=GOLD, reference_rationale=REF)])[0]
    assert v.score == 1.0 and v.reasoning_cut and judge.stats['reasoning_cut'] == 1
