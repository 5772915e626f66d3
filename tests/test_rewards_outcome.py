"""Outcome reward (paper Eqs. 14-19): hand-computed values, parser edge cases, ms-swift glue."""
from __future__ import annotations

import json
import random
from collections import Counter
from fractions import Fraction
from itertools import permutations

import pytest

from plugin.outcome_reward import (exec_score, exec_terms, format_score, json_equal, name_score, outcome_scores,
                                   pair_calls)
from plugin.toolcall_format import (MAX_TOOL_CALLS, loads_json, normalize_call, parse_completion, parse_ground_truth,
                                    render_tool_calls)


def call(name, **arguments):
    return {'name': name, 'arguments': arguments}


def block(obj) -> str:
    return f'<tool_call>\n{json.dumps(obj)}\n</tool_call>'


# ------------------------------------------------------------------ Eqs. 16-19, hand computed

def test_every_exec_term_by_hand():
    gold = [call('search', q='cats', limit=5), call('weather', city='Paris')]
    pred = [call('search', q='cats', limit='5', lang='en'), call('translate', text='x')]
    r_name, r_para, r_value, denom = exec_terms(pred, gold)
    # Eq. 16: N_T = {search, weather}, N_P = {search, translate}: |&| = 1, |U| = 3
    assert r_name == pytest.approx(1 / 3)
    # Eq. 17: search: {q, limit} vs {q, limit, lang} -> 2/3; weather: no predicted call -> 0
    assert r_para == pytest.approx(2 / 3)
    # Eq. 18: q "cats" == "cats" -> 1; limit 5 vs "5" -> 0 (type-strict); weather.city -> 0
    assert r_value == 1
    # Eq. 19: 1 + |T| + sum |v(T_i)| = 1 + 2 + (2 + 1) = 6
    assert denom == 6
    # S_exec = (1/3 + 2/3 + 1) / 6 = 1/3
    assert exec_score(pred, gold) == pytest.approx(1 / 3)


def test_perfect_prediction_scores_one_and_order_does_not_matter():
    gold = [call('a', x=1, y=[1, 2]), call('b'), call('c', s='t')]
    assert exec_score(gold, gold) == 1.0
    for perm in permutations(gold):
        assert exec_score(list(perm), gold) == 1.0


def test_missing_parameter_and_extra_call():
    gold = [call('f', a=1, b=2)]
    pred = [call('f', a=1), call('g')]
    # r_name = |{f}| / |{f, g}| = 1/2; r_para = |{a}| / |{a, b}| = 1/2; r_value = 1 (a); denom = 1 + 1 + 2 = 4
    # S_exec = (1/2 + 1/2 + 1) / 4 = 1/2
    assert exec_score(pred, gold) == pytest.approx(0.5)


def test_argument_free_calls_match_fully():
    # Eq. 17 with two empty parameter sets: 0/0 is taken as 1 (the calls agree)
    # r_name = 1, r_para = 1, r_value = 0, denom = 1 + 1 + 0 = 2 -> 1
    assert exec_score([call('now')], [call('now')]) == 1.0
    # gold has no parameters, prediction invents one: r_para = 0/1 -> (1 + 0 + 0) / 2
    assert exec_score([call('now', tz='UTC')], [call('now')]) == 0.5


def test_gold_empty_means_text_answer():
    assert exec_score([], []) == 1.0
    assert exec_score([call('f')], []) == 0.0
    assert exec_score(None, []) == 0.0  # unparseable output
    assert outcome_scores('<think>easy</think>\n\nThe answer is 4.', '[]') == (1.0, 1.0)
    assert outcome_scores(block(call('f')), '[]') == (1.0, 0.0)


def test_unparseable_output_scores_zero_exec():
    assert exec_score(None, [call('f', a=1)]) == 0.0
    assert outcome_scores('<tool_call>\n{"name": "f", "arguments": {"a": 1}\n</tool_call>', '[{"name": "f", '
                          '"arguments": {"a": 1}}]') == (0.0, 0.0)


# ------------------------------------------------------------------ duplicate names

def test_duplicate_names_take_the_best_pairing_not_the_greedy_one():
    gold = [call('f', a=1), call('f', a=1, b=2)]
    pred = [call('f', a=1, b=2), call('f', a=1, b=3)]
    # pair scores (r_para + r_value):
    #   gold0 vs pred0: {a} vs {a,b} = 1/2, a equal -> 1.5 ; gold0 vs pred1: 1/2 + 1 = 1.5 (tie)
    #   gold1 vs pred0: 1 + 2 = 3                          ; gold1 vs pred1: 1 + 1 = 2
    # greedy in gold order: gold0 -> pred0 (tie, first), gold1 -> pred1: 1.5 + 2 = 3.5
    # best: gold0 -> pred1, gold1 -> pred0: 1.5 + 3 = 4.5
    assert pair_calls(pred, gold) == [1, 0]
    # r_name = 1, r_para = 1/2 + 1, r_value = 1 + 2, denom = 1 + 2 + 3 = 6 -> 5.5 / 6
    assert exec_score(pred, gold) == pytest.approx(5.5 / 6)
    # the pairing is a maximum, so the score does not depend on the order of either list
    for g in permutations(gold):
        for p in permutations(pred):
            assert exec_score(list(p), list(g)) == pytest.approx(5.5 / 6)


