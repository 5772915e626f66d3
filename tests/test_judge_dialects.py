"""Issue 12 (fast part) against the real HTTP stub: structured-output dialects (auto probe, one switch in-run,
clear start-up errors), the judge run deferred behind the step, hostile model text; issue 11.C.4: the API key
appears in no text that leaves the judge (logs at DEBUG, exceptions, audit output, files)."""
from __future__ import annotations

import asyncio
import json
import logging
import time

import pytest

from plugin.config import AWPOConfig, JudgeConfig
from plugin.judge import make_judge
from plugin.judge_base import JudgeSample, JudgeUnreachable
from plugin.judge_runtime import redact
from testsupport.judge_stub import JudgeStub

KEY = 'sk-AWPO-dialect-key-93be71-DO-NOT-LEAK'
GOLD = json.dumps([{'name': 'get_weather', 'arguments': {'city': 'Oslo'}}])
CALL = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>'


def cfg_for(stub, **kw) -> JudgeConfig:
    base = dict(backend='openai', base_url=stub.base_url, model='judge-stub', timeout=5.0, max_retries=0)
    base.update(kw)
    return JudgeConfig(**base).validate()


def samples(n: int):
    return [JudgeSample(completion=f'<think>step {i}</think>\n{CALL}', ground_truth=GOLD) for i in range(n)]


def kinds(requests):
    return [(r.get('response_format') or {}).get('type', 'none') for r in requests]


def test_config_dialects_and_old_booleans():
    assert AWPOConfig.from_dict({'judge': {'guided_json': True}}).judge.guided_json == 'auto'
    assert AWPOConfig.from_dict({'judge': {'guided_json': False}}).judge.guided_json == 'none'
    assert AWPOConfig.load(env={'AWPO_JUDGE_GUIDED_JSON': 'json_object'}).judge.guided_json == 'json_object'
    assert JudgeConfig().guided_json == 'auto'
    with pytest.raises(ValueError, match="judge.guided_json.*auto, json_schema, json_object, none"):
        AWPOConfig.from_dict({'judge': {'guided_json': 'xml'}})


@pytest.mark.parametrize('accepted, picked', [(('json_schema', 'json_object', 'none'), 'json_schema'),
                                              (('json_object', 'none'), 'json_object'),
                                              (('none',), 'none')])
def test_auto_probes_once_and_picks_the_first_accepted_dialect(accepted, picked, caplog):
    with JudgeStub(mode='ok', score=0.75, dialects=accepted) as stub:
        judge = make_judge(cfg_for(stub))
        with caplog.at_level(logging.INFO, logger='awpo.judge'):
            judge.health_check()
        assert judge.dialect == picked and f'dialect {picked}' in caplog.text
        n_probe = len(stub.requests)  # one tiny request per dialect tried, then one real judge prompt (issue 21)
        assert n_probe == ('json_schema', 'json_object', 'none').index(picked) + 2
        assert kinds(stub.requests[n_probe - 2:n_probe]) == [picked, picked]
        assert [v.score for v in judge.score_sync(samples(3))] == [0.75] * 3
        assert set(kinds(stub.requests[n_probe:])) == {picked}
        if picked == 'json_object':  # llama-cpp-python's dialect carries the schema itself
            assert stub.requests[-1]['response_format']['schema']['required'] == ['score']


def test_dialect_error_during_the_run_switches_once_with_a_warning(caplog):
    with JudgeStub(mode='ok', score=0.5) as stub:
        judge = make_judge(cfg_for(stub))
        judge.health_check()
        assert judge.dialect == 'json_schema'
        stub.dialects = ('json_object', 'none')  # e.g. the server was swapped for llama-cpp-python's
        with caplog.at_level(logging.WARNING, logger='awpo.judge'):
            verdicts = judge.score_sync(samples(6))
        assert [v.score for v in verdicts] == [0.5] * 6  # no score lost to the switch
        assert judge.dialect == 'json_object' and caplog.text.count('during the run') == 1
        stub.dialects = ('none',)  # a second change: no second switch, the scores are missing (and say why)
        later = judge.score_sync(samples(8)[6:])
        assert [v.score for v in later] == [None, None] and {v.reason for v in later} == {'http_5xx'}
        assert judge.dialect == 'json_object' and caplog.text.count('during the run') == 1


def test_fixed_dialect_rejected_at_start_up_names_the_setting_that_fixes_it():
    with JudgeStub(mode='ok', dialects=('json_object', 'none')) as stub:
        judge = make_judge(cfg_for(stub, guided_json='json_schema'))
        with pytest.raises(JudgeUnreachable) as e:
            judge.health_check()
    msg = str(e.value)
    assert 'rejects judge.guided_json: json_schema' in msg and 'HTTP 500' in msg
    assert 'set judge.guided_json: json_object' in msg and 'AWPO_JUDGE_GUIDED_JSON=json_object' in msg


def test_a_non_dialect_failure_is_not_blamed_on_the_dialect():
    with JudgeStub(mode='401') as stub:
        judge = make_judge(cfg_for(stub))
        with pytest.raises(JudgeUnreachable, match='HTTP 401') as e:
            judge.health_check()
    assert 'guided_json' not in str(e.value) and 'serve_judge.sh' in str(e.value)


