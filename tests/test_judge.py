"""The judge client against a real OpenAI-compatible HTTP server on 127.0.0.1 (testsupport/judge_stub.py), through
the real ``openai`` client: concurrency, every fault -> None, circuit breaker, cache, health check."""
from __future__ import annotations

import json
import logging
import subprocess
import sys
import time

import pytest

from plugin.config import JudgeConfig
from plugin.judge import make_judge
from plugin.judge_base import JudgeSample, JudgeUnreachable
from plugin.judge_openai import CircuitBreaker, OpenAIJudge
from testsupport.judge_stub import JudgeStub

GOLD = json.dumps([{'name': 'get_weather', 'arguments': {'city': 'Oslo'}}])


def cfg_for(stub, **kw) -> JudgeConfig:
    # A fixed dialect: these tests count chat requests, and `auto` adds one start-up probe.
    base = dict(backend='openai', base_url=stub.base_url, model='judge-stub', timeout=5.0, max_retries=0,
                guided_json='json_schema')
    base.update(kw)
    return JudgeConfig(**base).validate()


def samples(n: int, tag: str = '') -> list:
    return [JudgeSample(completion=f'<think>check the weather {tag}{i}</think>\n<tool_call>\n'
                                   '{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>',
                        history=[{'role': 'user', 'content': 'Weather in Oslo?'}], ground_truth=GOLD,
                        reference_rationale='The user wants the weather in Oslo: call get_weather.',
                        tools=[{'name': 'get_weather', 'parameters': {'city': {'type': 'string'}}}])
            for i in range(n)]


def timed(judge, batch: list) -> tuple:
    """(verdicts, wall seconds) of one batch judged synchronously."""
    t0 = time.perf_counter()
    verdicts = judge.score_sync(batch)
    return verdicts, time.perf_counter() - t0


def test_64_samples_cost_one_round_trip():
    """64 samples at 0.3 s latency: judged concurrently, well under 2 s (serially it would be 19 s)."""
    with JudgeStub(mode='ok', latency=0.3, score=0.75) as stub:
        verdicts, wall = timed(make_judge(cfg_for(stub)), samples(64))
        assert len(stub.requests) == 64
    print(f'\njudge wall time, 64 samples at 0.3 s latency, concurrency 64: {wall:.3f} s')
    assert [v.score for v in verdicts] == [0.75] * 64
    assert wall < 2.0, f'64 judgments took {wall:.2f} s'
    assert wall >= 0.3


def test_concurrency_is_bounded_by_the_semaphore():
    """concurrency=4, 8 samples at 0.3 s: two waves -> at least 0.6 s."""
    with JudgeStub(mode='ok', latency=0.3) as stub:
        verdicts, wall = timed(make_judge(cfg_for(stub, concurrency=4)), samples(8))
    assert all(v.score == 0.9 for v in verdicts)
    assert wall >= 0.6


@pytest.mark.parametrize('mode,kw,reason', [
    ('hang', dict(timeout=0.3), 'timeout'),
    ('fail', dict(), 'http_5xx'),
    ('garbage', dict(), 'malformed_reply'),
    ('out_of_range', dict(), 'out_of_range'),
    ('echo', dict(), 'malformed_reply'),
    ('401', dict(), 'http_4xx'),
])
def test_each_fault_gives_none_not_zero(mode, kw, reason):
    with JudgeStub(mode=mode, hang=1.5) as stub:
        judge = make_judge(cfg_for(stub, **kw))
        verdicts = judge.score_sync(samples(3))
        assert len(stub.requests) == 3
    assert [v.score for v in verdicts] == [None] * 3
    assert {v.reason for v in verdicts} == {reason}
    assert judge.stats['missing'] == 3 and judge.last_missing_share == 1.0


def test_connection_refused_gives_none():
    stub = JudgeStub()
    stub.start()
    stub.stop()  # the port is now closed
    judge = make_judge(cfg_for(stub, tolerate_unreachable=True))
    verdicts = judge.score_sync(samples(4))
    assert [v.score for v in verdicts] == [None] * 4
    assert {v.reason for v in verdicts} == {'connection'}


