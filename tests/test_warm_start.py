"""Issue 10 warm start: the BFCL live split, its conversion, the warm-start completion marker, the held-out scorer."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from data_prep import bfcl_live
from cpu_model import heldout
from cpu_model import warm_start


@pytest.fixture(scope='module')
def bfcl_data(bfcl_python) -> Path:  # bfcl_python: skip/fail exactly as the other bfcl-eval tests do
    return bfcl_live.bfcl_data_dir()


@pytest.fixture(scope='module')
def split():
    return bfcl_live.load_split()


# ---------------------------------------------------------------- the split

def test_split_parts_disjoint_and_grouped(split):
    parts = {p: set(split[p]) for p in bfcl_live.PARTS}
    assert all(len(parts[p]) == len(split[p]) for p in parts), 'duplicate id inside a part'
    assert not parts['sft'] & parts['rl'] and not parts['sft'] & parts['heldout'] and not parts['rl'] & parts['heldout']
    assert len(parts['heldout']) >= 40 and len(parts['rl']) >= 40 and len(parts['sft']) >= 150
    # A function group (cases sharing the tool) never straddles two parts: held-out tools are unseen in SFT.
    groups = {p: {bfcl_live.function_group(i) for i in parts[p]} for p in parts}
    assert not groups['sft'] & groups['heldout'] and not groups['sft'] & groups['rl'] and not groups['rl'] & groups['heldout']
    for cid in set().union(*parts.values()):
        assert cid.rsplit('_', 1)[0] in split['categories'] == list(bfcl_live.TRAIN_CATEGORIES)


def test_split_never_touches_an_evaluated_category():
    from eval import bfcl
    evaluated = set(bfcl.NON_LIVE) | {'irrelevance'} | set(bfcl.MULTI_TURN.values())
    assert evaluated <= set(bfcl_live.EVAL_ONLY_CATEGORIES)
    assert not set(bfcl_live.TRAIN_CATEGORIES) & set(bfcl_live.EVAL_ONLY_CATEGORIES)


def test_no_training_question_appears_in_an_evaluated_category(split, bfcl_data):
    """Beyond ids: the text of every split question is absent from the evaluation-only categories."""
    used = set().union(*(split[p] for p in bfcl_live.PARTS))
    train_q = set()
    for cat in bfcl_live.TRAIN_CATEGORIES:
        for case, _ in bfcl_live.load_category(bfcl_data, cat, answers=False):
            if case['id'] in used:
                train_q.add(case['question'][0][-1]['content'].strip())
    assert len(train_q) > 200
    for cat in bfcl_live.EVAL_ONLY_CATEGORIES:
        for case, _ in bfcl_live.load_category(bfcl_data, cat, answers=False):
            texts = {m['content'].strip() for turn in case['question'] for m in turn if isinstance(m.get('content'), str)}
            assert not texts & train_q, f'{case["id"]} asks a training question'


def test_make_split_reproduces_the_committed_file(split, bfcl_data):
    again = bfcl_live.make_split(bfcl_data, seed=split['seed'], max_chars=split['max_chars'])
    assert {p: again[p] for p in bfcl_live.PARTS} == {p: split[p] for p in bfcl_live.PARTS}


# ---------------------------------------------------------------- conversion of real cases (hand-checked)

def _case(bfcl_data, cat, cid):
    return next((c, a) for c, a in bfcl_live.load_category(bfcl_data, cat) if c['id'] == cid)


def test_convert_live_simple_0(bfcl_data):
    row = bfcl_live.convert_case(*_case(bfcl_data, 'live_simple', 'live_simple_0-0-0'))
    assert row['messages'] == [{'role': 'user', 'content': 'Can you retrieve the details for the user with the ID '
                                                           '7890, who has black as their special request?'}]
    assert json.loads(row['ground_truth']) == [{'name': 'get_user_info', 'arguments': {'user_id': 7890, 'special': 'black'}}]
    (tool,) = json.loads(row['tools'])
    params = tool['function']['parameters']
    assert tool['type'] == 'function' and tool['function']['name'] == 'get_user_info'
    assert params['type'] == 'object' and params['required'] == ['user_id']          # BFCL 'dict' -> 'object'
    assert params['properties']['user_id']['type'] == 'integer'
    assert params['properties']['special']['default'] == 'none'
    assert row['reference_rationale'] == 'The request needs get_user_info with user_id=7890, special="black".'
    assert (row['source'], row['dialogue_id'], row['step'], row['reference_answer']) == (
        'bfcl_live', 'live_simple_0-0-0', 0, '')


def test_convert_optional_parameter_and_nested_dict(bfcl_data):
    # live_simple_11-3-7: unit accepts ["", "fahrenheit"] -> may be omitted -> left out; location takes the first option.
    row = bfcl_live.convert_case(*_case(bfcl_data, 'live_simple', 'live_simple_11-3-7'))
    assert json.loads(row['ground_truth']) == [{'name': 'get_current_weather', 'arguments': {'location': 'Naples, FL'}}]
    # live_simple_4-3-0: unit accepts ["fahrenheit", ""] -> first option kept.
    row = bfcl_live.convert_case(*_case(bfcl_data, 'live_simple', 'live_simple_4-3-0'))
    assert json.loads(row['ground_truth'])[0]['arguments'] == {'location': 'Tel Aviv, Israel', 'unit': 'fahrenheit'}
    # live_multiple_1-0-1: a dict value maps each key to its own accepted values; "drink_id" stays a string.
    row = bfcl_live.convert_case(*_case(bfcl_data, 'live_multiple', 'live_multiple_1-0-1'))
    assert json.loads(row['ground_truth']) == [{'name': 'ChaDri.change_drink', 'arguments': {
        'drink_id': '1234', 'new_preferences': {'sweetness_level': 'none', 'temperature': 'hot'}}}]


def test_gold_calls_rules_and_errors():
    answer = [{'f': {'a': [[1, 2]], 'b': ['', 'x'], 'c': [{'k': ['', 1], 'm': [False]}]}}]
    assert bfcl_live.gold_calls(answer, 'id') == [{'name': 'f', 'arguments': {'a': [1, 2], 'c': {'m': False}}}]
    with pytest.raises(bfcl_live.BFCLDataError, match='id7: f.a'):
        bfcl_live.gold_calls([{'f': {'a': []}}], 'id7')
    with pytest.raises(bfcl_live.BFCLDataError, match='id8: answer 0'):
        bfcl_live.gold_calls([{'f': {}, 'g': {}}], 'id8')


def test_bfcl_split_command_writes_three_finished_files(tmp_path, bfcl_data, split):
    from data_prep.__main__ import main
    from data_prep.manifest import check_manifest
    assert main(['bfcl-split', '--out', str(tmp_path), '--bfcl-data', str(bfcl_data)]) == 0
    for p in bfcl_live.PARTS:
        assert check_manifest(str(tmp_path / f'{p}.jsonl'))['rows'] == len(split[p])
    rl = [json.loads(x) for x in (tmp_path / 'rl.jsonl').read_text().splitlines()]
    assert [r['dialogue_id'] for r in rl] == split['rl']
    sft = json.loads((tmp_path / 'sft.jsonl').read_text().splitlines()[0])
    target = sft['messages'][-1]
    assert target['role'] == 'assistant' and target['content'].startswith('<think>\nThe request needs ')
    # The SFT target is exactly what the outcome reward scores as perfect against the same row.
    first = bfcl_live.convert_case(*_case(bfcl_data, split['sft'][0].rsplit('_', 1)[0], split['sft'][0]))
    assert heldout.score([target['content']], [first]) == {'n': 1, 'format': 1.0, 'exec': 1.0, 'calls': 1.0, 'r_out': 2.0}


# ---------------------------------------------------------------- warm-start completion marker

def _fake_model(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / 'config.json').write_text('{}')
    (folder / 'model.safetensors').write_bytes(b'weights')
    return folder


def test_marker_decides_completeness(tmp_path):
    folder = _fake_model(tmp_path / 'ws')
    assert not warm_start.is_complete(folder)                      # weights without the marker: a killed build
    (folder / warm_start.MARKER).write_text('{"complete": tru')    # torn marker
    assert not warm_start.is_complete(folder)
    (folder / warm_start.MARKER).write_text('{"complete": false}')
    assert not warm_start.is_complete(folder)
    (folder / warm_start.MARKER).write_text('{"complete": true}')
    assert warm_start.is_complete(folder)
    (folder / 'model.safetensors').unlink()                        # marker without weights
    assert not warm_start.is_complete(folder)


def test_publish_replaces_an_unfinished_target_and_writes_the_marker_last(tmp_path):
    merged = _fake_model(tmp_path / 'merged')
    target = _fake_model(tmp_path / 'ws')                          # left over by a killed build
    (target / 'stale.bin').write_bytes(b'x')
    warm_start.publish(merged, target, {'complete': True, 'mode': 'quick'})
    assert warm_start.is_complete(target) and not (target / 'stale.bin').exists()
    assert json.loads((target / warm_start.MARKER).read_text())['mode'] == 'quick'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['merged', 'ws']  # no .tmp / .old left


def test_build_reuses_a_finished_warm_start_without_training(tmp_path, capsys):
    target = _fake_model(tmp_path / 'ws')
    (target / warm_start.MARKER).write_text('{"complete": true}')
    assert warm_start.build(target=target) == target
    assert not (tmp_path / 'ws.build').exists()                    # nothing was built


def test_sft_steps():
    cfg = {'max_steps': 24, 'rows_per_step': 2}
    assert warm_start.sft_steps(164, cfg) == 24 and warm_start.sft_steps(45, cfg) == 23
    assert warm_start.sft_steps(164) == 82                       # the default build is one epoch of the sft split


def test_a_build_with_other_settings_is_stale():
    now = dict(warm_start.SETTINGS)
    assert warm_start.stale_settings({'complete': True, **now}) == {}
    assert warm_start.stale_settings({'complete': True}) == {}    # no settings recorded: taken as it is
    old = {**now, 'max_steps': 24}
    assert warm_start.stale_settings(old) == {'max_steps': (24, now['max_steps'])}


def test_build_reuses_a_warm_start_built_with_the_current_settings(tmp_path):
    target = _fake_model(tmp_path / 'ws')
    (target / warm_start.MARKER).write_text(json.dumps({'complete': True, **warm_start.SETTINGS}))
    assert warm_start.build(target=target) == target
    assert not (tmp_path / 'ws.build').exists()


# ---------------------------------------------------------------- the held-out scorer

GOLD = json.dumps([{'name': 'f', 'arguments': {'a': 1, 'b': 'x'}}])


def _call(args: dict) -> str:
    return '<think>\nplan\n</think>\n\n<tool_call>\n' + json.dumps({'name': 'f', 'arguments': args}) + '\n</tool_call>'


@pytest.mark.parametrize('text, fmt, exe, calls', [
    (_call({'a': 1, 'b': 'x'}), 1.0, 1.0, 1.0),
    (_call({'a': 1, 'b': 'y'}), 1.0, 0.75, 1.0),                  # (1 name + 1 params + 1 of 2 values) / 4
    (_call({'a': '1'}), 1.0, 0.375, 1.0),                           # (1 + 1/2 + 0) / 4: "1" != 1
    ('I cannot help with that.', 1.0, 0.0, 0.0),                    # a text answer is well-formed, no call
    ('<tool_call>\n{"name": "f", "arguments": {"a": 1', 0.0, 0.0, 0.0),  # truncated: unparseable
    ('', 0.0, 0.0, 0.0),
])
def test_heldout_score_hand_computed(text, fmt, exe, calls):
    row = {'ground_truth': GOLD, 'dialogue_id': 'r'}
    got = heldout.score([text], [row])
    assert got == {'n': 1, 'format': fmt, 'exec': pytest.approx(exe), 'calls': calls, 'r_out': pytest.approx(fmt + exe)}


def test_heldout_score_means_and_errors():
    rows = [{'ground_truth': GOLD}] * 2
    got = heldout.score([_call({'a': 1, 'b': 'x'}), 'no'], rows)
    assert got['format'] == 1.0 and got['exec'] == 0.5 and got['calls'] == 0.5
    with pytest.raises(ValueError, match='2 completions for 1 rows'):
        heldout.score(['a', 'b'], rows[:1])


def test_heldout_read_rows_names_the_bad_line(tmp_path):
    path = tmp_path / 'rows.jsonl'
    path.write_text('{"messages": [], "tools": "[]", "ground_truth": "[]"}\n{"messages": []}\n')
    with pytest.raises(ValueError, match=r'rows.jsonl:2: no .tools.'):
        heldout.read_rows(path)
    assert len(heldout.read_rows(path, limit=1)) == 1


# ---------------------------------------------------------------- the demo's assertion that AWPO acted

def _run_dir(tmp_path, steps, eps_max=0.2, torn=False):
    (tmp_path / 'awpo_config.json').write_text(json.dumps({'eps_max': eps_max, 'eps_min': 0.1}))
    lines = [json.dumps({'loss': 0.0, 'reward': 1.0, 'global_step/max_steps': f'{i + 1}/{len(steps)}',
                         'awpo/gate_open_frac': g, 'awpo/w_mix_mean': w, 'awpo/clip_eps': c})
             for i, (g, w, c) in enumerate(steps)]
    lines.insert(0, json.dumps({'train_runtime': 1.0}))                  # a line without AWPO metrics
    text = '\n'.join(lines) + '\n' + ('{"awpo/gate_open' if torn else '')
    (tmp_path / 'logging.jsonl').write_text(text)
    return tmp_path


def test_check_awpo_active_needs_all_three_at_one_step(tmp_path, capsys):
    from eval import check_awpo_active as chk
    # each condition met at some step, never all three at once -> fail
    run = _run_dir(tmp_path, [(0.0, 0.0, 0.2), (1.0, 0.0, 0.2), (1.0, 0.5, 0.2), (0.0, 0.0, 0.15)], torn=True)
    assert chk.main([str(run)]) == 1
    assert 'FAIL' in capsys.readouterr().err
    run = _run_dir(tmp_path, [(0.0, 0.0, 0.2), (0.5, 0.3, 0.17)])
    assert chk.main([str(run)]) == 0
    assert 'OK: step 2/2' in capsys.readouterr().out
    run = _run_dir(tmp_path, [(0.5, 0.3, 0.17)], eps_max=0.17)          # clip must be strictly below eps_max
    assert chk.main([str(run)]) == 1
    run = _run_dir(tmp_path, [(float('nan'), 0.3, 0.1)])
    assert chk.main([str(run)]) == 1


def test_check_awpo_active_missing_run_is_an_error(tmp_path, capsys):
    from eval import check_awpo_active as chk
    assert chk.main([str(tmp_path)]) == 2
    assert 'cannot read the run' in capsys.readouterr().err
