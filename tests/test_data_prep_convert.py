"""data_prep converters: Python-call parsing, SWiRL decomposition of each source's fixtures, Hammer masking,
row schema, bad-input accounting, build/convert/demo CLI, and rendering through ms-swift's hermes template."""
from __future__ import annotations

import copy
import json
import random
import subprocess
import sys

import pytest

from data_prep import hammer, toolace, xlam, xlam_mt
from data_prep.__main__ import main, make_parser
from data_prep.cli_build import build_plan
from data_prep.dialogue import decompose
from data_prep.errors import BadRow
from data_prep.pipeline import Stats, StrictError, convert_source
from data_prep.pycalls import looks_like_calls, parse_calls
from data_prep.schema import validate_row
from data_prep.sources import fixture_path, read_local

FIX = fixture_path('toolace').parent


def rows_of(source, name=None, seed=0):
    raw = read_local(FIX / (name or f'{source}.json'))
    return list(convert_source(source, raw, None, seed, strict=True, stats=Stats(), progress=False))


def cli(*args, cwd=None):
    return subprocess.run([sys.executable, '-m', 'data_prep', *args], capture_output=True, text=True, cwd=cwd)


# ------------------------------------------------------------------ ToolACE call syntax

@pytest.mark.parametrize('text,expected', [
    ('[Get Weather(city="Oslo")]', [{'name': 'Get Weather', 'arguments': {'city': 'Oslo'}}]),
    ('[f(a="x, (y)", b=\'it\\\'s\')]', [{'name': 'f', 'arguments': {'a': 'x, (y)', 'b': "it's"}}]),
    ('[f(a=[1, {"k": [2, 3]}], b={"x": true, "y": null}), g.h-i()]',
     [{'name': 'f', 'arguments': {'a': [1, {'k': [2, 3]}], 'b': {'x': True, 'y': None}}},
      {'name': 'g.h-i', 'arguments': {}}]),
    ('[ f(n=-1.5e3) ,\n g(s="a]b)c") ]', [{'name': 'f', 'arguments': {'n': -1500.0}},
                                          {'name': 'g', 'arguments': {'s': 'a]b)c'}}]),
])
def test_parse_calls(text, expected):
    assert looks_like_calls(text)
    assert parse_calls(text) == expected


@pytest.mark.parametrize('text', ['[f(a=1]', '[f(a=(1, 2]', '[f(1)]', '[f(a="x)]', '[f(a=foo)]', '[f(a=1)) ]'])
def test_parse_calls_rejects_unbalanced(text):
    with pytest.raises(BadRow) as err:
        parse_calls(text)
    assert err.value.reason == 'unbalanced call syntax'


def test_text_answers_are_not_calls():
    for text in ['It is 11 °C in Paris.', '[1, 2, 3]', '[note] (see above)', 'Call f(x=1) later']:
        assert not looks_like_calls(text)


# ------------------------------------------------------------------ decomposition per source