def test_more_gold_than_predicted_calls_of_a_name():
    gold = [call('f', a=1), call('f', a=2)]
    pred = [call('f', a=2)]
    # pred pairs with gold1: r_para = 0 + 1, r_value = 0 + 1, denom = 1 + 2 + 2 = 5
    assert pair_calls(pred, gold) == [None, 0]
    # multiset r_name = |{f} & {f, f}| / |{f} | {f, f}| = 1/2 -> (1/2 + 1 + 1) / 5 = 1/2
    assert exec_score(pred, gold) == pytest.approx(2.5 / 5)
    # set r_name = |{f}| / |{f}| = 1 -> 3/5
    assert exec_score(pred, gold, 'set') == pytest.approx(3 / 5)


def test_name_score_multiset_by_hand():
    assert name_score(['f'], ['f', 'f']) == pytest.approx(1 / 2)
    assert name_score(['f', 'g'], ['f', 'f', 'h']) == pytest.approx(1 / 4)  # & = {f}, | = {f, f, g, h}
    assert name_score(['f', 'g'], ['f', 'f', 'h'], 'set') == pytest.approx(1 / 3)  # {f} / {f, g, h}
    assert name_score(['f', 'f'], ['f', 'f']) == 1.0
    with pytest.raises(ValueError, match='name_match'):
        name_score(['f'], ['f'], 'bag')


# ------------------------------------------------------------------ hedging (issue 11 A.2)

def test_issue_example_hedging_does_not_pay():
    """Gold search(q=paris, n=5) against 3 cities x 2 values of n, and against the right call twice."""
    gold = [call('search', q='paris', n=5)]
    hedge = [call('search', q=c, n=n) for c in ('paris', 'london', 'rome') for n in (5, 10)]
    # multiset r_name = 1/6, best pair exact: r_para 1, r_value 2, denom 1 + 1 + 2 = 4 -> (1/6 + 3) / 4
    assert exec_score(hedge, gold) == pytest.approx((1 / 6 + 3) / 4)
    assert exec_score(gold * 2, gold) == pytest.approx((1 / 2 + 3) / 4)  # 0.875
    assert outcome_scores(render_tool_calls(hedge), json.dumps(gold)) == (1.0, pytest.approx((1 / 6 + 3) / 4))
    # the paper-literal set reading (kept as an option) pays the hedge in full
    assert exec_score(hedge, gold, 'set') == 1.0 and exec_score(gold * 2, gold, 'set') == 1.0


def test_extra_or_duplicated_calls_always_score_strictly_below_exact():
    """Property over random gold sets: the exact answer scores 1; the exact answer plus any extra calls
    (duplicates of gold calls, variants, unrelated tools), in any order, scores strictly less."""
    rng = random.Random(11)
    names, values = ['f', 'g', 'h', 'k'], [0, 1, 2.5, True, 'x', 'y', None, [1], {'k': 1}]

    def rand_call():
        keys = rng.sample(['a', 'b', 'c'], rng.randint(0, 3))
        return call(rng.choice(names), **{k: rng.choice(values) for k in keys})

    for _ in range(500):
        gold = [rand_call() for _ in range(rng.randint(1, 5))]
        assert exec_score(gold, gold) == 1.0
        extras = []
        for _ in range(rng.randint(1, 6)):
            kind = rng.random()
            extras.append(rng.choice(gold) if kind < 0.4 else rand_call() if kind < 0.8
                          else dict(rng.choice(gold), arguments={}))
        pred = gold + extras
        rng.shuffle(pred)
        s = exec_score(pred, gold)
        assert 0.0 <= s < 1.0, (gold, pred)
        # the same through the text format and the parser
        assert outcome_scores(render_tool_calls(pred), json.dumps(gold)) == (1.0, pytest.approx(s))


# ------------------------------------------------------------------ optimal pairing (issue 11 A.3)

def test_large_same_name_groups_are_paired_optimally_in_any_order():
    """8 calls of one name, built so that greedy pairing in gold order is wrong: gold0 = f(a=1) prefers
    any f(a=1, b=i) (1/2 + 1 = 1.5) to f(a=2) (1 + 0 = 1), but taking one starves a gold f(a=1, b=i)."""
    gold = [call('f', a=1)] + [call('f', a=1, b=i) for i in range(1, 8)]
    pred = [call('f', a=1, b=i) for i in range(1, 8)] + [call('f', a=2)]
    # optimum: gold0 -> f(a=2) (1), every gold f(a=1, b=i) -> its twin (1 + 2): r_para + r_value = 22
    # r_name = 1 (8 f's each side), denom = 1 + 8 + (1 + 7 * 2) = 24 -> (1 + 22) / 24
    assert pair_calls(pred, gold) == [7, 0, 1, 2, 3, 4, 5, 6]
    want = (1 + 22) / 24
    rng = random.Random(3)
    for _ in range(200):
        p, g = pred[:], gold[:]
        rng.shuffle(p)
        rng.shuffle(g)
        assert exec_score(p, g) == pytest.approx(want, abs=1e-12)


