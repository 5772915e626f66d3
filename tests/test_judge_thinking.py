"""Issue 21.1: the judge cannot silently switch itself off. Against the real HTTP stub (testsupport/judge_stub.py)
through the real ``openai`` client: the client asks for thinking off itself (``chat_template_kwargs``), falls back
cleanly when a server rejects the kwarg, the start-up probe parses a real scored reply and names why not (think
block, empty reply, kwarg rejected, unparseable), and the stop rule ends a run whose judge stays off."""
from __future__ import annotations

import asyncio
import json
import logging

import pytest

from plugin.config import AWPOConfig, JudgeConfig
from plugin.judge import make_judge
from plugin.judge_base import JudgeSample, JudgeSwitchedOff, JudgeUnreachable
from plugin.judge_openai import THINKING_OFF
from testsupport.judge_stub import JudgeStub

GOLD = json.dumps([{'name': 'get_weather', 'arguments': {'city': 'Oslo'}}])
CALL = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>'


def cfg_for(stub, **kw) -> JudgeConfig:
    base = dict(backend='openai', base_url=stub.base_url, model='judge-stub', timeout=5.0, max_retries=0,
                guided_json='json_schema')
    base.update(kw)
    return JudgeConfig(**base).validate()


def samples(n: int, tag: str = ''):
    return [JudgeSample(completion=f'<think>step {tag}{i}</think>\n{CALL}', ground_truth=GOLD) for i in range(n)]


def asked_off(body: dict) -> bool:
    return body.get('chat_template_kwargs') == THINKING_OFF['chat_template_kwargs']


def test_the_client_asks_for_thinking_off_and_a_thinking_server_then_scores():
    """A Qwen3-like server that thinks by default: every request (probes included) carries enable_thinking=false,
    so the start-up check passes and the scores come back."""
    with JudgeStub(mode='think', score=0.75) as stub:
        judge = make_judge(cfg_for(stub))
        judge.health_check()
        assert [v.score for v in judge.score_sync(samples(3))] == [0.75] * 3
        assert len(stub.requests) == 5 and all(asked_off(b) for b in stub.requests)  # dialect + real probe + 3
        # the real probe is a real judge prompt (the Figure-2 rubric and the fenced sections), not a toy request
        assert 'Tool-use Consistency Evaluator' in stub.requests[1]['messages'][0]['content']
        assert '<candidate_action>' in stub.requests[1]['messages'][1]['content']
        assert stub.requests[1]['max_tokens'] == 32
    with JudgeStub(mode='ok') as stub:  # judge.disable_thinking: false sends no kwarg
        make_judge(cfg_for(stub, disable_thinking=False)).health_check()
        assert stub.requests and not any('chat_template_kwargs' in b for b in stub.requests)


@pytest.mark.parametrize('parser', [False, True], ids=['think-in-content', 'reasoning-parser'])
def test_a_judge_that_thinks_anyway_fails_at_start_with_the_reason(parser):
    """The server ignores enable_thinking=false (or the model always thinks): the 32 tokens go to <think>
    (in content, or in reasoning_content behind vLLM's --reasoning-parser). Start-up fails, saying so."""
    with JudgeStub(mode='think', honor_thinking_off=False, reasoning_parser=parser) as stub:
        judge = make_judge(cfg_for(stub))
        with pytest.raises(JudgeUnreachable) as e:
            judge.health_check()
        msg = str(e.value)
        assert 'a real judge prompt got no score' in msg and 'think block' in msg
        assert '32 output tokens' in msg and 'finish_reason=length' in msg
        assert 'client asked for thinking off' in msg and "--default-chat-template-kwargs" in msg
        # the same reply during a run: no score, reason 'thinking' (not a generic parse failure)
        assert {v.reason for v in judge.score_sync(samples(2))} == {'thinking'}