def test_toolace_instances_context_and_ground_truth():
    raw = read_local(FIX / 'toolace.json')
    rows = rows_of('toolace')
    # one instance per assistant turn of the raw data
    assert len(rows) == sum(t['from'] == 'assistant' for d in raw for t in d['conversations']) == 9
    by = {(r['dialogue_id'], r['step']): r for r in rows}
    r = by[('0', 0)]
    assert json.loads(r['ground_truth']) == [{'name': 'Get Weather',
                                              'arguments': {'city': 'Paris, (France)', 'units': 'celsius'}}]
    assert [m['role'] for m in r['messages']] == ['system', 'user']
    assert 'Here is a list of functions' not in r['messages'][0]['content']
    assert 'NO other text' not in r['messages'][0]['content']
    tools = json.loads(r['tools'])
    assert tools[0]['function']['parameters']['type'] == 'object'  # ToolACE's "dict"
    # step 1 (final answer) sees the call and its result
    r = by[('0', 1)]
    assert json.loads(r['ground_truth']) == [] and r['reference_answer'].startswith('It is 11')
    assert [m['role'] for m in r['messages']] == ['system', 'user', 'tool_call', 'tool_response']
    assert json.loads(r['messages'][2]['content']) == {'name': 'Get Weather',
                                                       'arguments': {'city': 'Paris, (France)', 'units': 'celsius'}}
    # parallel calls with nested / list arguments; the extra system text after the tool list is kept
    r = by[('1', 0)]
    assert json.loads(r['ground_truth']) == [
        {'name': 'Search Flights', 'arguments': {'route': {'from': 'OSL', 'to': 'FCO'},
                                                 'dates': ['2024-05-03', '2024-05-05'], 'max_stops': 1}},
        {'name': 'Get Weather', 'arguments': {'city': 'Rome'}}]
    assert r['messages'][0]['content'].endswith('The current time is 2024-05-01 10:00.')
    route = json.loads(r['tools'])[0]['function']['parameters']['properties']['route']
    assert route['type'] == 'object' and route['properties']['to'] == {'type': 'string'}   # nested "dict"
    r = by[('1', 2)]
    assert [m['role'] for m in r['messages']] == ['system', 'user', 'tool_call', 'tool_call', 'tool_response',
                                                  'tool_response', 'assistant', 'user']
    assert r['messages'][-1]['content'] == 'And Oslo?'
    # text answer asking for a parameter, then the call; strings with quotes, commas, parentheses
    assert json.loads(by[('2', 0)]['ground_truth']) == []
    assert json.loads(by[('2', 1)]['ground_truth']) == [
        {'name': 'add_note', 'arguments': {'text': 'Buy milk, eggs (a dozen) and "fresh" bread',
                                           'tags': ['shopping', 'home']}}]


def test_xlam_single_turn():
    rows = rows_of('xlam')
    assert len(rows) == 4 and all(r['step'] == 0 and [m['role'] for m in r['messages']] == ['user'] for r in rows)
    by = {r['dialogue_id']: r for r in rows}
    assert json.loads(by['4']['ground_truth']) == [{'name': 'fibonacci_numbers', 'arguments': {'n': 5}},
                                                  {'name': 'fibonacci_numbers', 'arguments': {'n': 8}}]
    search = json.loads(by['23']['tools'])[0]['function']['parameters']
    # flat xLAM params -> JSON schema; the type says which are optional ("int, optional"), a default does
    # not (xLAM gives mandatory parameters sample defaults: `query` is required, issue 19)
    assert search['properties']['limit'] == {'type': 'integer', 'description': 'Max results.', 'default': 10}
    assert search['properties']['filters']['type'] == 'object'
    assert search['required'] == ['query']
    fib = json.loads(by['4']['tools'])[0]['function']['parameters']
    assert fib['required'] == ['n']
    assert json.loads(by['17']['tools'])[0]['function']['parameters']['properties']['nums']['type'] == 'array'


def test_xlam_mt_multi_turn():
    raw = read_local(FIX / 'xlam_mt.json')
    rows = rows_of('xlam_mt')
    # actions: maximal runs of function_call turns + gpt turns
    def n_actions(conv):
        return sum(t['from'] == 'gpt' or (t['from'] == 'function_call' and (i == 0 or conv[i - 1]['from'] != 'function_call'))
                   for i, t in enumerate(conv))
    assert len(rows) == sum(n_actions(d['conversations']) for d in raw) == 7
    by = {(r['dialogue_id'], r['step']): r for r in rows}
    assert json.loads(by[('0', 1)]['ground_truth']) == [{'name': 'get_order', 'arguments': {'order_id': '#W1'}}]
    assert [m['role'] for m in by[('0', 1)]['messages']] == ['system', 'user', 'tool_call', 'tool_response']
    assert json.loads(by[('0', 3)]['ground_truth']) == [
        {'name': 'cancel_order', 'arguments': {'order_id': '#W1', 'reason': 'ordered by mistake'}}]
    assert by[('0', 3)]['messages'][-1] == {'role': 'user', 'content': 'yes'}
    assert len(json.loads(by[('1', 0)]['ground_truth'])) == 2        # parallel calls merged
    assert [m['role'] for m in by[('1', 1)]['messages']][-4:] == ['tool_call', 'tool_call', 'tool_response',
                                                                  'tool_response']
    assert by[('1', 1)]['reference_answer'] == '#W2 is delivered, #W3 is processed.'


def test_every_instance_prompt_ends_with_user_or_tool_and_validates():
    for src in ('toolace', 'xlam', 'hammer', 'xlam_mt'):
        for r in rows_of(src):
            validate_row(r)
            assert r['messages'][-1]['role'] in ('user', 'tool_response')
            assert 'dataset' not in r