def test_pairing_is_optimal_against_brute_force_at_sizes_up_to_7():
    """Random one-name groups up to 7 x 7: the assignment's summed pair score (r_para + r_value terms)
    equals the brute-force maximum over every injective pairing."""
    rng = random.Random(5)
    vals = [0, 1, 'x', None]
    for _ in range(60):
        gold = [call('f', **{k: rng.choice(vals) for k in rng.sample('abc', rng.randint(1, 3))})
                for _ in range(rng.randint(1, 7))]
        pred = [call('f', **{k: rng.choice(vals) for k in rng.sample('abc', rng.randint(0, 3))})
                for _ in range(rng.randint(1, 7))]
        got = sum(_pair(gold[i], pred[j]) for i, j in enumerate(pair_calls(pred, gold)) if j is not None)
        if len(gold) <= len(pred):
            best = max(sum(_pair(gold[i], pred[j]) for i, j in enumerate(c))
                       for c in permutations(range(len(pred)), len(gold)))
        else:
            best = max(sum(_pair(gold[i], pred[j]) for j, i in enumerate(c))
                       for c in permutations(range(len(gold)), len(pred)))
        assert float(got) == pytest.approx(float(best))


# ------------------------------------------------------------------ malformed / hostile calls (issue 11 A.1, A.4)

def test_public_exec_score_treats_a_malformed_predicted_call_as_no_call():
    gold = [call('f', a=1)]
    for bad in ({'name': ''}, {'arguments': {}}, {'name': 3}, {'name': 'f', 'arguments': [1]}, 'oops', None, 7,
                {'name': 'f', 'arguments': '{"a": NaN}'}):
        assert exec_score([bad], gold) == exec_score([], gold) == 0.0
        assert exec_score([bad, call('f', a=1)], gold) == 1.0
        assert exec_score([bad], []) == 1.0
    assert exec_score('not a list', gold) == 0.0
    with pytest.raises(ValueError, match='name'):  # a malformed *gold* call is the data's fault: named
        exec_score([call('f')], [{'name': ''}])


@pytest.mark.parametrize('body,why', [
    ('[' * 1000 + ']' * 1000, 'nested too deeply'),  # the issue's recursion bomb, closed
    ('[' * 100_000, 'nested too deeply'),
    ('{"name": "f", "arguments": {"a": NaN}}', 'NaN is not JSON'),
    ('{"name": "f", "arguments": {"a": -Infinity}}', 'Infinity is not JSON'),
    ('{"name": "f", "arguments": {"a": 1e400}}', 'Out of range float'),
    ('{"name": "f", "arguments": {"a": ' + '7' * 400 + '.5}}', 'Out of range float'),
    ('{"name": "f", "arguments": {"a": ' + '7' * 5000 + '}}', '5000 digits'),
    ('{"name": "f\\ud800", "arguments": {}}', 'surrogate'),  # a JSON escape of a lone surrogate
    ('{"name": "f\ud800", "arguments": {}}', 'surrogate'),  # the raw code point
    ('{"name": "f", "arguments": "' + '[' * 5000 + '"}', 'nested too deeply'),
    ('{"name": ' + '[' * 900 + ']' * 900 + '}', '"name"'),
])
def test_hostile_call_text_is_unparseable_not_a_crash(body, why):
    text = f'<tool_call>\n{body}\n</tool_call>'
    p = parse_completion(text)
    assert p.calls is None and not p.format_ok and why in p.error
    assert outcome_scores(text, [call('f', a=1)]) == (0.0, 0.0)
    assert outcome_scores('<think>x</think>\n' + text, '[]') == (0.0, 0.0)


def test_loads_json_raises_only_value_error_and_keeps_valid_json():
    assert loads_json('{"a": [1, 2.5, "\\ud83d\\ude00", null, true]}') == {'a': [1, 2.5, '\U0001F600', None, True]}
    assert loads_json('1' * 4300) == int('1' * 4300)
    assert loads_json('0.' + '7' * 10_000) == pytest.approx(0.7777777)  # long but finite: fine
    for bad in ('[' * 10 ** 5, 'NaN', '{"a": Infinity}', '1e999', '"\\udfff"', '{"a"', '\x00'):
        with pytest.raises(ValueError, match='not valid JSON'):
            loads_json(bad)


def test_long_integers_are_refused_even_when_the_process_lifted_pythons_limit():
    import sys
    text = '<tool_call>\n{"name": "f", "arguments": {"a": ' + '7' * 50_000 + '}}\n</tool_call>'
    old = sys.get_int_max_str_digits()
    try:
        sys.set_int_max_str_digits(0)  # unlimited: int() of 50k digits would be slow (quadratic)
        p = parse_completion(text)
        assert p.calls is None and 'an integer of 50000 digits' in p.error
    finally:
        sys.set_int_max_str_digits(old)


def test_more_than_max_tool_call_blocks_is_unparseable():
    ok = render_tool_calls([call('f', i=i) for i in range(MAX_TOOL_CALLS)])
    assert parse_completion(ok).format_ok
    too_many = render_tool_calls([call('f', i=i) for i in range(MAX_TOOL_CALLS + 1)])
    p = parse_completion(too_many)
    assert p.calls is None and f'more than {MAX_TOOL_CALLS}' in p.error
    # blocks written inside <think> are reasoning and do not count
    assert parse_completion(f'<think>{too_many}</think>\n\n' + ok).calls is not None


def test_json_equal_compares_any_depth_without_recursion():
    def nest(leaf, depth=50_000):
        for _ in range(depth):
            leaf = [leaf]
        return leaf
    assert json_equal(nest(1), nest(1.0))
    assert not json_equal(nest(1), nest(2)) and not json_equal(nest(1), nest('1'))


