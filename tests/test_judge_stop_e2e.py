"""Issue 21.1, end to end: a real ``swift rlhf`` GRPO run of the AWPO plugin on the CPU (SmolLM2-135M) whose
judge goes off after its start-up check -- the stub answers the two start-up requests, then replies with a
think block that eats the 32 tokens and ignores thinking off, as a Qwen3 judge behind a server that drops the
kwarg would -- ends with ``JudgeSwitchedOff`` and its reasons instead of training outcome-only in silence."""
from __future__ import annotations

import subprocess
import sys

import pytest

from testsupport.judge_stub import JudgeStub
from testsupport.swift_run import REPO, read_log, run_grpo, shortest_rows, train_steps

pytestmark = pytest.mark.slow


def test_a_judge_that_goes_off_ends_the_run_with_a_clear_error(smollm2_dir, tmp_path):
    subprocess.run([sys.executable, '-m', 'data_prep', 'demo', '--out', str(tmp_path / 'demo.jsonl')], cwd=REPO,
                   check=True, capture_output=True)
    rows = shortest_rows(tmp_path / 'demo.jsonl', tmp_path / 'train.jsonl', 8)
    out = tmp_path / 'run'
    with JudgeStub(mode='think', honor_thinking_off=False, ok_first=2, model='stub-judge') as stub:
        env = {'AWPO_JUDGE_BASE_URL': stub.base_url, 'AWPO_JUDGE_MODEL': 'stub-judge',
               'AWPO_JUDGE_GUIDED_JSON': 'json_schema', 'AWPO_JUDGE_MAX_RETRIES': '0',
               'AWPO_JUDGE_MISSING_PATIENCE': '2'}  # default 5: two batches keep the test short
        # one prompt x 4 completions per step, 16 new tokens: the smallest real step (the rule counts batches)
        rc, log = run_grpo(smollm2_dir, rows, out, ['awpo_outcome', 'awpo_judge'], steps=3, env=env,
                           extra=['--per_device_train_batch_size', '4', '--max_completion_length', '16'])
        requests = list(stub.requests)
    assert rc != 0, log[-3000:]
    assert 'JudgeSwitchedOff' in log, log[-3000:]
    assert 'in 2 consecutive batches' in log and 'reasons: thinking=8)' in log  # 2 steps x 4 completions
    assert 'judge.tolerate_missing: true' in log
    assert 'start-up probe: a real judge prompt was scored' in log  # the judge was fine at start
    steps = train_steps(read_log(out))
    assert len(steps) == 1 and steps[0]['awpo/judge_missing_frac'] == 1.0  # step 2 stopped before its update
    assert len(requests) > 2 and all(r.get('chat_template_kwargs') == {'enable_thinking': False} for r in requests)