# ------------------------------------------------------------------ Hammer masking

def _param_names(tool):
    return set(tool['function']['parameters']['properties'])


def test_hammer_masking_is_consistent():
    raw = read_local(FIX / 'hammer.json')
    masked_any = unmasked_any = False
    for seed in range(6):
        for i, row in enumerate(raw):
            plain = xlam.convert(row, i, source='hammer')
            d = hammer.convert(row, i, seed=seed)
            if not d.meta.get('masked'):
                unmasked_any = True
                assert d.tools == plain.tools and d.turns == plain.turns
                continue
            masked_any = True
            fmap = d.meta['name_map']
            assert len(set(fmap.values())) == len(fmap) and not set(fmap.values()) & set(fmap)
            new_tools = {t['function']['name']: t for t in d.tools}
            old_tools = {t['function']['name']: t for t in plain.tools}
            assert set(new_tools) == {fmap[n] for n in old_tools}
            for old, tool in old_tools.items():
                new = new_tools[fmap[old]]
                assert new['function']['description'] == tool['function']['description']
                assert len(_param_names(new)) == len(_param_names(tool))
                assert not _param_names(new) & _param_names(tool)
                assert set(new['function']['parameters'].get('required', [])) <= _param_names(new)
            for (kind, value), (_, old_value) in zip(d.turns, plain.turns):
                if kind == 'calls':
                    for call, old_call in zip(value, old_value):
                        assert call['name'] == fmap[old_call['name']]
                        assert set(call['arguments']) <= _param_names(new_tools[call['name']])
                        assert sorted(map(json.dumps, call['arguments'].values())) == \
                            sorted(map(json.dumps, old_call['arguments'].values()))
            for r in decompose(d):
                validate_row(r)
    assert masked_any and unmasked_any


def test_hammer_masking_is_seeded_per_row_and_masks_about_two_thirds():
    raw = read_local(FIX / 'hammer.json')
    a = [hammer.convert(r, i, seed=3) for i, r in enumerate(raw)]
    b = [hammer.convert(r, i, seed=3) for i, r in reversed(list(enumerate(raw)))][::-1]
    assert [x.tools for x in a] == [x.tools for x in b] and [x.turns for x in a] == [x.turns for x in b]
    template = raw[0]
    masked = sum(hammer.convert({**template, 'id': k}, 0, seed=1).meta.get('masked', False) for k in range(900))
    assert 0.62 < masked / 900 < 0.72


def test_hammer_masks_context_calls_too():
    d = xlam_mt.convert(read_local(FIX / 'xlam_mt.json')[0], 0)
    m = hammer.mask_dialogue(d, random.Random(0))
    fmap = m.meta['name_map']
    rows = decompose(m)
    last = rows[-1]
    calls_in_context = [json.loads(x['content']) for x in last['messages'] if x['role'] == 'tool_call']
    assert [c['name'] for c in calls_in_context] == [fmap['find_user'], fmap['get_order'], fmap['cancel_order']]
    tools = {t['function']['name']: t for t in json.loads(last['tools'])}
    for c in calls_in_context:
        assert set(c['arguments']) <= _param_names(tools[c['name']])
    assert 'ann@x.io' in calls_in_context[0]['arguments'].values()


def test_perturb_default_keeps_type():
    rng = random.Random(0)
    for v in [True, 3, 2.5, 'UTC', None, [1]]:
        p = hammer.perturb_default(v, rng)
        assert type(p) is type(v)
        if v not in (None, [1]):
            assert p != v


# ------------------------------------------------------------------ schema and bad input

def test_schema_rejects_contract_violations():
    good = rows_of('xlam_mt')[1]
    validate_row(good)
    bad_cases = {
        'dataset': {**good, 'dataset': 'x'},
        'ends with': {**good, 'messages': good['messages'] + [{'role': 'assistant', 'content': 'hi'}]},
        'not in tools': {**good, 'ground_truth': json.dumps([{'name': 'nope', 'arguments': {}}])},
        'ground_truth': {**good, 'ground_truth': json.dumps([{'name': 'get_order', 'arguments': '{}'}])},
        'tools': {**good, 'tools': json.dumps([{'name': 'get_order'}])},
        'role': {**good, 'messages': [{'role': 'tool', 'content': 'x'}]},
        'step': {**good, 'step': -1},
    }
    for what, row in bad_cases.items():
        with pytest.raises(ValueError) as err:
            validate_row(row)
        assert "row ('xlam_mt', '0', step" in str(err.value) or 'row (' in str(err.value), what