def test_deep_ground_truth_is_a_broken_ground_truth_not_a_crash():
    with pytest.raises(ValueError, match='ground_truth is not valid JSON'):
        parse_ground_truth('[' * 100_000)
    with pytest.raises(ValueError, match='ground_truth'):
        parse_ground_truth('[{"name": "f", "arguments": {"a": NaN}}]')


def test_normalize_call_describes_bad_names_briefly():
    deep = []
    for _ in range(10_000):
        deep = [deep]
    with pytest.raises(ValueError, match='got a list'):
        normalize_call({'name': deep})


# ------------------------------------------------------------------ type-strict values

@pytest.mark.parametrize('a,b,equal', [
    (1, 1.0, True),  # one JSON number type
    (1, '1', False), (1, True, False), (0, False, False), (True, True, True), (None, 0, False),
    (None, None, True), ('Paris', 'paris', False), ([1, 2], [2, 1], False), ([1, 2], [1, 2.0], True),
    ({'a': [1, {'b': True}]}, {'a': [1.0, {'b': True}]}, True), ({'a': 1}, {'a': 1, 'b': 2}, False),
    ({'a': True}, {'a': 1}, False), ([], {}, False), ('', None, False),
])
def test_json_equal_is_type_strict(a, b, equal):
    assert json_equal(a, b) is equal
    assert json_equal(b, a) is equal


def test_nested_and_list_values():
    gold = [call('query', filters={'tags': ['a', 'b'], 'min': 1}, ids=[1, 2])]
    pred = [call('query', filters={'min': 1.0, 'tags': ['a', 'b']}, ids=[2, 1])]
    # r_name = 1, r_para = 1, r_value = 1 (filters equal as objects) + 0 (ids: lists are ordered); denom 4
    assert exec_score(pred, gold) == pytest.approx(3 / 4)


def test_bool_is_not_a_number_in_exec():
    # r_name 1 + r_para 1 + r_value 0, denom 3
    assert exec_score([call('f', flag=1)], [call('f', flag=True)]) == pytest.approx(2 / 3)


# ------------------------------------------------------------------ parser (Eq. 15)

QWEN3 = ('<think>\nThe user wants the weather in Paris.\n</think>\n\n'
         '<tool_call>\n{"name": "weather", "arguments": {"city": "Paris"}}\n</tool_call>\n'
         '<tool_call>\n{"name": "time", "arguments": {"tz": "CET"}}\n</tool_call>\n')


def test_qwen3_whitespace_is_free():
    p = parse_completion(QWEN3)
    assert p.format_ok and p.error is None
    assert p.reasoning == 'The user wants the weather in Paris.'
    assert p.calls == [call('weather', city='Paris'), call('time', tz='CET')]
    spaced = QWEN3.replace('</tool_call>\n<tool_call>', '</tool_call>\n\n  \n<tool_call>')
    assert parse_completion('\n  ' + spaced + '\n\n').calls == p.calls
    assert format_score(spaced) == 1.0


def test_prefilled_think_and_free_text_reasoning():
    p = parse_completion('I should look it up.\n</think>\n\n' + block(call('f')))
    assert p.format_ok and p.reasoning == 'I should look it up.' and p.calls == [call('f')]
    p = parse_completion('Let me check.\n' + block(call('f', a=1)))
    assert p.format_ok and p.reasoning == 'Let me check.' and p.calls == [call('f', a=1)]
    p = parse_completion('Just the answer: 42.')
    assert p.format_ok and p.calls == [] and p.answer == 'Just the answer: 42.'
    assert p.reasoning == 'Just the answer: 42.'


def test_parameters_synonym_and_string_arguments():
    p = parse_completion(block({'name': 'f', 'parameters': {'x': 1}}))
    assert p.format_ok and p.calls == [call('f', x=1)]
    p = parse_completion(block({'name': 'f', 'arguments': json.dumps({'x': [1, {'y': None}]})}))
    assert p.format_ok and p.calls == [call('f', x=[1, {'y': None}])]
    p = parse_completion(block({'name': 'f'}))  # no arguments at all
    assert p.format_ok and p.calls == [call('f')]


@pytest.mark.parametrize('text,why', [
    ('<tool_call>\n{"name": "f", "arguments": {"x": 1}\n</tool_call>', 'not valid JSON'),
    ('<tool_call>\n["f", {}]\n</tool_call>', 'JSON object'),
    ('<tool_call>\n{"name": 3, "arguments": {}}\n</tool_call>', 'name'),
    ('<tool_call>\n{"arguments": {}}\n</tool_call>', 'name'),
    ('<tool_call>\n{"name": "f", "arguments": [1]}\n</tool_call>', 'JSON object'),
    ('<tool_call>\n{"name": "f", "arguments": "{oops"}\n</tool_call>', 'not valid JSON'),
    (block(call('f')) + '\n<tool_call>\n{"name": "g", \n</tool_call>', 'block 1'),
    ('<think>\nlet me think <tool_call>{"name": "f"}</tool_call>', 'unclosed <think>'),
    (block(call('f')) + '\n<tool_call>\n{"name": "g", "arguments": {}}', 'unclosed <tool_call>'),
    # a block's body runs to the next </tool_call> (as vLLM's hermes parser reads it): "<tool_call>\n{..."
    ('<tool_call>\n<tool_call>\n{"name": "g"}\n</tool_call>', 'block 0: not valid JSON'),
    ('{"name": "g"}\n</tool_call>', 'stray </tool_call>'),
    (block(call('f')) + '\n</tool_call>', 'stray </tool_call>'),
    ('', 'empty answer'),
    ('<think>only thoughts</think>\n\n', 'empty answer'),
])
def test_unparseable_outputs(text, why):
    p = parse_completion(text)
    assert p.format_ok is False and p.calls is None
    assert why in p.error
    assert outcome_scores(text, [call('f')]) == (0.0, 0.0)
    assert outcome_scores(text, []) == (0.0, 0.0)


