"""Issue 21.5: the paid rationale paths at scale, against the OpenAI-compatible stub on 127.0.0.1 with the
installed openai SDK: Batch files under both limits, submitted / polled / imported as one resumable command;
the live path honours Retry-After without stacking retries, stops at once on errors no retry can fix
(401, 403, 404, insufficient_quota), keeps a token rate and a cost ceiling, and reports tokens and $."""
from __future__ import annotations

import json
import time

import pytest

from data_prep import rationales as R
from data_prep.__main__ import main
from data_prep.dialogue import row_key
from data_prep.manifest import check_manifest
from data_prep.rationale_batch import split_requests, state_path
from data_prep.usage import Budget, Price, TokenRate, estimate_tokens, price_for
from testsupport.rationale_stub import RationaleStub
from tests.test_data_prep_rationales import check_output, run_live


@pytest.fixture(scope='module')
def demo(tmp_path_factory):
    path = tmp_path_factory.mktemp('demo') / 'demo.jsonl'
    assert main(['demo', '--out', str(path)]) == 0
    return path, R.read_rows(path)


# ------------------------------------------------------------------------------------------- pure parts
def test_split_requests_keeps_every_file_under_both_limits():
    lines = [b'x' * n + b'\n' for n in (9, 9, 9, 29, 4, 4, 4, 4, 4, 4)]     # 10, 10, 10, 30, 5 x 6 bytes
    parts = split_requests(lines, max_requests=4, max_bytes=30)
    assert [len(p) for p in parts] == [3, 1, 4, 2]      # 30 B | 30 B | 4 requests (20 B) | 2 requests
    assert b''.join(b''.join(p) for p in parts) == b''.join(lines)
    assert all(len(p) <= 4 and sum(map(len, p)) <= 30 for p in parts)
    assert split_requests([], 4, 30) == []
    with pytest.raises(ValueError, match='request 1 alone is 31 bytes'):
        split_requests([b'a\n', b'y' * 30 + b'\n'], 4, 30)
    # the full mix: ~88k requests of ~2.6 kB are 2 files by count (the 200 MB limit allows ~80k of them)
    assert len(split_requests([b'z' * 2600] * 88_000)) == 2


def test_prices_override_and_batch_discount():
    assert price_for('gpt-4o') == Price(2.5, 10.0)
    assert price_for('GPT-4o', batch=True) == Price(1.25, 5.0)
    assert price_for('my-model') is None
    assert price_for('my-model', 1.0, 3.0) == Price(1.0, 3.0)
    with pytest.raises(ValueError, match='both'):
        price_for('gpt-4o', 1.0, None)
    assert Price(2.5, 10.0).cost(1_000_000, 100_000) == pytest.approx(3.5)


def test_token_bucket_waits_by_hand_computed_amounts():
    now = [0.0]
    rate = TokenRate(600, clock=lambda: now[0])          # 10 tokens/s, bursts of 600
    assert rate.reserve(500) == 0.0                      # 100 left
    assert rate.reserve(200) == pytest.approx(10.0)      # 100 short at 10/s
    now[0] = 10.0                                        # refilled to 0
    assert rate.reserve(50) == pytest.approx(5.0)
    now[0] = 1000.0                                      # full again, not more than a minute's worth
    assert rate.reserve(600) == 0.0 and rate.reserve(1) == pytest.approx(0.1)


def test_budget_never_reserves_past_the_ceiling():
    b = Budget(ceiling=1.0, price=Price(1e6 * 0.01, 1e6 * 0.02))  # $0.01 per token in, $0.02 out
    assert b.try_reserve(10, 20) == pytest.approx(0.5)
    assert b.try_reserve(10, 20) == pytest.approx(0.5)
    assert b.try_reserve(1, 0) is None                              # 1.00 + 0.01 > 1.00
    b.settle(0.5, 10, 5)                                            # it cost 0.2, not 0.5
    assert b.spent == pytest.approx(0.2) and b.try_reserve(10, 10) == pytest.approx(0.3)


# ------------------------------------------------------------------------------------------- live path
def test_retry_after_is_honoured_by_the_sdk_and_not_stacked(demo, tmp_path):
    _, rows = demo
    with RationaleStub(rate_limit_first=1, retry_after=1.5) as stub:
        summary = run_live(rows[:1], tmp_path / 'o.jsonl', stub, concurrency=1, retries=2)
    assert summary.written == 1 and not summary.failures
    (t0, _, s0), (t1, _, s1) = stub.arrivals
    assert (s0, s1) == (429, 200) and stub.requests == 2       # one retry, by the SDK only
    assert 1.45 <= t1 - t0 < 10.0, t1 - t0                       # the server's Retry-After, not 0.5 s back-off