@pytest.mark.parametrize('source,expected', [
    ('toolace', {'unbalanced call syntax': 1, 'tool name absent from tool list': 1, 'broken JSON': 2}),
    ('xlam', {'broken JSON': 2, 'tool name absent from tool list': 1}),
    ('xlam_mt', {'broken JSON': 1, 'tool name absent from tool list': 1, 'malformed dialogue': 1}),
])
def test_bad_rows_are_skipped_and_counted(source, expected):
    raw = read_local(FIX / f'{source}_malformed.json')
    stats = Stats()
    rows = list(convert_source(source, raw, None, 0, strict=False, stats=stats, progress=False))
    assert {reason: n for (_, reason), n in stats.skips.items()} == expected
    assert stats.read[source] == len(raw)
    assert len(rows) == stats.written[source] == len(raw) - sum(expected.values())
    with pytest.raises(StrictError, match=rf'^{source} row \d+: '):
        list(convert_source(source, raw, None, 0, strict=True, stats=Stats(), progress=False))


def test_toolace_tool_list_broken_json_names_row():
    raw = read_local(FIX / 'toolace_malformed.json')[3]
    with pytest.raises(BadRow, match='broken JSON: toolace row 3: tool list in system'):
        toolace.convert(raw, 3)


# ------------------------------------------------------------------ CLI: build / convert / demo

def test_build_hub_plan_from_arguments_only():
    args = make_parser().parse_args(['build', '--sources', 'toolace:2000,hammer:1000,xlam_mt:11000,xlam:30000',
                                     '--out', 'x.jsonl', '--input', f'xlam={FIX / "xlam.json"}'])
    plan = build_plan(args)
    assert [(n, c, k) for n, c, k, _ in plan] == [('toolace', 2000, 'hub'), ('hammer', 1000, 'hub'),
                                                  ('xlam_mt', 11000, 'hub'), ('xlam', 30000, 'local')]
    hub = {n: [(l.loader, l.dataset_id, l.split) for l in w] for n, _, k, w in plan if k == 'hub'}
    assert hub == {'toolace': [('datasets', 'Team-ACE/ToolACE', 'train')],
                   'hammer': [('datasets', 'Salesforce/xlam-function-calling-60k', 'train'),
                              ('datasets', 'MadeAgents/xlam-irrelevance-7.5k', 'train')],
                   'xlam_mt': [('datasets', 'Salesforce/APIGen-MT-5k', 'train')]}
    # ModelScope: only the id confirmed in ms-swift's registry is used, the others are refused (issue 21.7)
    ms = build_plan(make_parser().parse_args(['build', '--sources', 'xlam', '--out', 'x', '--hub', 'modelscope']))
    assert [(l.loader, l.dataset_id) for l in ms[0][3]] == [('modelscope', 'LLM-Research/xlam-function-calling-60k')]
    with pytest.raises(Exception, match='no confirmed ModelScope id for Salesforce/APIGen-MT-5k'):
        build_plan(make_parser().parse_args(['build', '--sources', 'xlam_mt', '--out', 'x', '--hub', 'modelscope']))
    with pytest.raises(Exception, match='unknown source'):
        build_plan(make_parser().parse_args(['build', '--sources', 'glaive:10', '--out', 'x']))


def test_build_cli_samples_with_seed_and_writes_summary(tmp_path):
    args = ['--input', f'hammer={FIX / "hammer.json"}', '--input', f'toolace={FIX / "toolace.json"}']
    out1, out2, out3 = (tmp_path / f'{i}.jsonl' for i in range(3))
    p = cli('build', '--sources', 'hammer:3,toolace:1', '--out', str(out1), '--seed', '5', *args)
    assert p.returncode == 0, p.stderr
    assert 'rows read' in p.stdout and 'wrote' in p.stdout
    rows = [json.loads(x) for x in out1.read_text().splitlines()]
    assert len({r['dialogue_id'] for r in rows if r['source'] == 'hammer'}) == 3
    assert len({r['dialogue_id'] for r in rows if r['source'] == 'toolace'}) == 1
    assert main(['build', '--sources', 'hammer:3,toolace:1', '--out', str(out2), '--seed', '5', *args]) == 0
    assert out1.read_bytes() == out2.read_bytes()
    picks = set()
    for seed in range(8):  # in-process: same entry point, without 8 interpreter start-ups
        assert main(['build', '--sources', 'hammer:3', '--out', str(out3), '--seed', str(seed), *args[:2]]) == 0
        picks.add(tuple(sorted(json.loads(x)['dialogue_id'] for x in out3.read_text().splitlines())))
    assert len(picks) > 1


