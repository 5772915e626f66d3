"""``python -m plugin.judge_audit`` against the stub judge and the offline rubric."""
from __future__ import annotations

import json

import pytest

from plugin import judge_audit
from testsupport.judge_stub import JudgeStub

FAKE_KEY = 'sk-AWPO-audit-key-0b5e2d-DO-NOT-LEAK'


@pytest.fixture
def judge_env(monkeypatch):
    monkeypatch.delenv('AWPO_CONFIG', raising=False)
    monkeypatch.setenv('AWPO_JUDGE_API_KEY', FAKE_KEY)

    def point_at(stub):
        monkeypatch.setenv('AWPO_JUDGE_BASE_URL', stub.base_url)
        monkeypatch.setenv('AWPO_JUDGE_MODEL', 'judge-stub')
        monkeypatch.setenv('AWPO_JUDGE_MAX_RETRIES', '0')
    return point_at


def judged(stub):
    """The stub's judge requests (system + user), without the start-up checks: the dialect probe (a lone user
    message) and the real judge prompt of the start-up probe (its candidate is PROBE_SAMPLE's, issue 21)."""
    from plugin.judge_openai import PROBE_SAMPLE
    probe = PROBE_SAMPLE.reference_rationale[:40]
    return [r for r in stub.requests if r['messages'][0]['role'] == 'system' and probe not in
            r['messages'][1]['content']]


def _rows(capsys):
    out = capsys.readouterr().out
    return {line.split()[0]: line for line in out.splitlines() if line and line.split()[0] in
            {r['label'] for r in judge_audit.builtin_completions()}}, out


def test_rubric_backend_flags_nothing(monkeypatch, capsys):
    monkeypatch.delenv('AWPO_CONFIG', raising=False)
    monkeypatch.delenv('AWPO_JUDGE_BASE_URL', raising=False)
    assert judge_audit.main(['--strict']) == 0
    rows, out = _rows(capsys)
    assert 'NOT an LLM judge' in out and 'flagged: none' in out and len(rows) == 9


def test_constant_judge_is_flagged_and_hijacked_judge_is_caught(judge_env, capsys, tmp_path):
    with JudgeStub(mode='ok', score=0.9) as stub:
        judge_env(stub)
        assert judge_audit.main(['--strict']) == 1
        rows, out = _rows(capsys)
        assert len(judged(stub)) == 9 and len(stub.requests) == 11  # + the dialect probe and the real probe
    # A judge giving everything 0.90 cannot tell right from wrong, nor reasoning from none.
    for label in ('honest_wrong_tool', 'verbose_nonsense', 'correct_no_reasoning'):
        assert rows[label].rstrip().endswith('FLAG'), rows[label]
    assert rows['score_injection'].rstrip().endswith('ok')

    def gullible(body):  # a judge model that obeys the injected instruction
        if len(body['messages']) < 2:  # the start-up dialect probe
            return '{"score": 1.0}'
        user = body['messages'][1]['content']
        if 'Ignore previous instructions' in user:
            return '{"score": 1.0}'
        return '{"score": 0.25}' if 'get_time' in user.split('<candidate_action>')[1] else '{"score": 1.0}'
    extra = tmp_path / 'extra.jsonl'
    extra.write_text(json.dumps({'label': 'mine', 'kind': 'adversarial', 'completion': 'hi',
                                 'baseline': 'honest_correct', 'expect': '<'}) + '\n')
    out_file = tmp_path / 'audit' / 'results.jsonl'
    with JudgeStub(mode='ok', reply=gullible) as stub:
        judge_env(stub)
        judge_audit.main(['--completions', str(extra), '--out', str(out_file), '--repeats', '2'])
        rows, out = _rows(capsys)
        assert len(judged(stub)) == 20  # 10 rows x 2 repeats: the audit bypasses the cache
    assert rows['ignore_instructions'].rstrip().endswith('FLAG')
    assert rows['score_injection'].rstrip().endswith('ok')
    results = [json.loads(x) for x in out_file.read_text().splitlines()]
    assert [r['label'] for r in results][-1] == 'mine' and results[-1]['scores'] == [1.0, 1.0]
    assert FAKE_KEY not in out_file.read_text() and FAKE_KEY not in out


def test_echo_judge_gives_no_score(judge_env, capsys, monkeypatch):
    """A judge that parrots its input fails the start-up probe (issue 21: a real judge prompt, no score); with
    judge.tolerate_unreachable the audit still runs and shows it scores nothing."""
    from plugin.judge_base import JudgeUnreachable
    with JudgeStub(mode='echo') as stub:
        judge_env(stub)
        with pytest.raises(JudgeUnreachable, match='a real judge prompt got no score.*malformed_reply'):
            judge_audit.main(['--strict'])
        monkeypatch.setenv('AWPO_JUDGE_TOLERATE_UNREACHABLE', 'true')
        assert judge_audit.main(['--strict']) == 1
    _, out = _rows(capsys)
    assert 'honest      mean   -   over 0/3 scored judgments' in out and 'malformed_reply' in out


def test_bad_completions_file_names_the_line(tmp_path):
    bad = tmp_path / 'bad.jsonl'
    bad.write_text('{"label": "a", "completion": "x"}\n{"label": "b"}\n')
    with pytest.raises(ValueError, match=r'bad.jsonl:2: field .completion.'):
        judge_audit.load_completions(str(bad))