def test_429_is_retried_by_the_sdk_honouring_retry_after_then_none():
    with JudgeStub(mode='429', retry_after=0.25) as stub:
        verdicts, wall = timed(make_judge(cfg_for(stub, max_retries=2)), samples(1))
        assert len(stub.requests) == 3  # 1 + 2 SDK retries, no second retry layer
    assert verdicts[0].score is None and verdicts[0].reason == 'rate_limited'
    assert wall >= 0.5  # two waits of Retry-After 0.25 s


def test_transient_5xx_recovered_by_the_sdk_retry():
    with JudgeStub(mode='ok', fail_first=1, score=0.5) as stub:
        judge = make_judge(cfg_for(stub, max_retries=1))
        verdicts = judge.score_sync(samples(1))
        assert len(stub.requests) == 2
    assert verdicts[0].score == 0.5


def test_batch_deadline_cuts_slow_judgments():
    with JudgeStub(mode='ok', latency=1.5) as stub:
        verdicts, wall = timed(make_judge(cfg_for(stub, batch_deadline=0.4)), samples(5))
    assert [v.reason for v in verdicts] == ['deadline'] * 5 and all(v.score is None for v in verdicts)
    assert wall < 1.2


def test_circuit_breaker_stops_hammering_a_dead_endpoint():
    with JudgeStub(mode='fail') as stub:
        judge = make_judge(cfg_for(stub, concurrency=2, breaker_failures=3, breaker_cooldown=0.5))
        verdicts = judge.score_sync(samples(40))
        first = len(stub.requests)
        # 3 failures open it; at most `concurrency` requests were already in flight.
        assert 3 <= first <= 3 + 2
        assert sum(v.reason == 'breaker_open' for v in verdicts) >= 35
        assert all(v.score is None for v in verdicts)
        judge.score_sync(samples(40, tag='b'))  # still open: not one request
        assert len(stub.requests) == first
        time.sleep(0.6)  # cooldown over: one probe; the endpoint is back
        stub.mode = 'ok'
        verdicts = judge.score_sync(samples(10, tag='c'))
        # Half-open: exactly one probe goes out; samples reaching the breaker while it flies get no score.
        assert len(stub.requests) == first + 1
        assert verdicts[0].score == 0.9 and not judge.breaker.is_open
        verdicts = judge.score_sync(samples(10, tag='d'))  # closed again: business as usual
        assert len(stub.requests) == first + 11
    assert [v.score for v in verdicts] == [0.9] * 10


def test_circuit_breaker_unit():
    now = [0.0]
    b = CircuitBreaker(failures=2, cooldown=10, clock=lambda: now[0])
    assert b.allow()
    b.record(False)
    assert b.allow() and not b.is_open
    b.record(False)
    assert b.is_open and not b.allow()
    now[0] = 10.0
    assert b.allow()          # the probe
    assert not b.allow()      # only one
    b.record(False)           # probe failed: open again for a full cooldown
    assert not b.allow()
    now[0] = 20.0
    assert b.allow()
    b.record(True)
    assert not b.is_open and b.allow() and b.allow()


def test_cache_judges_identical_requests_once(tmp_path):
    cache = tmp_path / 'out' / 'judge_cache.jsonl'
    with JudgeStub(mode='ok', score=0.75) as stub:
        judge = make_judge(cfg_for(stub, cache_path=str(cache)))
        batch = samples(6) + samples(6)  # in-batch duplicates too
        v1 = judge.score_sync(batch)
        assert len(stub.requests) == 6
        v2 = judge.score_sync(samples(6))
        assert len(stub.requests) == 6
        assert [v.reason for v in v2] == ['cache'] * 6
        # The disk cache survives a new Judge object (a resumed run), and a torn last line is skipped.
        with open(cache, 'a') as f:
            f.write('{"key": "abc", "sco')
        judge2 = make_judge(cfg_for(stub, cache_path=str(cache)))
        v3 = judge2.score_sync(samples(6))
        assert len(stub.requests) == 6
    assert [v.score for v in v1] == [0.75] * 12 and [v.score for v in v3] == [0.75] * 6
    lines = cache.read_text().splitlines()
    assert len(lines) == 7 and all(set(json.loads(x)) == {'key', 'score'} for x in lines[:6])