def test_convert_cli_strict_names_row(tmp_path):
    p = cli('convert', '--source', 'xlam', '--input', str(FIX / 'xlam_malformed.json'),
            '--output', str(tmp_path / 'o.jsonl'), '--strict')
    assert p.returncode == 2 and 'xlam row 0' in p.stderr and 'broken JSON' in p.stderr
    assert not (tmp_path / 'o.jsonl').exists()
    p = cli('convert', '--source', 'xlam', '--input', str(FIX / 'xlam_malformed.json'), '--output', str(tmp_path / 'o.jsonl'))
    assert p.returncode == 0 and 'tool name absent from tool list' in p.stdout


def test_demo_is_deterministic(tmp_path):
    a, b = tmp_path / 'a.jsonl', tmp_path / 'b.jsonl'
    assert cli('demo', '--out', str(a)).returncode == 0
    assert main(['demo', '--out', str(b)]) == 0
    assert a.read_bytes() == b.read_bytes()
    rows = [json.loads(x) for x in a.read_text().splitlines()]
    assert len(rows) == 26 and {r['source'] for r in rows} == {'toolace', 'xlam', 'hammer', 'xlam_mt'}


# ------------------------------------------------------------------ ms-swift rendering (hermes)

def test_rows_load_and_render_with_ms_swift_hermes_template(smollm2_dir, tmp_path):
    """ms-swift's own dataset loader keeps every AWPO column and accepts the roles; its chatml template with
    the hermes agent template renders tools, earlier calls and results natively and ends at the generation
    prompt (the target action is what the policy generates)."""
    from swift.dataset import load_dataset
    from swift.model import get_processor
    from swift.template import get_template
    out = tmp_path / 'demo.jsonl'
    assert main(['demo', '--out', str(out)]) == 0
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    ds, _ = load_dataset([str(out)], split_dataset_ratio=0, num_proc=1, remove_unused_columns=False)
    assert len(ds) == len(rows)
    assert {'messages', 'tools', 'ground_truth', 'reference_rationale', 'source', 'dialogue_id', 'step'} <= \
        set(ds.column_names)
    proc = get_processor(str(smollm2_dir), model_type='llama')
    template = get_template(proc, template_type='chatml', agent_template='hermes')
    tok = proc.tokenizer if hasattr(proc, 'tokenizer') else proc
    longest = 0
    for row, loaded in zip(rows, ds):
        assert [m['role'] for m in loaded['messages']] == [m['role'] for m in row['messages']]
        assert loaded['ground_truth'] == row['ground_truth'] and loaded['step'] == row['step']
        enc = template.encode({'messages': copy.deepcopy(loaded['messages']), 'tools': loaded['tools']})
        longest = max(longest, len(enc['input_ids']))
        text = tok.decode(enc['input_ids'])
        assert text.endswith('<|im_start|>assistant\n')
        for tool in json.loads(row['tools']):
            assert json.dumps(tool, ensure_ascii=False) in text           # hermes <tools> block
        for m in row['messages']:
            if m['role'] == 'tool_call':
                assert f'<tool_call>\n{m["content"]}\n</tool_call>' in text
            elif m['role'] == 'tool_response':
                assert f'<tool_response>\n{m["content"]}\n</tool_response>' in text
    assert longest <= 1024 - 64, longest   # demo rows fit --max_length 1024 with 64 completion tokens


# ------------------------------------------------------------------ hostile input (issue 11.B.1-B.2)

def _convert_all(source, raw, strict=False):
    stats = Stats()
    rows = list(convert_source(source, raw, None, 0, strict=strict, stats=stats, progress=False))
    return rows, stats


