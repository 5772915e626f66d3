"""Fuzz of the outcome reward through the ORMs as ms-swift registers and builds them (issue 11, A).

The policy is optimised against the reward, so its text is hostile input. Over seeded random edits of valid
completions and a list of degenerate outputs (deep nesting, 1 MB of text, 10k blocks, NaN / Infinity /
1e400, 5000-digit numbers, lone surrogates, NUL bytes), every registered outcome reward must return a
number (never raise, never None), R_out in [0, 2] equal to S_format + S_exec, and take under 50 ms per
completion. The judge's input path (same parser) must not raise either. Runtime: ~15 s on the 2-core box.
"""
from __future__ import annotations

import json
import math
import random
import time

import pytest

from benchmarks.bench_outcome import make_case
from plugin.toolcall_format import MAX_COMPLETION_CHARS

BOUND_S = 0.050  # per completion, best of 3 runs (a shared CI box's scheduler noise is not the reward's work)
GOLDS = ['[]', json.dumps([{'name': 'f', 'arguments': {'a': 1}}]),
         json.dumps([{'name': 'search', 'arguments': {'q': 'paris', 'n': 5}}] * 2)]

TOKENS = ['<tool_call>', '</tool_call>', '<think>', '</think>', '<tool_call>\n', '\n</tool_call>', '{', '}', '[',
          ']', '"', ':', ',', '\\', '\\u', '\\ud800', '\ud800', '\udfff', '\x00', 'NaN', 'Infinity', '-Infinity',
          '1e400', '-1e400', '9' * 5000, 'null', 'true', '"name"', '"arguments"', '"parameters"', '"name": ""',
          '\n', ' ', '\u2028', '\ufeff', '\U0001F642', '{"name": "f", "arguments": {"a": 1}}']


def _block(body: str) -> str:
    return f'<tool_call>\n{body}\n</tool_call>'


