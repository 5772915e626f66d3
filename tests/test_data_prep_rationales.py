"""data_prep rationales / Batch API / SFT export, against a real OpenAI-compatible HTTP stub on 127.0.0.1
(aiohttp server, real `openai.AsyncOpenAI` client): concurrency limit, row attribution, retries, failures
reported and not written, resume after a SIGKILL with nothing lost or duplicated."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from data_prep import rationales as R
from data_prep.__main__ import main
from data_prep.dialogue import row_key
from data_prep.sft import sft_row
from testsupport.rationale_stub import ACTION_HEAD, ACTION_TAIL, RationaleStub, stub_rationale

REPO = Path(__file__).resolve().parents[1]
@pytest.fixture(scope='module')
def demo_rows(tmp_path_factory):
    path = tmp_path_factory.mktemp('demo') / 'demo.jsonl'
    assert main(['demo', '--out', str(path)]) == 0
    return path, R.read_rows(path)


def run_live(rows, out, stub, concurrency=8, retries=2, client=None, limits=None):
    client = client or R.make_client(stub.base_url, 'AWPO_TEST_NO_KEY', timeout=10, max_retries=retries)
    return asyncio.run(R.run(rows, str(out), client, 'stub-model', concurrency=concurrency, progress=False,
                             limits=limits))


def check_output(out, rows):
    """Each input row exactly once, with the rationale the stub wrote for its own target."""
    got = R.read_rows(out)
    assert sorted(map(row_key, got)) == sorted(map(row_key, rows))
    by = {row_key(r): r for r in rows}
    for g in got:
        assert g['reference_rationale'] == stub_rationale(R.target_text(by[row_key(g)]))
        assert {k: v for k, v in g.items() if k != 'reference_rationale'} == \
            {k: v for k, v in by[row_key(g)].items() if k != 'reference_rationale'}


def test_concurrency_limit_and_attribution(demo_rows, tmp_path):
    _, rows = demo_rows
    with RationaleStub(latency=0.2) as stub:
        client = R.make_client(stub.base_url, 'AWPO_TEST_NO_KEY', timeout=10)   # imports openai: not timed
        t0 = time.perf_counter()
        summary = run_live(rows, tmp_path / 'out.jsonl', stub, concurrency=8, client=client)
        dt = time.perf_counter() - t0
    print(f'26 rows, concurrency 8, latency 0.2 s: {dt:.2f} s')
    assert summary.written == len(rows) == 26 and not summary.failures
    assert stub.requests == 26 and stub.max_inflight == 8
    assert 0.2 * 4 <= dt < 0.2 * 26 / 2           # ceil(26/8) = 4 waves; far below serial time
    check_output(tmp_path / 'out.jsonl', rows)


def test_failures_are_retried_then_reported_never_written_empty(demo_rows, tmp_path):
    _, rows = demo_rows
    out = tmp_path / 'out.jsonl'
    tokyo = [r for r in rows if 'Tokyo' in json.dumps(r['messages'])]
    oslo_only = [r for r in rows if 'Forecast' in json.dumps(r)]  # none: sanity of the filter
    assert len(tokyo) == 2 and not oslo_only
    with RationaleStub(fail_every=4, fail_if='Tokyo', empty_if='Rome') as stub:
        summary = run_live(rows, out, stub, retries=2)
    empty = [r for r in rows if 'Rome' in R.request_messages(r)[-1]['content']]
    bad = {row_key(r) for r in tokyo + empty}
    assert set(summary.failures) == bad
    assert all('InternalServerError' in summary.failures[row_key(r)] for r in tokyo)
    assert all(summary.failures[row_key(r)] == 'empty rationale' for r in empty)
    written = R.read_rows(out)
    assert {row_key(r) for r in written} == {row_key(r) for r in rows} - bad
    assert all(r['reference_rationale'] for r in written)
    # the SDK's retries only (max_retries=2, no second loop of ours): 3 attempts per row that always gets a 500,
    # 2 for a row whose first attempt got a transient 500, else 1; an empty reply (HTTP 200) is not re-asked
    transient_other = [u for u in stub.transient if 'Tokyo' not in u]
    assert len(stub.transient) == len(stub.seen) // 4 and transient_other
    assert stub.requests == 26 + 2 * len(tokyo) + len(transient_other)
    # a second run retries only what failed, and appends without duplicating
    with RationaleStub() as stub:
        summary = run_live(rows, out, stub)
    assert summary.already_done == 26 - len(bad) and summary.written == len(bad) and stub.requests == len(bad)
    check_output(out, rows)


def test_cli_exit_code_and_summary_on_failures(demo_rows, tmp_path, capsys):
    path, rows = demo_rows
    with RationaleStub(fail_if='Tokyo') as stub:
        rc = main(['rationales', '--in', str(path), '--out', str(tmp_path / 'o.jsonl'), '--model', 'm',
                   '--base-url', stub.base_url, '--api-key-env', 'AWPO_TEST_NO_KEY', '--retries', '1',
                   '--quiet'])
    text = capsys.readouterr().out
    assert rc == 1 and 'failed: 2' in text and text.count('FAILED') == 2
    assert 'written now: 24' in text


def test_resume_after_sigkill_loses_and_duplicates_nothing(demo_rows, tmp_path):
    path, rows = demo_rows
    out = tmp_path / 'out.jsonl'
    conc = 4
    cmd = [sys.executable, '-m', 'data_prep', 'rationales', '--in', str(path), '--out', str(out), '--model', 'm',
           '--concurrency', str(conc), '--api-key-env', 'AWPO_TEST_NO_KEY', '--quiet']
    with RationaleStub(latency=0.3) as stub:
        proc = subprocess.Popen(cmd + ['--base-url', stub.base_url], cwd=REPO,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.time() + 30
        while time.time() < deadline and (not out.exists() or out.read_text().count('\n') < 8):
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        first = stub.requests
    n_first = out.read_text().count('\n')
    assert 8 <= n_first < 26, n_first
    with open(out, 'a') as f:          # a torn last line, as a kill in the middle of a write leaves
        f.write('{"messages": [{"role": "us')
    with RationaleStub(latency=0.05) as stub2:
        p = subprocess.run(cmd + ['--base-url', stub2.base_url], cwd=REPO, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert f'already in {out}: {n_first}' in p.stdout
    assert stub2.requests == 26 - n_first
    assert first - n_first <= conc + 1        # at most the requests in flight at the kill were lost
    check_output(out, rows)


def test_done_keys_rejects_corrupt_middle_line(tmp_path):
    out = tmp_path / 'o.jsonl'
    out.write_text('not json\n{"a": 1}\n')
    with pytest.raises(ValueError, match='line 1 is not JSON'):
        R.done_keys(out)


def test_batch_export_and_import(demo_rows, tmp_path):
    path, rows = demo_rows
    req = tmp_path / 'batch.jsonl'
    assert main(['rationales', '--in', str(path), '--model', 'gpt-4o', '--export-batch', str(req)]) == 0
    lines = R.read_rows(req)
    assert len(lines) == 26 and len({x['custom_id'] for x in lines}) == 26
    by = {row_key(r): r for r in rows}
    for x in lines:
        assert x['method'] == 'POST' and x['url'] == '/v1/chat/completions' and x['body']['model'] == 'gpt-4o'
        assert x['body']['messages'] == R.request_messages(by[R.key_of_custom_id(x['custom_id'])])
    # a results file as the Batch API writes it: one error, one HTTP 500, one result missing
    results = []
    for i, x in enumerate(lines[:-1]):
        target = x['body']['messages'][-1]['content'].split(ACTION_HEAD, 1)[1].split(ACTION_TAIL, 1)[0]
        ok = {'status_code': 200, 'request_id': f'r{i}',
              'body': {'choices': [{'message': {'role': 'assistant', 'content': stub_rationale(target)}}]}}
        line = {'id': f'batch_req_{i}', 'custom_id': x['custom_id'], 'response': ok, 'error': None}
        if i == 0:
            line = {**line, 'response': None, 'error': {'code': 'rate_limit', 'message': 'x'}}
        if i == 1:
            line = {**line, 'response': {'status_code': 500, 'body': {'error': 'boom'}}}
        results.append(line)
    res = tmp_path / 'results.jsonl'
    res.write_text(''.join(json.dumps(x) + '\n' for x in reversed(results)))
    out = tmp_path / 'out.jsonl'
    summary = R.import_batch(rows, res, str(out))
    assert summary.written == 23
    failed = {R.key_of_custom_id(lines[i]['custom_id']): s for i, s in [(0, 'rate_limit'), (1, 'status 500'),
                                                                         (25, 'no result')]}
    assert set(summary.failures) == set(failed)
    for key, word in failed.items():
        assert word in summary.failures[key]
    again = R.import_batch(rows, res, str(out))       # idempotent: nothing appended twice
    assert again.written == 0 and again.already_done == 23
    got = R.read_rows(out)
    assert len(got) == 23 and len({row_key(r) for r in got}) == 23
    # export again: only the 3 rows still missing
    assert main(['rationales', '--in', str(path), '--out', str(out), '--model', 'm', '--export-batch', str(req)]) == 0
    assert {R.key_of_custom_id(x['custom_id']) for x in R.read_rows(req)} == set(failed)


def test_sft_export_targets_parse_back(demo_rows, tmp_path):
    from plugin.toolcall_format import parse_completion, render_tool_calls
    path, rows = demo_rows
    with RationaleStub() as stub:
        run_live(rows, tmp_path / 'r.jsonl', stub)
    sft_path = tmp_path / 'sft.jsonl'
    assert main(['sft', '--in', str(tmp_path / 'r.jsonl'), '--out', str(sft_path), '--quiet']) == 0
    sft = R.read_rows(sft_path)
    assert len(sft) == 26
    by = {row_key(r): r for r in R.read_rows(tmp_path / 'r.jsonl')}
    for s in sft:
        src = by[row_key(s)]
        # the prompt is kept; earlier actions are context, not targets (`"loss": false`, issue 14.4)
        assert [{k: v for k, v in m.items() if k != 'loss'} for m in s['messages'][:-1]] == src['messages']
        assert all(m.get('loss') is False for m in s['messages'][:-1] if m['role'] in ('assistant', 'tool_call'))
        assert s['tools'] == src['tools']
        target = s['messages'][-1]['content']
        calls = json.loads(src['ground_truth'])
        assert target.startswith(f'<think>\n{src["reference_rationale"]}\n</think>\n\n')
        parsed = parse_completion(target)
        assert parsed.format_ok and parsed.reasoning.strip() == src['reference_rationale']
        if calls:
            assert target.endswith(render_tool_calls(calls)) and parsed.calls == calls
        else:
            assert parsed.calls == [] and parsed.answer.strip() == src['reference_answer']
    # rows without a rationale are skipped, or an error with --strict
    with pytest.raises(ValueError, match='empty reference_rationale'):
        sft_row(rows[0])
    assert main(['sft', '--in', str(path), '--out', str(sft_path), '--quiet']) == 0
    assert sft_path.read_text() == ''


def test_invalid_input_rows_are_reported_before_any_request_and_the_rest_done(demo_rows, tmp_path, capsys):
    """Issue 11.B.3: a schema-invalid row (and a torn line, a non-object, a repeated key) is named by line and
    field before the first paid request; every valid row still gets its rationale; the manifest says done."""
    from data_prep.manifest import check_manifest, manifest_path
    path, rows = demo_rows
    lines = [json.dumps(r) for r in rows]
    broken = dict(rows[3], tools='not json')
    lines[3] = json.dumps(broken)                         # line 4: tools is not JSON
    lines.insert(10, '{"messages": [')                    # line 11: torn
    lines.insert(12, '[1, 2]')                            # line 13: not an object
    lines.append(json.dumps(rows[0]))                     # last line: rows[0] again
    inp = tmp_path / 'in.jsonl'
    inp.write_text('\n'.join(lines) + '\n')
    out = tmp_path / 'out.jsonl'
    (tmp_path / 'out.jsonl.manifest.json').write_text('{"stale": true}')   # from an earlier run
    with RationaleStub() as stub:
        rc = main(['rationales', '--in', str(inp), '--out', str(out), '--model', 'm', '--base-url', stub.base_url,
                   '--api-key-env', 'AWPO_TEST_NO_KEY', '--quiet'])
    captured = capsys.readouterr()
    assert rc == 0
    assert stub.requests == 25                            # 26 demo rows minus the invalid one
    for n, what in ((4, 'tools'), (11, 'not JSON'), (13, 'not list'), (len(lines), 'already at line 1')):
        assert f'{inp} line {n}: ' in captured.err, n
    assert 'tools / ground_truth is not JSON' in captured.err
    assert 'skipped 4 invalid input rows' in captured.out
    check_output(out, [r for i, r in enumerate(rows) if i != 3])
    assert check_manifest(str(out)) == {**json.loads(Path(manifest_path(str(out))).read_text())}
    assert check_manifest(str(out))['rows'] == 25 and check_manifest(str(out))['skipped_input'] == 4


def test_run_with_failures_leaves_no_manifest_and_a_finished_rerun_writes_it(demo_rows, tmp_path):
    from data_prep.manifest import ManifestError, check_manifest
    _, rows = demo_rows
    out = tmp_path / 'out.jsonl'
    with RationaleStub(fail_if='Tokyo') as stub:
        summary = run_live(rows, out, stub, retries=0)
    assert summary.failures and summary.manifest is None and 'not complete' in summary.text(str(out))
    with pytest.raises(ManifestError, match='did not finish'):
        check_manifest(str(out))
    with RationaleStub() as stub:
        summary = run_live(rows, out, stub)
    assert not summary.failures and check_manifest(str(out))['rows'] == 26


def test_import_batch_counts_unreadable_result_records_and_writes_the_manifest_when_complete(demo_rows, tmp_path):
    from data_prep.manifest import check_manifest
    _, rows = demo_rows
    good = [{'custom_id': R.custom_id(r), 'error': None,
             'response': {'status_code': 200, 'body': {'choices': [{'message': {'content': 'I think so.'}}]}}}
            for r in rows]
    junk = [{'custom_id': 'not a key'}, {'custom_id': 5}, {'no': 'custom_id'}]
    res = tmp_path / 'results.jsonl'
    res.write_text(''.join(json.dumps(x) + '\n' for x in junk + good[:-1]))
    out = tmp_path / 'out.jsonl'
    summary = R.import_batch(rows, res, str(out))
    assert summary.written == 25 and summary.manifest is None
    assert sorted(k for k in summary.failures if isinstance(k, str)) == [f'{res} record {n}' for n in (1, 2, 3)]
    res.write_text(''.join(json.dumps(x) + '\n' for x in good))
    summary = R.import_batch(rows, res, str(out))
    assert summary.written == 1 and not summary.failures and check_manifest(str(out))['rows'] == 26