@pytest.mark.parametrize('error', [401, 403, 404, 'quota'])
def test_errors_no_retry_can_fix_stop_the_run_at_once_and_a_rerun_continues(demo, tmp_path, error, capsys):
    path, rows = demo
    out = tmp_path / 'o.jsonl'
    cmd = ['rationales', '--in', str(path), '--out', str(out), '--model', 'm', '--api-key-env', 'AWPO_TEST_NO_KEY',
           '--concurrency', '2', '--retries', '3', '--quiet']
    with RationaleStub(error_after=5, error=error) as stub:
        rc = main(cmd + ['--base-url', stub.base_url])
    text = capsys.readouterr().out
    refused = [a for a in stub.arrivals if a[2] != 200]
    assert rc == 1 and 'STOPPED' in text
    assert 1 <= len(refused) <= 2, refused                       # the requests in flight; none retried
    assert stub.requests == stub.answered + len(refused)
    written = R.read_rows(out)
    assert len(written) == stub.answered and len(written) < 26
    with pytest.raises(Exception, match='did not finish'):
        check_manifest(str(out))
    word = {401: 'API key', 403: 'denied', 404: 'not found', 'quota': 'quota'}[error]
    assert word in text
    with RationaleStub() as stub2:                               # fixed: the rerun sends only the rest
        assert main(cmd + ['--base-url', stub2.base_url]) == 0
    assert stub2.requests == 26 - len(written)
    check_output(out, rows)


def test_token_rate_limit_spaces_the_requests(demo, tmp_path):
    _, rows = demo
    rows = rows[:8]
    need = sum(estimate_tokens(R.request_messages(r)) + 256 for r in rows)
    tpm = need / 1.025             # one minute's burst covers all but 2.5 %: ~1.5 s of waiting at tpm/60 per s
    with RationaleStub() as stub:
        t0 = time.perf_counter()
        fast = run_live(rows, tmp_path / 'a.jsonl', stub)
        t_fast = time.perf_counter() - t0
        t0 = time.perf_counter()
        slow = run_live(rows, tmp_path / 'b.jsonl', stub, limits=R.Limits(tpm=tpm))
        t_slow = time.perf_counter() - t0
    assert fast.written == slow.written == 8
    assert t_slow >= 1.3 and t_slow > t_fast + 1.0, (t_fast, t_slow)


def test_cost_ceiling_stops_cleanly_usage_is_the_servers_and_the_rerun_finishes(demo, tmp_path, capsys):
    path, rows = demo
    out = tmp_path / 'o.jsonl'
    cmd = ['rationales', '--in', str(path), '--out', str(out), '--model', 'teacher', '--api-key-env',
           'AWPO_TEST_NO_KEY', '--concurrency', '1', '--max-tokens', '100', '--quiet',
           '--price-in', '2000', '--price-out', '8000']          # USD per 1M: a request costs ~$1
    with RationaleStub() as stub:
        rc = main(cmd + ['--base-url', stub.base_url, '--max-cost', '10'])
        first = capsys.readouterr().out
        spent = (stub.tokens_in * 2000 + stub.tokens_out * 8000) / 1e6
        n_first = stub.answered
    assert rc == 1 and 'STOPPED: cost ceiling' in first
    assert 3 <= n_first < 26 and spent <= 10.0
    assert f'{stub.tokens_in} tokens in, {stub.tokens_out} tokens out; ${spent:.4f}' in first
    assert len(R.read_rows(out)) == n_first
    with RationaleStub() as stub2:
        assert main(cmd + ['--base-url', stub2.base_url]) == 0
        second = capsys.readouterr().out
    assert stub2.requests == 26 - n_first
    check_output(out, rows)
    ledger = json.loads((tmp_path / 'o.jsonl.usage.json').read_text())
    assert ledger['total']['tokens_in'] == stub.tokens_in + stub2.tokens_in
    assert ledger['total']['usd'] == pytest.approx(spent + (stub2.tokens_in * 2000 + stub2.tokens_out * 8000) / 1e6)
    assert 'all runs on' in second and 'complete: manifest' in second