@pytest.mark.parametrize('text,why', [
    (block(call('f', a=1)) + '\nand then\n' + block(call('g')), 'text between tool_call blocks'),
    (block(call('f', a=1)) + '\n' + block(call('g')) + '\nDone!', 'text after the last tool_call block'),
    ('Sure. <think>x</think>\n' + block(call('f', a=1)) + block(call('g')), 'text before <think>'),
    ('<think>a</think><think>b</think>\n' + block(call('f', a=1)) + block(call('g')), 'more than one think'),
])
def test_layout_errors_fail_format_but_keep_calls(text, why):
    p = parse_completion(text)
    assert p.format_ok is False and why in p.error
    assert p.calls == [call('f', a=1), call('g')]
    # S_exec is still computed on the extracted calls (ToolRL convention)
    assert outcome_scores(text, [call('f', a=1), call('g')]) == (0.0, 1.0)


def test_tool_call_inside_think_is_reasoning_not_an_action():
    p = parse_completion('<think>maybe <tool_call>{"name": "g"}</tool_call>? no.</think>\n\nNo call needed.')
    assert p.format_ok and p.calls == [] and p.answer == 'No call needed.'
    assert 'maybe' in p.reasoning


# ------------------------------------------------------------------ ground truth

def test_parse_ground_truth_forms():
    want = [call('f', x=1), call('g')]
    assert parse_ground_truth(json.dumps(want)) == want
    assert parse_ground_truth(want) == want
    assert parse_ground_truth('[{"name": "f", "parameters": "{\\"x\\": 1}"}, {"name": "g"}]') == want
    assert parse_ground_truth('[]') == []


@pytest.mark.parametrize('gt,why', [
    ('oops', 'not valid JSON'), ('{"name": "f"}', 'must be a list'), (None, 'must be a list'),
    ('[{"arguments": {}}]', r'ground_truth\[0\]: .*name'), ('[{"name": "f"}, 3]', r'ground_truth\[1\]'),
    ('[{"name": "f", "arguments": [1]}]', 'JSON object'), ('[{"name": "f", "arguments": "{bad"}]', 'not valid JSON'),
])
def test_parse_ground_truth_errors_name_the_problem(gt, why):
    with pytest.raises(ValueError, match=why):
        parse_ground_truth(gt)
    with pytest.raises(ValueError):
        outcome_scores(block(call('f')), gt)


# ------------------------------------------------------------------ render_tool_calls

CALL_SETS = [
    [call('f', x=1)],
    [call('weather', city='Zürich', units=None), call('search', q='猫', filters={'n': [1, 2.5, True]})],
    [call('noargs'), call('noargs'), call('nested', a={'b': {'c': [{'d': 'e'}]}})],
]


@pytest.mark.parametrize('calls', CALL_SETS)
def test_render_round_trip(calls):
    text = render_tool_calls(calls)
    p = parse_completion(text)
    assert p.format_ok and p.calls == calls
    assert parse_completion('<think>\nwhy\n</think>\n\n' + text).calls == calls


def test_render_exact_text_and_normalisation():
    assert render_tool_calls([call('f', x=1), call('g')]) == (
        '<tool_call>\n{"name": "f", "arguments": {"x": 1}}\n</tool_call>\n'
        '<tool_call>\n{"name": "g", "arguments": {}}\n</tool_call>')
    assert render_tool_calls([{'name': 'f', 'parameters': '{"x": 1}'}]) == render_tool_calls([call('f', x=1)])
    with pytest.raises(ValueError, match='name'):
        render_tool_calls([{'arguments': {}}])


# ------------------------------------------------------------------ invariants against a reference

def _pair(g, p):
    a, b = set(g['arguments']), set(p['arguments'])
    jac = Fraction(len(a & b), len(a | b)) if a | b else Fraction(1)
    return jac + sum(1 for k, v in g['arguments'].items() if k in p['arguments'] and json_equal(v, p['arguments'][k]))


def _reference_exec(pred, gold, name_match='multiset'):
    """Independent brute force: maximise over every injective same-name pairing, exact fractions."""
    if not gold:
        return Fraction(int(not pred))
    if name_match == 'set':
        nt, np_ = {g['name'] for g in gold}, {p['name'] for p in pred}
        r_name = Fraction(len(nt & np_), len(nt | np_))
    else:  # names as multisets
        ct, cp = Counter(g['name'] for g in gold), Counter(p['name'] for p in pred)
        r_name = Fraction(sum((ct & cp).values()), sum((ct | cp).values()))
    pair = _pair

    best = Fraction(0)
    slots = list(range(len(pred))) + [None] * len(gold)
    for choice in set(permutations(slots, len(gold))):
        if any(j is not None and pred[j]['name'] != g['name'] for g, j in zip(gold, choice)):
            continue
        best = max(best, sum((pair(g, pred[j]) for g, j in zip(gold, choice) if j is not None), Fraction(0)))
    denom = 1 + len(gold) + sum(len(g['arguments']) for g in gold)
    return (r_name + best) / denom