def _toolace_with_call(call_text):
    row = copy.deepcopy(read_local(FIX / 'toolace.json')[0])
    turn = next(t for t in row['conversations'] if t['from'] == 'assistant')
    turn['value'] = call_text
    return row


def _xlam_with_answers(answers):
    row = copy.deepcopy(read_local(FIX / 'xlam.json')[0])
    row['answers'] = answers
    return row


DEEP = '[' * 100_000 + ']' * 100_000
BIG_INT = '9' * 5000
_HOSTILE = [  # (source, hostile raw row, skip reason)
    ('xlam', None, 'malformed dialogue'),
    ('xlam', 'just a string', 'malformed dialogue'),
    ('xlam', [1, 2], 'malformed dialogue'),
    ('xlam_mt', {'conversations': [None], 'tools': '[]'}, 'malformed dialogue'),
    ('xlam_mt', {'conversations': ['hello'], 'tools': '[]'}, 'malformed dialogue'),
    ('xlam_mt', {'conversations': [['human', 'hi']], 'tools': '[]'}, 'malformed dialogue'),
    ('toolace', {**read_local(FIX / 'toolace.json')[0], 'conversations': [None]}, 'malformed dialogue'),
    ('toolace', {**read_local(FIX / 'toolace.json')[0], 'conversations': ['user: hi']}, 'malformed dialogue'),
    ('toolace', _toolace_with_call('[Get Weather(city={1, 2})]'), 'value not representable in JSON'),
    ('toolace', _toolace_with_call('[Get Weather(city=b"x")]'), 'value not representable in JSON'),
    ('toolace', _toolace_with_call('[Get Weather(city=1j)]'), 'value not representable in JSON'),
    ('toolace', _toolace_with_call('[Get Weather(city=1e400)]'), 'value not representable in JSON'),
    ('toolace', _toolace_with_call('[Get Weather(city=NaN)]'), 'unbalanced call syntax'),
    ('toolace', _toolace_with_call(f'[Get Weather(city={DEEP})]'), 'unbalanced call syntax'),
    ('toolace', _toolace_with_call(f'[Get Weather(city={BIG_INT})]'), 'unbalanced call syntax'),
    # a call set that lacks its closing bracket is a broken call, never a text-answer target
    ('toolace', _toolace_with_call('[Get Weather(city="Oslo")'), 'unbalanced call syntax'),
    ('xlam', _xlam_with_answers(DEEP), 'broken JSON'),
    ('xlam', _xlam_with_answers(f'[{{"name": "fibonacci_numbers", "arguments": {{"n": {BIG_INT}}}}}]'), 'broken JSON'),
    ('xlam', _xlam_with_answers('[{"name": "fibonacci_numbers", "arguments": {"n": %s}}]' % ('[' * 500 + ']' * 500)),
     'value not representable in JSON'),   # parseable, but deeper than any argument (jsonvalue.MAX_DEPTH)
    ('xlam', _xlam_with_answers('[{"name": "fibonacci_numbers", "arguments": {"n": NaN}}]'), 'broken JSON'),
    ('xlam', _xlam_with_answers('[{"name": "fibonacci_numbers", "arguments": {"n": Infinity}}]'), 'broken JSON'),
    ('xlam', _xlam_with_answers('[{"name": "fibonacci_numbers", "arguments": {"n": 1e400}}]'), 'broken JSON'),
    # already decoded values (hub datasets hand over Python objects)
    ('xlam', _xlam_with_answers([{'name': 'fibonacci_numbers', 'arguments': {'n': float('nan')}}]),
     'value not representable in JSON'),
    ('xlam', _xlam_with_answers([{'name': 'fibonacci_numbers', 'arguments': {'n': {1, 2}}}]),
     'value not representable in JSON'),
    ('xlam', {**read_local(FIX / 'xlam.json')[0], 'query': ['not', 'text']}, 'malformed dialogue'),
    ('xlam', {**read_local(FIX / 'xlam.json')[0], 'tools': [{'name': 'f', 'parameters': {'x': 'oops'}}]},
     'bad tool spec'),
]


