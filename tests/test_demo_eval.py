"""The demo's evaluation (issue 20): the generation cap from the data, the before/after table, the cut check."""
import argparse
import json
import math

import pytest

from eval import demo_eval as D
from eval import serve as S


def test_wilson_matches_the_hand_computed_interval():
    # Wilson, 8 of 10, z = 1.959964: centre (0.8 + z^2/20) / (1 + z^2/10), half-width
    # z * sqrt(0.8*0.2/10 + z^2/400) / (1 + z^2/10)
    z = 1.959963985
    den = 1 + z * z / 10
    centre = (0.8 + z * z / 20) / den
    half = z * math.sqrt(0.016 + z * z / 400) / den
    lo, hi = D.wilson(8, 10)
    assert lo == pytest.approx(centre - half, abs=1e-6) and hi == pytest.approx(centre + half, abs=1e-6)
    assert (round(lo, 3), round(hi, 3)) == (0.490, 0.943)
    assert D.wilson(0, 0) == (None, None)
    lo, hi = D.wilson(0, 5)
    assert lo == 0.0 and 0.4 < hi < 0.5   # 0 of 5 still admits up to ~43 %


def test_cap_is_the_longest_kept_answer_times_the_factor_rounded_up():
    out = D.cap_from_lengths({'a': 40, 'b': 70, 'c': 500}, ceiling=384)
    assert out['longest'] == 70 and out['longest_case'] == 'b'
    assert out['cap'] == 112                       # 70 * 1.5 = 105 -> next multiple of 16
    assert out['left_out'] == ['c'] and out['kept'] == ['a', 'b']
    with pytest.raises(ValueError, match='raise --ceiling'):
        D.cap_from_lengths({'a': 500}, ceiling=384)
    with pytest.raises(ValueError, match='no cases'):
        D.cap_from_lengths({})


def test_gold_completion_is_the_sft_target_of_the_warm_start():
    calls = [{'name': 'math.factorial', 'arguments': {'number': 5}}]
    text = D.gold_completion(calls)
    assert text == ('<think>\nThe request needs math.factorial with number=5.\n</think>\n\n'
                    '<tool_call>\n{"name": "math.factorial", "arguments": {"number": 5}}\n</tool_call>')

    class Chars:  # a tokenizer of one token per character: the count is the text's length + end of turn
        def encode(self, text, add_special_tokens=False):
            assert add_special_tokens is False
            return list(text)
    assert D.answer_tokens(text, Chars()) == len(text) + 1


def test_the_old_48_token_cap_cuts_the_warm_starts_answer(smollm2_dir):
    """The bug of issue 20: simple_python_1's answer (math_factorial(number=5)) with its plan needs more than
    the 48 tokens the server used to allow; the new default holds it."""
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(smollm2_dir)
    n = D.answer_tokens(D.gold_completion([{'name': 'math_factorial', 'arguments': {'number': 5}}]), tok)
    assert 48 < n < S.SMOLLM2_MAX_NEW_TOKENS


def test_token_counts_of_single_and_multi_turn_results():
    assert D._numbers(60) == [60] and D._numbers([[10, 160], [3]]) == [10, 160, 3]
    assert D._numbers(None) == [] and D._numbers(True) == [] and D._numbers('160') == []


def test_summarize_leaves_cut_answers_out_and_lists_them():
    s = D.summarize({'a': True, 'b': False, 'c': True, 'd': True}, cut=['d', 'zzz'])
    assert (s['n'], s['correct'], s['cut']) == (3, 2, ['d'])
    assert s['acc'] == pytest.approx(2 / 3)
    assert s['ci'] == pytest.approx(list(D.wilson(2, 3)))


def test_a_cut_inside_a_call_is_the_caps_fault_a_ramble_is_not():
    assert D.cut_inside_call('<think>\nplan\n</think>\n\n<tool_call>\n{"name": "math_factorial", "arguments": {"number": 5}}\n</')
    assert not D.cut_inside_call('<tool_call>\n{"name": "f", "arguments": {}}\n</tool_call>\nAnd then I will')
    assert not D.cut_inside_call('The area of a triangle can be calculated using Heron')
    assert not D.cut_inside_call([{'f': {}}]) and not D.cut_inside_call(None)


def _write_run(root, name, bfcl, apibank, heldout, cap_hit=(), cut_text='rambling on and on'):
    d = root / name
    (d / 'bfcl_work' / 'result' / 'awpo-local-FC' / 'non_live').mkdir(parents=True)
    (d / 'bfcl.cases.jsonl').write_text(''.join(json.dumps({'id': k, 'correct': v}) + '\n' for k, v in bfcl.items()))
    (d / 'bfcl_work' / 'result' / 'awpo-local-FC' / 'non_live' / 'BFCL_v4_simple_python_result.json').write_text(
        ''.join(json.dumps({'id': k, 'result': cut_text if k in cap_hit else [],
                            'output_token_count': 112 if k in cap_hit else 60}) + '\n' for k in bfcl))
    (d / 'apibank.cases.jsonl').write_text(''.join(
        json.dumps({'case_id': k, 'level': 1, 'correct': v, 'finish_reason': 'stop'}) + '\n'
        for k, v in apibank.items()))
    cases = [{'id': k, 'exec': 1.0 if v else 0.5, 'format': 1.0, 'finish_reason': 'stop', 'completion_tokens': 50}
             for k, v in heldout.items()]
    (d / 'heldout.json').write_text(json.dumps({'summary': {'n': len(cases), 'format': 1.0, 'exec': 0.75,
                                                            'calls': 1.0}, 'cases': cases}))