def _near_cap_cases() -> list:
    """The most work the parser accepts: completions just under MAX_COMPLETION_CHARS."""
    room = MAX_COMPLETION_CHARS - 200
    keys = {f'k{i}': i for i in range(room // 12)}
    many = json.dumps({'name': 'f', 'arguments': {'a': 1}})
    return [('cap: text answer', 'w ' * (room // 2)), ('cap: reasoning', '<think>' + 'r ' * (room // 2) + '</think>\nok'),
            ('cap: string value', _block(json.dumps({'name': 'f', 'arguments': {'a': 's' * room}}))),
            ('cap: many keys', _block(json.dumps({'name': 'f', 'arguments': keys}))),
            ('cap: many small ints', _block('{"name": "f", "arguments": {"a": [' + '1,' * (room // 2 - 10) + '1]}}')),
            ('cap: many floats', _block('{"name": "f", "arguments": {"a": [' + '1.5,' * (room // 4 - 10) + '1]}}')),
            ('cap: deep value', _block('{"name": "f", "arguments": {"a": ' + '[' * (room // 2) + ']' * (room // 2) + '}}')),
            ('cap: 64 big calls', '\n'.join(_block(json.dumps({'name': 'f', 'arguments': {f'k{i}': 'v' for i in
                                                               range(room // 64 // 10)}})) for _ in range(64))),
            ('cap: 64 calls x 5 gold', '\n'.join([_block(many)] * 64) + ' ' * (room - 64 * 60)),
            ('cap: invisible answer', '\u200b' * room), ('cap: invisible mix', ('\u200b\u2060\ufeff\u00ad\x00 ' * room)[:room]),
            ('cap: lone combining marks', ''.join(chr(0x300 + i % 112) for i in range(room))),
            ('cap: tag text in values', _block(json.dumps({'name': 'f', 'arguments': {'a': '<tool_call><think></think>' * (room // 30)}}))),
            ('cap: 1 over', 'x' * (MAX_COMPLETION_CHARS + 1))]


def degenerate_cases() -> list:
    mb = 1_000_000
    out = _near_cap_cases()
    for n in (1000, 10_000, 100_000):
        out += [(f'[ x {n} bare', '[' * n), (f'[ x {n} in block, closed', _block('[' * n + ']' * n)),
                (f'[ x {n} in block, unclosed', _block('[' * n)), (f'[ x {n} no close tag', '<tool_call>' + '[' * n),
                (f'{{"a": x {n}', _block('{"a": ' * n + '1' + '}' * n)),
                (f'[ x {n} in arguments string', _block('{"name": "f", "arguments": "' + '[' * n + '"}')),
                (f'[ x {n} as arguments', _block('{"name": "f", "arguments": ' + '[' * n + ']' * n + '}')),
                (f'[ x {n} as value', _block('{"name": "f", "arguments": {"a": ' + '[' * n + ']' * n + '}}'))]
    out += [('1 MB plain text', 'x' * mb), ('1 MB reasoning', '<think>' + 'y ' * (mb // 2) + '</think>\nok'),
            ('1 MB unclosed think', '<think>' + 'z' * mb), ('1 MB of <', '<' * mb),
            ('1 MB string value', _block(json.dumps({'name': 'f', 'arguments': {'a': 'v' * mb}}))),
            ('1 MB of digits as value', _block('{"name": "f", "arguments": {"a": ' + '7' * mb + '}}')),
            ('1 MB float', _block('{"name": "f", "arguments": {"a": 0.' + '7' * mb + '}}')),
            ('1 MB in a block', _block('q' * mb)),
            ('100k keys', _block(json.dumps({'name': 'f', 'arguments': {f'k{i}': i for i in range(100_000)}})))]
    call = json.dumps({'name': 'f', 'arguments': {'a': 1}})
    out += [('10k valid blocks', '\n'.join([_block(call)] * 10_000)),
            ('10k stray closes', '</tool_call>' * 10_000), ('10k opens', '<tool_call>' * 10_000),
            ('10k blocks in think', '<think>' + _block(call) * 10_000 + '</think>\n' + _block(call)),
            ('64 blocks', '\n'.join([_block(call)] * 64)), ('10k think tags', '<think></think>' * 10_000)]
    for lit in ('NaN', 'Infinity', '-Infinity', '1e400', '-1e400', '9' * 5000, '-' + '9' * 5000, '0.' + '1' * 5000,
                '1' + '0' * 400 + '.5', '1e-400'):
        out.append((f'value {lit[:12]}', _block('{"name": "f", "arguments": {"a": %s}}' % lit)))
        out.append((f'arguments {lit[:12]} as string', _block(json.dumps({'name': 'f', 'arguments': '{"a": %s}' % lit}))))
    for s in ('\ud800', '\\ud800', '\udfff', '\\udfff', '\\ud83d', '\x00', '\\u0000'):
        out += [(f'name with {s!r}', _block('{"name": "f%s", "arguments": {}}' % s)),
                (f'value with {s!r}', _block('{"name": "f", "arguments": {"a": "%s"}}' % s)),
                (f'key with {s!r}', _block('{"name": "f", "arguments": {"%s": 1}}' % s)),
                (f'reasoning with {s!r}', f'<think>why{s}</think>\n' + _block(call)),
                (f'answer with {s!r}', f'the answer{s}')]
    out += [('NUL everywhere', '\x00'.join('<think>a</think>\n' + _block(call))), ('only NUL', '\x00' * 1000),
            ('empty', ''), ('whitespace', ' \n\t' * 1000), ('name empty', _block('{"name": ""}')),
            ('name is deep list', _block('{"name": ' + '[' * 900 + ']' * 900 + '}')),
            ('name is huge int', _block('{"name": ' + '9' * 4000 + '}'))]
    return out


def mutate(text: str, rng: random.Random) -> str:
    """1-4 random edits: delete / insert a token / duplicate / truncate / replace a char / swap spans."""
    for _ in range(rng.randint(1, 4)):
        n = len(text)
        i, j = sorted((rng.randint(0, n), rng.randint(0, n)))
        op = rng.randrange(6)
        if op == 0:
            text = text[:i] + text[j:]
        elif op == 1:
            text = text[:i] + rng.choice(TOKENS) * rng.choice((1, 1, 2, 50)) + text[i:]
        elif op == 2:
            text = text[:j] + text[i:j] * rng.randint(1, 3) + text[j:]
        elif op == 3:
            text = text[:j]
        elif op == 4 and n:
            text = text[:i] + rng.choice('{}[]":,\\<>/\x00\ud800nN1e-') + text[i + 1:]
        else:
            k = rng.randint(j, n)
            text = text[:i] + text[j:k] + text[i:j] + text[k:]
    return text


def random_cases(n: int, seed: int = 11) -> list:
    rng = random.Random(seed)
    out = []
    for t in range(n):
        text, gt = make_case(rng)
        out.append((f'mutant {t}', mutate(text, rng), gt))
    return out


@pytest.fixture(scope='module')
def registered_orms(tmp_path_factory):
    """The outcome rewards exactly as ms-swift gets them: ``orms[name]`` after the plugin's registration,
    built as the trainer builds them (``Cls(args=GRPOConfig)``)."""
    pytest.importorskip('swift')
    from swift.rewards import orms
    from swift.rlhf_trainers import GRPOConfig

    from plugin.registry import register_rewards
    register_rewards()
    args = GRPOConfig(output_dir=str(tmp_path_factory.mktemp('fuzz')), use_cpu=True, report_to='none')
    return {name: orms[name](args=args) for name in ('awpo_outcome', 'awpo_format', 'awpo_exec')}


def _score_all(orms, text, gt):
    r = orms['awpo_outcome']([text], ground_truth=[gt])[0]
    f = orms['awpo_format']([text], ground_truth=[gt])[0]
    e = orms['awpo_exec']([text], ground_truth=[gt])[0]
    return r, f, e


def _check(name, r, f, e):
    for v in (r, f, e):
        assert isinstance(v, float) and math.isfinite(v), (name, r, f, e)
    assert 0.0 <= r <= 2.0 and f in (0.0, 1.0) and 0.0 <= e <= 1.0, (name, r, f, e)
    assert r == pytest.approx(f + e), (name, r, f, e)


def _time_outcome(orm, text, gt, repeats=3) -> float:
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        orm([text], ground_truth=[gt])
        best = min(best, time.perf_counter() - t0)
    return best


def test_degenerate_outputs_through_registered_orms(registered_orms):
    cases = degenerate_cases()
    worst, worst_name = 0.0, ''
    for name, text in cases:
        for gt in GOLDS:
            _check(name, *_score_all(registered_orms, text, gt))
        dt = _time_outcome(registered_orms['awpo_outcome'], text, GOLDS[1])
        if dt > worst:
            worst, worst_name = dt, name
    print(f'\n[fuzz] degenerate: {len(cases)} outputs x {len(GOLDS)} golds; max time per completion '
          f'(awpo_outcome, best of 3): {worst * 1000:.1f} ms ({worst_name})')
    assert worst < BOUND_S, f'{worst_name}: {worst * 1000:.1f} ms'


def test_random_edits_of_valid_completions_through_registered_orms(registered_orms):
    cases = random_cases(3000)
    orm = registered_orms['awpo_outcome']
    worst, worst_name, unparseable = 0.0, '', 0
    for name, text, gt in cases:
        t0 = time.perf_counter()
        r = orm([text], ground_truth=[gt])[0]
        dt = time.perf_counter() - t0
        if dt > BOUND_S / 5:  # re-measure anything slow: best of 3
            dt = _time_outcome(orm, text, gt)
        if dt > worst:
            worst, worst_name = dt, name
        f, e = registered_orms['awpo_format']([text])[0], registered_orms['awpo_exec']([text], ground_truth=[gt])[0]
        _check(name, r, f, e)
        unparseable += f == 0.0
    print(f'\n[fuzz] random edits: {len(cases)} completions ({unparseable} fail the format); max time per '
          f'completion: {worst * 1000:.2f} ms ({worst_name})')
    assert unparseable > len(cases) // 10  # the edits do break things: the fuzz reaches the error paths
    assert worst < BOUND_S, f'{worst_name}: {worst * 1000:.1f} ms'


def test_degenerate_batch_through_ms_swift_reward_loop(registered_orms):
    """One batch of every degenerate output through ms-swift's own ``compute_rewards_per_func``: no NaN."""
    from swift.rl_core.data import OnPolicySample
    from swift.rl_core.grpo_algorithm import compute_rewards_per_func
    cases = [c for c in degenerate_cases() if len(c[1]) < 200_000]  # keep the batch's memory small
    samples = [OnPolicySample.from_row({
        'messages': [{'role': 'user', 'content': 'q'}, {'role': 'assistant', 'content': text}],
        'ground_truth': GOLDS[1], 'prompt_id': f'p{i}'}) for i, (_, text) in enumerate(cases)]
    funcs = [registered_orms[k] for k in ('awpo_outcome', 'awpo_format', 'awpo_exec')]
    r = compute_rewards_per_func(samples, funcs, None, device='cpu')
    assert r.shape == (len(cases), 3)
    assert not r.isnan().any() and (r[:, 0] >= 0).all() and (r[:, 0] <= 2).all()
    assert (r[:, 0] - r[:, 1] - r[:, 2]).abs().max() < 1e-6


def test_judge_input_path_does_not_raise_on_degenerate_outputs():
    """The judge reads the completion through the same parser (``judge_input``) and the rubric backend
    scores it with the same pairing: neither raises on what the policy wrote."""
    from plugin.judge_base import JudgeSample, judge_input
    from plugin.judge_rubric import rubric_score
    for name, text in degenerate_cases() + [(n, t) for n, t, _ in random_cases(300, seed=5)]:
        inp = judge_input(JudgeSample(completion=text, ground_truth=GOLDS[1], reference_rationale='r', tools='[]'))
        assert isinstance(inp.candidate_reasoning, str) and isinstance(inp.candidate_action, str), name
        s = rubric_score(text, GOLDS[1], 'r', '[]', 6000)
        assert 0.0 <= s <= 1.0, name


@pytest.mark.parametrize('reply', ['[' * 100_000, '{"score": ' * 5000, '{"score": 1e400}', '{"score": NaN}',
                                   '\x00', '\ud800', '```json\n' + '[' * 5000 + '\n```', '<think>' + '{' * 5000])
def test_judge_reply_parser_does_not_raise_on_hostile_replies(reply):
    """The judge's own reply is model text too: a malformed one is 'no score', never an exception that
    would drop the whole batch."""
    from plugin.judge_prompt import parse_reply
    score, why = parse_reply(reply)
    assert score is None and why in ('malformed_reply', 'schema_mismatch', 'empty_reply'), why