def test_an_empty_reply_and_an_unparseable_reply_fail_at_start():
    with JudgeStub(mode='empty') as stub:
        with pytest.raises(JudgeUnreachable, match=r'the reply was empty \(finish_reason=stop\)'):
            make_judge(cfg_for(stub)).health_check()
    with JudgeStub(mode='garbage') as stub:
        with pytest.raises(JudgeUnreachable, match=r"did not parse .*malformed_reply.*eight out of ten"):
            make_judge(cfg_for(stub)).health_check()
    with JudgeStub(mode='out_of_range') as stub:
        with pytest.raises(JudgeUnreachable, match=r'did not parse .*out_of_range'):
            make_judge(cfg_for(stub)).health_check()
    with JudgeStub(mode='garbage') as stub:  # tolerated: a warning, the run starts
        make_judge(cfg_for(stub, tolerate_unreachable=True)).health_check()


def test_a_server_rejecting_the_kwarg_is_asked_without_it_and_says_so(caplog):
    """OpenAI's own API answers 400 'Unrecognized request argument supplied: chat_template_kwargs'. The client
    drops the kwarg once (with a warning) and scores; a thinking server that rejects it fails at start naming
    the rejection."""
    with JudgeStub(mode='ok', score=0.5, reject_kwargs=True) as stub:
        judge = make_judge(cfg_for(stub))
        with caplog.at_level(logging.WARNING, logger='awpo.judge'):
            judge.health_check()
            verdicts = judge.score_sync(samples(3))
        assert [v.score for v in verdicts] == [0.5] * 3
        assert asked_off(stub.requests[0]) and not any(asked_off(b) for b in stub.requests[1:])
        assert len(stub.requests) == 6  # one rejected, then dialect check, real probe and 3 samples without it
        assert caplog.text.count('rejects chat_template_kwargs') == 1 and 'HTTP 400' in caplog.text
        assert 'thinking off NOT requested (rejected by the server)' in caplog.text
    with JudgeStub(mode='think', reject_kwargs=True) as stub:
        with pytest.raises(JudgeUnreachable) as e:
            make_judge(cfg_for(stub)).health_check()
        assert 'think block' in str(e.value) and 'server rejected chat_template_kwargs' in str(e.value)
        assert 'Unrecognized request argument' in str(e.value)


def test_a_model_mismatch_names_the_served_model_to_export():
    with JudgeStub(model='Qwen/Qwen3-30B-A3B') as stub:
        with pytest.raises(JudgeUnreachable) as e:
            make_judge(cfg_for(stub, model='Qwen/Qwen3-235B-A22B')).health_check()
    assert "'Qwen/Qwen3-235B-A22B' is not served there (served: Qwen/Qwen3-30B-A3B)" in str(e.value)
    assert 'AWPO_JUDGE_MODEL=Qwen/Qwen3-30B-A3B' in str(e.value)


def test_stop_rule_counts_consecutive_batches_above_the_share(caplog):
    """missing_patience=3, max_missing_share=0.5: two off batches, a good one resets the count, then three off
    batches in a row stop the run, naming the share, the count, the reasons and the setting that tolerates it."""
    with JudgeStub(mode='ok', score=0.9, honor_thinking_off=False) as stub:
        judge = make_judge(cfg_for(stub, missing_patience=3, max_missing_share=0.5))
        judge.health_check()

        def batch(mode, tag):
            stub.mode = mode
            judge.score_sync(samples(4, tag))
            judge.check_switched_off()

        batch('think', 'a')
        batch('think', 'b')
        batch('ok', 'c')          # a good batch: the count starts again
        assert judge.missing_streak == 0
        batch('think', 'd')
        batch('fail', 'e')
        with pytest.raises(JudgeSwitchedOff) as e:
            batch('think', 'f')
    msg = str(e.value)
    assert 'more than 50% of the samples in 3 consecutive batches' in msg
    assert 'thinking=8' in msg and 'http_5xx=4' in msg and 'judge.tolerate_missing: true' in msg
    assert 'serve it with thinking off' in msg