def test_failures_are_not_cached():
    with JudgeStub(mode='garbage') as stub:
        judge = make_judge(cfg_for(stub))
        judge.score_sync(samples(2))
        stub.mode = 'ok'
        verdicts = judge.score_sync(samples(2))
        assert len(stub.requests) == 4
    assert [v.score for v in verdicts] == [0.9, 0.9]


def test_health_check_dead_endpoint_is_a_clear_error(caplog):
    stub = JudgeStub()
    stub.start()
    stub.stop()
    judge = OpenAIJudge(cfg_for(stub))
    with pytest.raises(JudgeUnreachable) as err:
        judge.health_check()
    msg = str(err.value)
    assert stub.base_url in msg and 'tolerate_unreachable' in msg and 'APIConnectionError' in msg
    tolerant = OpenAIJudge(cfg_for(stub, tolerate_unreachable=True))
    with caplog.at_level(logging.WARNING, logger='awpo.judge'):
        tolerant.health_check()  # no exception
    assert 'tolerated' in caplog.text


def test_health_check_passes_and_names_a_model_not_served():
    with JudgeStub(model='judge-stub') as stub:
        OpenAIJudge(cfg_for(stub)).health_check()
        assert stub.model_requests == 1
        with pytest.raises(JudgeUnreachable, match="'Qwen/Qwen3-235B-A22B' is not served there"):
            OpenAIJudge(cfg_for(stub, model='Qwen/Qwen3-235B-A22B')).health_check()


def test_stub_runs_as_a_process_and_can_be_killed(repo_root):
    """`python -m testsupport.judge_stub` (what the end-to-end swift test runs): ready line, serves, dies on kill."""
    proc = subprocess.Popen([sys.executable, '-m', 'testsupport.judge_stub', '--port', '0', '--mode', 'ok',
                             '--latency', '0.05', '--score', '0.5'], cwd=repo_root, stdout=subprocess.PIPE,
                            text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith('judge stub listening on http://127.0.0.1:')
        base_url = line.split()[4]
        stub_like = type('S', (), {'base_url': base_url})()
        judge = make_judge(cfg_for(stub_like))
        judge.health_check()
        assert [v.score for v in judge.score_sync(samples(3))] == [0.5] * 3
        proc.terminate()
        assert proc.wait(timeout=10) == 0
        verdicts = judge.score_sync(samples(2, tag='after'))
        assert [v.reason for v in verdicts] == ['connection'] * 2
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_broken_ground_truth_row_gives_none_and_is_not_sent(caplog):
    rows = samples(3)
    rows[1].ground_truth = '[{"name": "get_weather", "arguments": '  # torn JSON
    rows[2].ground_truth = None
    with JudgeStub(mode='ok') as stub:
        judge = make_judge(cfg_for(stub))
        with caplog.at_level(logging.WARNING, logger='awpo.judge'):
            verdicts = judge.score_sync(rows)
        assert len(stub.requests) == 1
    assert [v.score for v in verdicts] == [0.9, None, None]
    assert [v.reason for v in verdicts] == ['ok', 'bad_ground_truth', 'bad_ground_truth']
    assert 'row 1: ground_truth is not valid JSON' in caplog.text and 'row 2: ground_truth is missing' in caplog.text


def test_a_probe_cancelled_by_the_deadline_does_not_wedge_the_breaker():
    with JudgeStub(mode='fail') as stub:
        judge = make_judge(cfg_for(stub, concurrency=1, breaker_failures=1, breaker_cooldown=0.0,
                                   batch_deadline=0.3))
        judge.score_sync(samples(1))
        assert judge.breaker.is_open and len(stub.requests) == 1
        stub.mode, stub.latency = 'ok', 1.0
        assert judge.score_sync(samples(1, tag='p'))[0].reason == 'deadline'  # the probe, cut by the deadline
        assert len(stub.requests) == 2 and not judge.breaker.probing
        stub.latency = 0.0
        assert judge.score_sync(samples(1, tag='q'))[0].score == 0.9  # a new probe goes out and closes it
        assert len(stub.requests) == 3 and not judge.breaker.is_open