@pytest.mark.parametrize('mode', ['401', '500auth'])
def test_api_key_appears_in_no_text_that_leaves_the_judge(mode, monkeypatch, tmp_path, caplog, capsys):
    """The server echoes the Authorization header in its 4xx/5xx body; logs at DEBUG (ours, openai's, httpx's),
    exceptions, the audit table and its output file, and the cache file never show the key."""
    from plugin import judge_audit
    from plugin.orm_judge import AWPOJudge
    monkeypatch.setenv('AWPO_JUDGE_API_KEY', KEY)
    monkeypatch.delenv('AWPO_CONFIG', raising=False)
    with JudgeStub(mode=mode) as stub, caplog.at_level(logging.DEBUG):
        monkeypatch.setenv('AWPO_JUDGE_BASE_URL', stub.base_url)
        monkeypatch.setenv('AWPO_JUDGE_MODEL', 'judge-stub')
        monkeypatch.setenv('AWPO_JUDGE_MAX_RETRIES', '1')
        monkeypatch.setenv('AWPO_JUDGE_TOLERATE_UNREACHABLE', 'true')
        monkeypatch.setenv('AWPO_JUDGE_CACHE_PATH', str(tmp_path / 'cache.jsonl'))
        out = tmp_path / 'audit.jsonl'
        judge_audit.main(['--out', str(out)])
        reward = AWPOJudge()
        kw = dict(ground_truth=[GOLD] * 2, messages=[[{'role': 'user', 'content': 'w?'}]] * 2)
        assert asyncio.run(reward([CALL, 'hi'], **kw)) == [None, None]
        reward._failed(RuntimeError(f'boom Bearer {KEY}'), 1)  # an exception text carrying the key
        judge = make_judge(cfg_for(stub))
        try:
            judge.health_check()
        except JudgeUnreachable as e:
            assert KEY not in str(e)
        assert KEY in stub.request_headers[0]['authorization']  # the stub did get (and echo) the key
    text = caplog.text + capsys.readouterr().out + capsys.readouterr().err
    assert 'invalid key in' in text  # the server's echo did reach the logs ...
    assert KEY not in text           # ... without the key
    for f in tmp_path.rglob('*'):
        if f.is_file():
            assert KEY not in f.read_text(), f
    assert redact(f'x {KEY} y') == 'x *** y'


def test_hostile_completions_never_raise_and_are_still_judged():
    deep = '<tool_call>\n' + '{"a": ' * 5000 + '1' + '}' * 5000 + '\n</tool_call>'
    brackets = '[' * 100_000
    huge = '<think>' + 'x' * 1_000_000 + '</think>\n' + CALL
    surrogate = '<think>why \ud800</think>\nthe answer \udfff'  # a lone surrogate cannot be encoded as UTF-8
    with JudgeStub(mode='ok', score=0.25) as stub:
        judge = make_judge(cfg_for(stub, guided_json='json_schema'))
        verdicts = judge.score_sync([JudgeSample(completion=c, ground_truth=GOLD)
                                     for c in (deep, brackets, huge, surrogate)])
        assert [v.score for v in verdicts] == [0.25] * 4
        assert all(len(r['messages'][1]['content']) < 50_000 for r in stub.requests)  # bounded requests
    rubric = make_judge(JudgeConfig(backend='rubric'))
    out = rubric.score_sync([JudgeSample(completion=c, ground_truth=GOLD) for c in (deep, brackets, huge)])
    assert len(out) == 3 and all(v.score is None or 0 <= v.score <= 1 for v in out)


def test_deferred_judge_returns_placeholders_at_once_and_collect_waits(monkeypatch):
    """What the AWPO trainer does with judge.overlap: the reward call returns before the judge answers; the
    scores arrive through collect(), in call order, equal to a non-deferred call's."""
    from plugin.orm_judge import AWPOJudge
    monkeypatch.delenv('AWPO_CONFIG', raising=False)
    completions = [f'<think>why {i}</think>\n{CALL}' for i in range(4)]
    kw = dict(ground_truth=[GOLD] * 4, messages=[[{'role': 'user', 'content': 'weather?'}]] * 4)
    with JudgeStub(mode='content', latency=0.5) as stub:
        monkeypatch.setenv('AWPO_JUDGE_BASE_URL', stub.base_url)
        monkeypatch.setenv('AWPO_JUDGE_MODEL', 'judge-stub')
        plain = AWPOJudge()
        expected = asyncio.run(plain(completions, **kw))
        deferred = AWPOJudge()
        deferred.defer = True
        t0 = time.perf_counter()
        first = asyncio.run(deferred(completions[:2], **{k: v[:2] for k, v in kw.items()}))
        second = asyncio.run(deferred(completions[2:], **{k: v[2:] for k, v in kw.items()}))
        returned = time.perf_counter() - t0
        assert first == [None, None] and second == [None, None] and returned < 0.3  # did not wait
        assert deferred.collect() == expected and time.perf_counter() - t0 >= 0.5
        assert deferred.collect() is None  # nothing pending any more
    assert len(set(expected)) > 1 and None not in expected  # the content mode scores differ per completion