def test_exec_matches_brute_force_reference_on_random_cases():
    rng = random.Random(0)
    values = [0, 1, 1.0, True, False, '1', 'a', None, [1], {'k': 1}]

    def rand_call():
        keys = rng.sample(['a', 'b', 'c'], rng.randint(0, 3))
        return call(rng.choice(['f', 'g', 'h']), **{k: rng.choice(values) for k in keys})

    for _ in range(300):
        gold = [rand_call() for _ in range(rng.randint(0, 3))]
        pred = [rand_call() for _ in range(rng.randint(0, 3))]
        s = exec_score(pred, gold)
        assert 0.0 <= s <= 1.0
        assert s == pytest.approx(float(_reference_exec(pred, gold)))
        assert exec_score(pred, gold, 'set') == pytest.approx(float(_reference_exec(pred, gold, 'set')))
        f, e = outcome_scores(render_tool_calls(pred) or 'No call.', json.dumps(gold))
        assert f == 1.0 and e == pytest.approx(s)


# ------------------------------------------------------------------ ms-swift glue

@pytest.fixture(scope='module')
def swift_funcs():
    pytest.importorskip('swift')
    from plugin import orm_outcome
    return orm_outcome


def test_render_matches_ms_swift_hermes_template(swift_funcs):
    from swift.agent_template.hermes import HermesAgentTemplate
    tmpl = HermesAgentTemplate()
    for calls in CALL_SETS:
        msgs = [{'role': 'tool_call', 'content': json.dumps(c, ensure_ascii=False)} for c in calls]
        assert tmpl._format_tool_calls(msgs) == render_tool_calls(calls)
        got = tmpl.get_toolcall(render_tool_calls(calls))
        assert [(f.name, json.loads(f.arguments) if isinstance(f.arguments, str) else f.arguments)
                for f in got] == [(c['name'], c['arguments']) for c in calls]


def test_orms_through_ms_swift_reward_loop(swift_funcs, tmp_path, caplog):
    """The classes built as the trainer builds them (``Cls(args=GRPOConfig)``) and called by ms-swift's own
    ``compute_rewards_per_func`` on real samples: None becomes NaN, broken ground truth is named once."""
    import math

    from swift.rl_core.data import OnPolicySample
    from swift.rl_core.grpo_algorithm import compute_rewards_per_func
    from swift.rlhf_trainers import GRPOConfig

    args = GRPOConfig(output_dir=str(tmp_path), use_cpu=True, report_to='none')
    funcs = [swift_funcs.AWPOOutcome(args=args), swift_funcs.AWPOFormat(args=args), swift_funcs.AWPOExec(args=args)]
    gold = json.dumps([call('weather', city='Paris')])
    rows = [
        (QWEN3, gold),  # format 1; exec: r_name 1/2, r_para 1, r_value 1, denom 3 -> 5/6
        ('<think>x</think>\n\n' + block(call('weather', city='Paris')), gold),  # 1, 1
        ('<think>unclosed', gold),  # 0, 0
        ('The capital is Paris.', '[]'),  # 1, 1
        (block(call('weather', city='Paris')), 'not json'),  # broken ground truth
        (block(call('weather', city='Paris')), 'not json'),  # same row again: still one warning
    ]
    samples = [OnPolicySample.from_row({
        'messages': [{'role': 'user', 'content': 'q'}, {'role': 'assistant', 'content': text}],
        'ground_truth': gt, 'prompt_id': f'p{i // 5}'}) for i, (text, gt) in enumerate(rows)]
    with caplog.at_level('WARNING', logger='awpo'):
        r = compute_rewards_per_func(samples, funcs, None, device='cpu').tolist()
    want = [(1 + 5 / 6, 1.0, 5 / 6), (2.0, 1.0, 1.0), (0.0, 0.0, 0.0), (2.0, 1.0, 1.0)]
    for got, exp in zip(r, want):
        assert got == pytest.approx(list(exp))
    for i in (4, 5):
        assert math.isnan(r[i][0]) and math.isnan(r[i][2]) and r[i][1] == 1.0  # format needs no ground truth
    broken = [m for m in caplog.messages if 'broken ground_truth' in m]
    assert len(broken) == 2 and all("prompt_id='p0'" in m or "prompt_id='p1'" in m for m in broken)
    assert {m.split(':')[0] for m in broken} == {'[AWPO] AWPOOutcome', '[AWPO] AWPOExec'}


