"""CPU smoke: the real SmolLM2 served by swift deploy, scored by the real bfcl-eval and API-Bank scorers.

One server for both evaluators (``--base-url``) keeps the test within its budget; the serving path with
``--model-path`` is the same ``eval.serve.Server`` this test starts, and it must leave no process behind.
"""
import json
import os
import time

import pytest

from eval import serve as S
from eval import bfcl as B
from eval import apibank as A
from eval import tables as T
from eval import results as R


@pytest.mark.slow
def test_smollm2_smoke_bfcl_and_apibank(smollm2_dir, tmp_path, bfcl_python):
    t0 = time.time()
    srv = S.Server(model_path=str(smollm2_dir), backend='swift', served_name='smol',
                   extra_args=S.SMOLLM2_SWIFT_ARGS + ['--max_new_tokens', '32'],
                   log_path=str(tmp_path / 'server.log'), startup_timeout=300)
    res = tmp_path / 'results'
    with srv as url:
        assert url.startswith('http://127.0.0.1:')
        assert B.main(['--base-url', url, '--served-name', 'smol', '--name', 'smoke',
                       '--categories', 'simple_python,multi_turn_base', '--limit', '1',
                       '--results-dir', str(res)]) == 0
        assert A.main(['--base-url', url, '--served-name', 'smol', '--name', 'smoke', '--sample', '--limit', '1',
                       '--max-tokens', '32', '--results-dir', str(res)]) == 0
    assert srv.proc is None
    assert S.group_alive(srv.pgid) == [], 'server processes left behind'

    bfcl = json.loads((res / 'smoke' / 'bfcl.json').read_text())
    cats = bfcl['scores']['categories']
    assert set(cats) == {'simple_python', 'multi_turn_base'}
    assert cats['simple_python']['total_count'] == 1 and cats['multi_turn_base']['total_count'] == 1
    assert bfcl['scores']['Base'] == cats['multi_turn_base']['accuracy']
    cases = [json.loads(l) for l in (res / 'smoke' / 'bfcl.cases.jsonl').read_text().splitlines()]
    assert {c['id'] for c in cases} == {'simple_python_0', 'multi_turn_base_0'}
    assert all(c['result'] is not None for c in cases)

    api = json.loads((res / 'smoke' / 'apibank.json').read_text())
    recs = [json.loads(l) for l in (res / 'smoke' / 'apibank.cases.jsonl').read_text().splitlines()]
    assert [r['level'] for r in recs] == [1, 2, 3]
    expect = A.score(recs, [1, 2, 3])                          # summary agrees with its per-case file
    assert {k: api['scores'][k] for k in expect} == expect
    assert api['scores']['partial_columns'] == ['Overall', 'L1', 'L2', 'L3']   # the sample is not the test set
    # Each case is judged (a reason of the matcher) or a counted failure: at 32 tokens SmolLM2 is often cut
    # (length_cap), which the summary must count, not hide or crash on.
    assert all(r['reason'] in {'correct', 'no_call', 'extra_calls', 'wrong_name', 'bad_arguments',
                               'wrong_argument_names', 'wrong_argument_values', 'length_cap'} for r in recs)
    failed = [r['reason'] for r in recs if A.is_failure(r)]
    assert api['scores'].get('failed_cases', {}) == {k: failed.count(k) for k in set(failed)}
    assert all(r['finish_reason'] == 'length' for r in recs if r['reason'] == 'length_cap')
    md = T.render(R.load_runs(res, T.BENCHMARKS), [])
    assert '`smoke`' in md
    wall = time.time() - t0 - srv.lock_wait_s   # waiting for other jobs' heavy lock is not ours
    print(f'\n[smoke] wall {wall:.0f} s (+{srv.lock_wait_s:.0f} s lock wait); BFCL {cats}; API-Bank {api["scores"]}')
    assert wall < 360