def test_max_cost_without_a_price_is_refused_before_any_request(demo, tmp_path, capsys):
    path, _ = demo
    with RationaleStub() as stub:
        rc = main(['rationales', '--in', str(path), '--out', str(tmp_path / 'o.jsonl'), '--model', 'unknown-model',
                   '--base-url', stub.base_url, '--api-key-env', 'AWPO_TEST_NO_KEY', '--max-cost', '5', '--quiet'])
    assert rc != 0 and '--max-cost needs a price' in capsys.readouterr().err
    assert stub.requests == 0


# ------------------------------------------------------------------------------------------- Batch API
def _batch_cmd(path, out, stub, *extra):
    return ['rationales', '--in', str(path), '--out', str(out), '--model', 'gpt-4o', '--batch',
            '--base-url', stub.base_url, '--api-key-env', 'AWPO_TEST_NO_KEY', '--poll-seconds', '0.05',
            '--batch-max-requests', '10', '--quiet', *extra]


def test_batch_splits_submits_polls_imports_and_resumes(demo, tmp_path, capsys):
    path, rows = demo
    out = tmp_path / 'o.jsonl'
    with RationaleStub(batch_polls=3, batch_max_requests=10, batch_fail_if='Tokyo') as stub:
        # 1) submit only: 26 requests -> 3 files of <= 10; the batches are still running
        assert main(_batch_cmd(path, out, stub, '--no-wait')) == 1
        text = capsys.readouterr().out
        assert 'still running' in text and stub.batch_creates == 3
        assert [len(f['data'].splitlines()) for f in stub.files.values()] == [10, 10, 6]
        state = json.loads(state_path(str(out)).read_text())
        assert [p['status'] for p in state['rounds'][0]['parts']] == ['in_progress'] * 3
        # 2) a kill between batches.create and the state write: the rerun finds that batch, creates none
        state['rounds'][0]['parts'][2]['batch_id'] = None
        state_path(str(out)).write_text(json.dumps(state))
        # 3) the rerun polls to the end and imports; Tokyo's 2 requests failed in the batch (error file)
        assert main(_batch_cmd(path, out, stub)) == 1
        text = capsys.readouterr().out
        assert stub.batch_creates == 3 and len(R.read_rows(out)) == 24
        assert 'failed: 2' in text and text.count('stub batch failure') == 2
        usage = stub.tokens_in, stub.tokens_out
        assert f'{usage[0]} tokens in, {usage[1]} tokens out; ${(usage[0] * 1.25 + usage[1] * 5) / 1e6:.4f}' in text
        # 4) the next run makes a new round with only those 2 rows, which now succeed
        stub.batch_fail_if = None
        assert main(_batch_cmd(path, out, stub)) == 0
        text = capsys.readouterr().out
    assert stub.batch_creates == 4 and len(stub.files[list(stub.files)[-2]]['data'].splitlines()) == 2
    check_output(out, rows)
    assert check_manifest(str(out))['rows'] == 26 and 'complete: manifest' in text
    # the stub refuses files over its limits, so every part stayed under them
    assert all(len(f['data'].splitlines()) <= 10 for f in stub.files.values() if f['purpose'] == 'batch')


def test_batch_byte_limit_and_export_split(demo, tmp_path, capsys):
    path, rows = demo
    sizes = sorted(len(json.dumps(R.batch_request(r, 'gpt-4o', 256, 0.2), ensure_ascii=False)) + 1 for r in rows)
    limit = sizes[-1] * 3                                  # at most 3 requests per file by size
    assert main(['rationales', '--in', str(path), '--model', 'gpt-4o', '--export-batch', str(tmp_path / 'b.jsonl'),
                 '--batch-max-bytes', str(limit)]) == 0
    files = sorted(tmp_path.glob('b.part*.jsonl'), key=lambda f: int(f.stem.split('part')[1]))
    assert len(files) >= -(-sum(sizes) // limit) and all(f.stat().st_size <= limit for f in files)
    for f, g in zip(files, files[1:]):                    # full: the next file's first request did not fit
        assert f.stat().st_size + len(g.read_bytes().split(b'\n')[0]) + 1 > limit
    got = [json.loads(x) for f in files for x in f.read_text().splitlines()]
    assert sorted(R.key_of_custom_id(g['custom_id']) for g in got) == sorted(map(row_key, rows))
    with RationaleStub(batch_polls=1, batch_max_bytes=limit) as stub:
        assert main(_batch_cmd(path, tmp_path / 'o.jsonl', stub, '--batch-max-bytes', str(limit))) == 0
    assert stub.batch_creates == len(files)
    check_output(tmp_path / 'o.jsonl', rows)