def test_orm_inputs_other_than_plain_text(swift_funcs, caplog):
    orm = swift_funcs.AWPOOutcome()
    gold = json.dumps([call('f', a=1)])
    parts = [{'type': 'text', 'text': '<think>x</think>\n\n'}, {'type': 'text', 'text': block(call('f', a=1))}]
    msgs = [[{'role': 'assistant', 'content': block(call('f', a=1)), 'reasoning_content': 'split by the parser'}]]
    assert orm([parts], ground_truth=[gold]) == [2.0]
    assert orm([block(call('f', a=1))], ground_truth=[gold], messages=msgs) == [2.0]
    assert orm([None], ground_truth=['[]']) == [0.0]  # empty answer: format 0, unparseable
    with caplog.at_level('WARNING', logger='awpo'):
        assert orm([[1, 2, 3]], ground_truth=[gold]) == [None]
        assert orm(['hi', 'ho'], other=[1, 2]) == [None, None]  # no ground_truth column at all
    assert any('not text' in m for m in caplog.messages)
    assert any('no "ground_truth" column' in m for m in caplog.messages)


def test_orm_name_match_follows_the_config(swift_funcs, monkeypatch):
    """``reward_name_match`` (``AWPO_REWARD_NAME_MATCH``): multiset by default, the paper's set on request."""
    import os
    for k in [k for k in os.environ if k.startswith('AWPO_')]:
        monkeypatch.delenv(k)
    gold = json.dumps([call('search', q='paris', n=5)])
    twice = render_tool_calls([call('search', q='paris', n=5)] * 2)
    # format 1 + exec (1/2 + 1 + 2) / 4
    assert swift_funcs.AWPOOutcome()([twice], ground_truth=[gold]) == [pytest.approx(1 + 3.5 / 4)]
    assert swift_funcs.AWPOExec()([twice], ground_truth=[gold]) == [pytest.approx(3.5 / 4)]
    monkeypatch.setenv('AWPO_REWARD_NAME_MATCH', 'set')
    assert swift_funcs.AWPOOutcome()([twice], ground_truth=[gold]) == [2.0]
    monkeypatch.setenv('AWPO_REWARD_NAME_MATCH', 'sets')
    with pytest.raises(ValueError, match='reward_name_match'):
        swift_funcs.AWPOOutcome()


def test_orm_content_parts_that_are_not_text_are_ignored(swift_funcs):
    parts = [{'type': 'text', 'text': 5}, {'type': 'text', 'text': None}, {'type': 'text', 'text': 'Paris.'}]
    assert swift_funcs.AWPOOutcome()([parts], ground_truth=['[]']) == [2.0]
    msgs = [[{'role': 'assistant', 'content': 'Paris.', 'reasoning_content': ['not', 'text']}]]
    assert swift_funcs.AWPOOutcome()(['Paris.'], ground_truth=['[]'], messages=msgs) == [2.0]


def test_orm_scores_an_internal_parser_failure_as_unparseable(swift_funcs, monkeypatch, caplog):
    """Defence in depth: should the parser ever raise on some text (a bug), that completion scores 0 with one
    warning instead of ending the training step. (Fault injected: the parser is replaced by one that raises.)"""
    def broken_parser(text):
        raise RecursionError('simulated parser bug')
    monkeypatch.setattr(swift_funcs, 'parse_completion', broken_parser)
    with caplog.at_level('WARNING', logger='awpo'):
        assert swift_funcs.AWPOOutcome()(['a', 'b'], ground_truth=['[]', '[]']) == [0.0, 0.0]
        assert swift_funcs.AWPOFormat()(['a']) == [0.0]
    assert sum('RecursionError' in m and 'unparseable' in m for m in caplog.messages) == 2  # once per ORM


# ------------------------------------------------------------------ tag text inside values (issue 19.5)

TAGS = ['<think>', '</think>', '<tool_call>', '<think></think>', '<tool_call>\n', '</think>\n\n<tool_call>\n']
PREFIXES = ['', '<think>\nThe user asks about a tag.\n</think>\n\n', 'The user asks about a tag.\n</think>\n\n',
            '<think>\nI will write a <tool_call> block; </tool_call> ends it.\n</think>\n\n']


@pytest.mark.parametrize('tag', TAGS)
@pytest.mark.parametrize('prefix', PREFIXES)
def test_exact_gold_with_tag_text_scores_two_above_a_wrong_value(tag, prefix):
    """Issue 19.5: gold `search(q="what does <think> mean")` written as render_tool_calls / ms-swift's hermes
    template write it scores 2.0 (it scored 1.0: think tags were counted inside the JSON; `<tool_call>` 0)."""
    gold = [call('search', q=f'what does {tag} mean', n=3)]
    text = prefix + render_tool_calls(gold)
    p = parse_completion(text)
    assert p.format_ok and p.error is None and p.calls == gold
    assert outcome_scores(text, json.dumps(gold)) == (1.0, 1.0)
    for wrong in ('what does think mean', f'what does {tag}', tag):
        assert sum(outcome_scores(prefix + render_tool_calls([call('search', q=wrong, n=3)]), gold)) < 2.0
    two = [call('search', q=tag, n=1), call('lookup', term={tag: [tag, 1]})]
    assert parse_completion(prefix + render_tool_calls(two)).calls == two


def test_close_tag_in_a_value_is_the_one_unreadable_case():
    """A value holding `</tool_call>` ends its block there: vLLM's hermes parser (`<tool_call>(.*?)</tool_call>`)
    cannot read it either. render_tool_calls refuses to write it; the text as the template writes it is
    unparseable; data_prep skips such dialogues (tests/test_data_prep_real.py)."""
    gold = [call('search', q='what does </tool_call> mean')]
    with pytest.raises(ValueError, match='</tool_call>'):
        render_tool_calls(gold)
    text = '<think>\nx\n</think>\n\n' + block(gold[0])
    assert parse_completion(text).calls is None and outcome_scores(text, gold) == (0.0, 0.0)