def test_report_compares_the_same_cases_and_flags_cut_answers(tmp_path, capsys):
    _write_run(tmp_path, 'ws', {'simple_python_0': True, 'simple_python_1': False, 'simple_python_2': True},
               {'L1:a': True}, {'h1': True, 'h2': False})
    _write_run(tmp_path, 'awpo', {'simple_python_0': True, 'simple_python_1': True, 'simple_python_2': True},
               {'L1:a': False}, {'h1': True, 'h2': True}, cap_hit=('simple_python_2',))
    (tmp_path / 'cap.json').write_text(json.dumps({'cap': 112}))
    argv = ['report', '--results', str(tmp_path), '--cap', str(tmp_path / 'cap.json'), '--before', 'ws',
            '--after', 'awpo', '--out', str(tmp_path / 't.md')]
    assert D.main(argv) == 0
    out = capsys.readouterr().out
    assert '| BFCL simple_python | 2/3 = 0.67 [' in out
    assert '| 2/2 = 1.00 [' in out and 'cut 1' in out            # simple_python_2 used all 112 tokens
    assert '| held-out rows, S_exec = 1 | 1/2 = 0.50' in out
    assert '| API-Bank sample | 1/1 = 1.00' in out
    assert 'intervals overlap: no evidence of a change' in out
    assert 'Cut by the cap (left out above): awpo:simple_python_2' in out
    assert 'Of these, cut while writing a tool call: none.' in out
    assert (tmp_path / 't.md').read_text().strip() == out.strip()
    assert D.main(argv + ['--require-uncut']) == 0          # a ramble cut at the cap: left out, listed, not fatal
    (tmp_path / 'cap.json').write_text(json.dumps({'cap': 160}))   # a cap the answers did not reach
    assert D.main(argv + ['--require-uncut']) == 0
    assert 'No answer was cut by the generation cap.' in capsys.readouterr().out


def test_report_without_a_baseline_says_there_is_nothing_to_compare(tmp_path, capsys):
    """--quick evaluates only the trained model: the note says so instead of an empty comparison ('-')."""
    _write_run(tmp_path, 'awpo', {'simple_python_0': True, 'simple_python_1': False}, {'L1:a': True}, {'h1': True})
    assert D.main(['report', '--results', str(tmp_path), '--before', 'ws', '--after', 'awpo']) == 0
    out = capsys.readouterr().out
    assert '| BFCL simple_python | not run | 1/2 = 0.50 [' in out
    assert 'No before/after comparison: ws was not evaluated on these cases' in out
    assert 'usually noise' not in out and ': -.' not in out


def test_require_uncut_fails_when_the_cap_cut_a_call_being_written(tmp_path, capsys):
    """Issue 20's bug: the right call, cut at ``</`` by a cap below the answer: CI must fail."""
    cut = '<think>\nThe request needs math_factorial with number=5.\n</think>\n\n<tool_call>\n{"name": "math_factorial", "arguments": {"number": 5}}\n</'
    _write_run(tmp_path, 'ws', {'simple_python_1': True}, {'L1:a': True}, {'h1': True})
    _write_run(tmp_path, 'awpo', {'simple_python_1': False}, {'L1:a': True}, {'h1': True},
               cap_hit=('simple_python_1',), cut_text=cut)
    (tmp_path / 'cap.json').write_text(json.dumps({'cap': 48}))
    argv = ['report', '--results', str(tmp_path), '--cap', str(tmp_path / 'cap.json'), '--before', 'ws',
            '--after', 'awpo', '--require-uncut']
    assert D.main(argv) == 1
    out = capsys.readouterr()
    assert 'cut while writing a tool call: awpo:simple_python_1.' in out.out and 'raise the cap' in out.err


def test_serving_cap_option_replaces_the_default_once():
    p = argparse.ArgumentParser()
    S.add_server_args(p)
    a = p.parse_args(['--model-path', '/x', '--smollm2', '--max-new-tokens', '96'])
    extra = S.server_from_args(a).extra_args
    assert extra.count('--max_new_tokens') == 1 and extra[extra.index('--max_new_tokens') + 1] == '96'
    a = p.parse_args(['--model-path', '/x', '--smollm2'])
    extra = S.server_from_args(a).extra_args
    assert extra[extra.index('--max_new_tokens') + 1] == str(S.SMOLLM2_MAX_NEW_TOKENS) != '48'


def test_apibank_sends_the_cpu_models_serving_cap_not_its_own_32768(tmp_path):
    """A request's max_tokens overrides swift deploy's --max_new_tokens: with --smollm2 the API-Bank request
    carries the serving cap (the demo's cap from its cases), so the cut check sees the same cap everywhere."""
    from eval import apibank as A
    from tests.test_eval_apibank import ScriptedServer
    cases = A.load_cases([1], str(A.SAMPLE_DIR), 2)
    srv = ScriptedServer({json.dumps(c.messages): (a, c.gold) for c, a in zip(cases, ['ok', 'runaway'])})
    try:
        assert A.main(['--base-url', srv.url, '--sample', '--levels', '1', '--limit', '2', '--name', 'r',
                       '--results-dir', str(tmp_path), '--smollm2', '--max-new-tokens', '96']) == 0
        assert {b['max_tokens'] for b in srv.bodies} == {96}
        assert json.loads((tmp_path / 'r' / 'apibank.json').read_text())['settings']['max_tokens'] == 96
        (tmp_path / 'cap.json').write_text(json.dumps({'cap': 96}))
        outcomes, cut, in_call = D.apibank_outcomes(tmp_path / 'r', 96)
        assert cut == [f'apibank:{cases[1].case_id}'] and outcomes[f'apibank:{cases[0].case_id}'] is True
        assert in_call == []     # the runaway writes prose, no call in progress
    finally:
        srv.stop()