def test_stop_rule_share_is_strictly_above_and_tolerate_missing_keeps_training(caplog):
    with JudgeStub(mode='ok') as stub:
        judge = make_judge(cfg_for(stub, missing_patience=1, max_missing_share=0.5))
        half = samples(2, 'h')
        half[1].ground_truth = None  # one of two rows gets no score: 50 % is not above 50 %
        judge.score_sync(half)
        judge.check_switched_off()
        tolerant = make_judge(cfg_for(stub, missing_patience=1, tolerate_missing=True))
        stub.mode = 'empty'
        with caplog.at_level(logging.WARNING, logger='awpo.judge'):
            for tag in 'xy':
                tolerant.score_sync(samples(2, tag))
                tolerant.check_switched_off()  # no exception
    assert caplog.text.count('[tolerated]') == 1 and 'empty_reply=2' in caplog.text
    with pytest.raises(ValueError, match=r"judge.max_missing_share.*\[0, 1\)"):
        AWPOConfig.from_dict({'judge': {'max_missing_share': 1.0}})
    with pytest.raises(ValueError, match='judge.missing_patience'):
        AWPOConfig.from_dict({'judge': {'missing_patience': 0}})
    assert AWPOConfig.load(env={'AWPO_JUDGE_TOLERATE_MISSING': 'true'}).judge.tolerate_missing is True


@pytest.mark.parametrize('deferred', [False, True], ids=['reward-call', 'collect'])
def test_the_reward_raises_the_stop_rule_in_both_paths(deferred, monkeypatch):
    """ms-swift's reward call (stock GRPO) and the AWPO trainer's collect() (judge.overlap) both end the run;
    a batch that failed as a whole counts as fully missing."""
    from plugin.orm_judge import AWPOJudge
    monkeypatch.delenv('AWPO_CONFIG', raising=False)
    comps = [f'<think>why {i}</think>\n{CALL}' for i in range(2)]
    kw = dict(ground_truth=[GOLD] * 2, messages=[[{'role': 'user', 'content': 'weather?'}]] * 2)
    with JudgeStub(mode='think', honor_thinking_off=False, ok_first=2) as stub:  # off after the start-up check
        for k, v in {'AWPO_JUDGE_BASE_URL': stub.base_url, 'AWPO_JUDGE_MODEL': 'judge-stub',
                     'AWPO_JUDGE_MISSING_PATIENCE': '2', 'AWPO_JUDGE_GUIDED_JSON': 'json_schema'}.items():
            monkeypatch.setenv(k, v)
        reward = AWPOJudge()  # start-up check passes (the first two requests are answered)
        reward.defer = deferred

        def step():
            out = asyncio.run(reward(comps, **kw))
            return reward.collect() if deferred else out

        assert step() == [None, None]
        with pytest.raises(JudgeSwitchedOff, match='2 consecutive batches'):
            step()
        reward._failed(RuntimeError('boom'), 2)  # a failed batch: share 1, the streak goes on
        with pytest.raises(JudgeSwitchedOff, match=r'batch_failed \(RuntimeError\)=2'):
            reward.judge.check_switched_off()


def test_serve_judge_prints_the_served_name_to_export(repo_root):
    """Issue 21.9: each --size serves another name; the script prints the exact lines for the training nodes."""
    import subprocess
    p = subprocess.run(['bash', 'shells/serve_judge.sh', '--dry-run', '--size', '30b', '--port', '8123'],
                       cwd=repo_root, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert 'export AWPO_JUDGE_MODEL=Qwen/Qwen3-30B-A3B\n' in p.stderr and ':8123/v1\n' in p.stderr
    assert "not judge.model's default" in p.stderr
    assert "--default-chat-template-kwargs '{\"enable_thinking\": false}'" in p.stdout
    assert '--reasoning-parser' not in p.stdout
    p = subprocess.run(['bash', 'shells/serve_judge.sh', '--dry-run'], cwd=repo_root, capture_output=True, text=True)
    assert 'export AWPO_JUDGE_MODEL=Qwen/Qwen3-235B-A22B\n' in p.stderr and "default" not in p.stderr


def test_a_probe_that_times_out_names_the_setting():
    with JudgeStub(mode='hang', hang=2.0, ok_first=1) as stub:  # the dialect check answers, the real prompt hangs
        with pytest.raises(JudgeUnreachable, match=r'real judge prompt failed: APITimeoutError.*judge.timeout = 1 s'):
            make_judge(cfg_for(stub, timeout=1.0)).health_check()