@pytest.mark.parametrize('source,bad,reason', _HOSTILE, ids=[f'{s}-{i}' for i, (s, _, _) in enumerate(_HOSTILE)])
def test_hostile_raw_rows_are_counted_skips_and_strict_names_the_row(source, bad, reason):
    good = read_local(FIX / f'{source}.json')
    rows, stats = _convert_all(source, [*good, bad])
    assert dict(stats.skips) == {(source, reason): 1}
    assert stats.dialogues[source] == len(good)
    for row in rows:  # what is written is strict JSON
        json.loads(json.dumps(row, allow_nan=False), parse_constant=lambda c: pytest.fail(c))
    with pytest.raises(StrictError, match=rf'^{source} row {len(good)}: {reason}'):
        _convert_all(source, [*good, bad], strict=True)


def test_unforeseen_shapes_inside_a_row_are_counted_not_fatal():
    """A shape no converter foresees deep in a row (Hammer masking meets `"required": [["a"]]` and raises
    TypeError) is a counted skip at the per-row boundary, whatever the exception; unmasked rows with the same
    defect still fail the schema."""
    base = read_local(FIX / 'hammer.json')[0]
    bad = []
    for i in range(6):
        row = {**copy.deepcopy(base), 'id': f'bad{i}', 'query': f'{base["query"]} {i}'}
        tools = json.loads(row['tools'])
        tools[0]['parameters'] = {'type': 'object', 'properties': {'a': {'type': 'string'}}, 'required': [['a']]}
        row['tools'] = json.dumps(tools)
        bad.append(row)
    rows, stats = _convert_all('hammer', bad)
    assert rows == [] and sum(stats.skips.values()) == 6
    assert stats.skips[('hammer', 'unexpected structure')] >= 1
    assert 'TypeError' in stats.examples[('hammer', 'unexpected structure')]


def test_jsonl_line_that_does_not_parse_is_a_counted_skip(tmp_path):
    good = read_local(FIX / 'xlam.json')
    path = tmp_path / 'x.jsonl'
    lines = [json.dumps(good[0]), '{"id": 99, "query": "cut', DEEP, json.dumps(good[1])]
    path.write_text('\n'.join(lines) + '\n')
    rows, stats = _convert_all('xlam', read_local(path))
    assert stats.skips[('xlam', 'broken JSON')] == 2 and stats.dialogues['xlam'] == 2
    assert f'{path} line 2' in stats.examples[('xlam', 'broken JSON')]
    bad_json = tmp_path / 'bad.json'
    bad_json.write_text('[{"id": 1},')
    with pytest.raises(ValueError, match=str(bad_json)):
        read_local(bad_json)


def test_duplicate_dialogues_are_dropped_and_counted():
    for source in ('toolace', 'xlam_mt'):  # no ids: ToolACE rows are numbered by position
        raw = read_local(FIX / f'{source}.json')
        rows, stats = _convert_all(source, raw + copy.deepcopy(raw))
        assert stats.skips[(source, 'duplicate dialogue content')] == len(raw)
        assert rows == _convert_all(source, raw)[0]
    raw = read_local(FIX / 'xlam.json')
    again = [{**copy.deepcopy(r), 'id': f'copy-{r["id"]}'} for r in raw]  # same dialogue, new id
    _, stats = _convert_all('xlam', raw + again)
    assert stats.skips[('xlam', 'duplicate dialogue content')] == len(raw)


def test_build_refuses_a_source_given_twice(tmp_path):
    out = tmp_path / 'o.jsonl'
    p = cli('build', '--sources', 'xlam:2,xlam:4', '--out', str(out), '--input', f'xlam={FIX / "xlam.json"}')
    assert p.returncode == 2 and "source 'xlam' is given twice" in p.stderr
    assert not out.exists()


def test_build_writes_a_manifest_last_and_a_failed_build_leaves_none(tmp_path):
    from data_prep.manifest import check_manifest, manifest_path
    out = tmp_path / 'o.jsonl'
    assert main(['build', '--sources', 'xlam', '--out', str(out), '--input', f'xlam={FIX / "xlam.json"}']) == 0
    assert check_manifest(str(out))['rows'] == len(out.read_text().splitlines()) == 4
    # a strict rerun that fails keeps neither a partial output nor a stale "complete" mark
    assert main(['convert', '--source', 'xlam', '--input', str(FIX / 'xlam_malformed.json'), '--output', str(out),
                 '--strict']) == 2
    assert not __import__('os').path.exists(manifest_path(str(out)))