def test_tag_text_outside_json_still_fails_the_format():
    assert not parse_completion('<think>a</think>\n<think>b</think>\n' + block(call('f'))).format_ok
    p = parse_completion(block(call('f')) + '\n<think>late</think>')
    assert p.calls == [call('f')] and not p.format_ok and 'more than one think' in p.error
    assert parse_completion('<think>a</think>\nanswer <think> again').error == 'more than one think block'


_LEAVES = ['<think>', '</think>', '<tool_call>', '<tool_call>\n', '\n', ' ', '"', '\\', '/', '<', '>', 'think',
           'tool_call', 'a', 'é', '猫', '\u200b', '{', '}', '[', ']', ':', ',', '\\n', '\U0001F642', '\t']


def _random_string(rng):
    return ''.join(rng.choice(_LEAVES) for _ in range(rng.randint(0, 6)))


def _random_value(rng, depth=0):
    kind = rng.random()
    if depth < 3 and kind < 0.15:
        return [_random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    if depth < 3 and kind < 0.3:
        return {_random_string(rng): _random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))}
    if kind < 0.8:
        return _random_string(rng)
    return rng.choice([0, -7, 2.5, 1e-9, True, False, None, 10 ** 18])


def _random_calls(rng):
    names = ['search', 'f', '<think>', 'get <tool_call> info', 'x</think>']
    return [{'name': rng.choice(names), 'arguments': {_random_string(rng) or 'k': _random_value(rng)
                                                      for _ in range(rng.randint(0, 4))}}
            for _ in range(rng.randint(1, 4))]


def test_render_then_parse_is_the_identity_on_values_drawn_with_tag_text():
    """Property (seeded generator, 1500 call sets): parse_completion(render_tool_calls(x)).calls == x for
    names, keys and values drawn from tag strings, behind every prefix; the exact gold scores 2.0 and a
    changed value scores below it."""
    rng = random.Random(19)
    for _ in range(1500):
        calls = _random_calls(rng)
        prefix = rng.choice(PREFIXES)
        text = prefix + render_tool_calls(calls)
        p = parse_completion(text)
        assert p.calls == calls and p.format_ok, (text, p.error)
        assert outcome_scores(text, calls) == (1.0, 1.0)
        wrong = [dict(c, arguments=dict(c['arguments'])) for c in calls]
        if wrong[0]['arguments']:
            key = next(iter(wrong[0]['arguments']))
            wrong[0]['arguments'][key] = ['<think>changed</think>', wrong[0]['arguments'][key]]
            assert sum(outcome_scores(prefix + render_tool_calls(wrong), calls)) < 2.0


# ------------------------------------------------------------------ invisible answers (issue 19.6)

@pytest.mark.parametrize('answer', ['\u200b', '\ufeff', '\u2060', '\u00ad', '\x00', '\u200e\u200f', '\u202e',
                                    '\u2800', '\u3164', '\u0301', '\ufe0f', '\x7f', '\u200b \u2060\n\ufeff', ' \n\t'])
def test_invisible_only_text_answer_scores_as_empty(answer):
    """Where no call is expected, an answer that shows nothing scores 0 like a whitespace-only one (it scored
    2.0: str.strip() keeps format and control characters)."""
    for prefix in ('', '<think>\nNo tool fits.\n</think>\n\n'):
        p = parse_completion(prefix + answer)
        assert p.calls is None and p.error == 'empty answer'
        assert outcome_scores(prefix + answer, []) == (0.0, 0.0)


@pytest.mark.parametrize('answer', ['No.', '\u200bNo tool fits.', '猫', '\U0001F642', 'é', '0', '-'])
def test_visible_text_answers_still_count(answer):
    assert outcome_scores('<think>\nx\n</think>\n\n' + answer, []) == (1.0, 1.0)


def test_tag_text_values_read_alike_by_ms_swift_hermes_template(swift_funcs):
    """ms-swift's hermes template reads `<tool_call>(.+?)</tool_call>` (DOTALL): it reads the calls this parser
    reads from values holding tag text, and, like it, cannot read a value holding `</tool_call>`."""
    from swift.agent_template.hermes import HermesAgentTemplate
    tmpl = HermesAgentTemplate()
    rng = random.Random(7)
    for calls in [[call('search', q=f'what does {t} mean') for t in TAGS]] + [_random_calls(rng) for _ in range(200)]:
        msgs = [{'role': 'tool_call', 'content': json.dumps(c, ensure_ascii=False)} for c in calls]
        text = render_tool_calls(calls)
        assert tmpl._format_tool_calls(msgs) == text
        got = [(f.name, json.loads(f.arguments) if isinstance(f.arguments, str) else f.arguments)
               for f in tmpl.get_toolcall(text)]
        assert got == [(c['name'], c['arguments']) for c in calls] == [(c['name'], c['arguments'])
                                                                        for c in parse_completion(text).calls]
    broken = block(call('search', q='a </tool_call> b'))
    assert parse_completion(broken).calls is None
    assert [f.name for f in tmpl.get_toolcall(broken)] != ['search']
