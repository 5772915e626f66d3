"""data_prep on real published rows (issue 19): verbatim samples of xLAM-60k, ToolACE, APIGen-MT-5k and
Hammer's masked example file (tests/fixtures/real/, provenance in PROVENANCE.md) convert with the expected
counts and instances; xLAM's own `optional` convention decides `required`; Hammer masking follows the
declared type; a file in a layout the converter does not read fails once; merged inputs keep ids unique."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from data_prep import hammer
from data_prep.cli_build import read_inputs
from data_prep.pipeline import LayoutError, Stats, convert_source
from data_prep.sources import read_local
from data_prep.tools import is_optional_type
from plugin.outcome_reward import outcome_scores
from plugin.toolcall_format import parse_completion, render_tool_calls

REAL = Path(__file__).parent / 'fixtures' / 'real'
XLAM_FILES = ('xlam_60k.json', 'xlam_60k_decoded.json', 'xlam_60k_argilla_merge.json')


def convert(source, raw, seed=0, strict=True, stats=None):
    stats = stats if stats is not None else Stats()
    return list(convert_source(source, raw, None, seed, strict=strict, stats=stats, progress=False)), stats


def cli(*args):
    return subprocess.run([sys.executable, '-m', 'data_prep', *args], capture_output=True, text=True)


def xlam_params(name):
    """(tool name, param, raw spec) of every parameter of every tool in a real xLAM file."""
    out = []
    for row in read_local(REAL / name):
        tools = json.loads(row['tools']) if isinstance(row['tools'], str) else row['tools']
        out += [(t['name'], p, spec) for t in tools for p, spec in t['parameters'].items()]
    return out


# ------------------------------------------------------------------ every source, 0 skips

@pytest.mark.parametrize('source,name,dialogues,instances', [
    ('xlam', 'xlam_60k.json', 3, 3), ('xlam', 'xlam_60k_decoded.json', 1, 1),
    ('xlam', 'xlam_60k_argilla_merge.json', 1, 1),
    ('hammer', 'xlam_60k.json', 3, 3), ('hammer', 'xlam_60k_decoded.json', 1, 1),
    ('toolace', 'toolace.json', 1, 5), ('xlam_mt', 'apigen_mt_5k.json', 1, 5),
])
def test_real_rows_convert_without_skips(source, name, dialogues, instances):
    rows, stats = convert(source, read_local(REAL / name))
    assert (stats.dialogues[source], stats.written[source], sum(stats.skips.values())) == (dialogues, instances, 0)
    assert len(rows) == instances


def test_xlam_real_row_exact_instance_parallel_calls():
    """Row 57546: three parallel calls (the same tool twice) -> one instance, every type and value intact."""
    rows, _ = convert('xlam', read_local(REAL / 'xlam_60k.json'))
    r = next(r for r in rows if r['dialogue_id'] == '57546')
    assert r['messages'] == [{'role': 'user', 'content': "Check if the email domains 'protonmail.com' and 'mail.com' "
                              "are valid and not temporary. Get the products from category 'furniture' in my store, "
                              'skipping the first 20 items and limiting to 25 items.'}]
    assert json.loads(r['ground_truth']) == [
        {'name': 'mailcheck', 'arguments': {'domain': 'protonmail.com'}},
        {'name': 'mailcheck', 'arguments': {'domain': 'mail.com'}},
        {'name': 'get_products_in_category', 'arguments': {'skip': 20, 'limit': 25, 'category': 'furniture'}}]
    assert (r['step'], r['reference_answer'], r['source']) == (0, '', 'xlam')

    def tool(name, desc, props, required):
        return {'type': 'function', 'function': {'name': name, 'description': desc, 'parameters': {
            'type': 'object', 'properties': props, 'required': required}}}
    assert json.loads(r['tools']) == [
        tool('mailcheck', 'Checks if an email domain is valid or a disposable/temporary address.',
             {'domain': {'type': 'string', 'description': 'The email or domain to check for validity. It is '
                         'recommended to enter just the domain for user privacy.', 'default': 'mailinator.com'}},
             ['domain']),
        tool('get_products_in_category', 'Fetches a list of products from a specified category in a store with '
             'pagination.',
             {'skip': {'type': 'integer', 'description': 'The number of items to skip before starting to collect '
                       'the result set.', 'default': ''},
              'limit': {'type': 'integer', 'description': 'The number of items to return in the result set.',
                        'default': ''},
              'category': {'type': 'string', 'description': 'The category from which to fetch products.',
                           'default': ''}},
             ['skip', 'limit', 'category']),
        tool('product_by_id', 'Fetches detailed information about a specific product from the AliExpress API '
             'using the provided product ID.',
             {'product_id': {'type': 'integer', 'description': 'The unique identifier for the product on '
                             'AliExpress.', 'default': '32841070485'}},
             ['product_id'])]


def test_xlam_required_follows_the_optional_type_on_every_real_parameter():
    """Issue 19.1: every parameter not typed optional stays required (the old rule dropped most: they carry a
    sample default); every one typed optional is left out of `required`."""
    specs = {}
    for name in XLAM_FILES:
        rows, _ = convert('xlam', read_local(REAL / name))
        for r in rows:
            for t in json.loads(r['tools']):
                params = t['function']['parameters']
                for p in params['properties']:
                    specs[(t['function']['name'], p)] = p in params.get('required', [])
    raw = {(t, p): spec for name in XLAM_FILES for t, p, spec in xlam_params(name)}
    assert specs.keys() == raw.keys()
    assert len(raw) == 42
    mandatory = [k for k, spec in raw.items() if not is_optional_type(spec.get('type'))]
    assert len(mandatory) == 18 and all(specs[k] for k in mandatory)
    assert sum(1 for k in mandatory if 'default' in raw[k]) == 13  # what made the old rule drop them
    assert not any(specs[k] for k in raw if k not in mandatory)
    rows, _ = convert('xlam', read_local(REAL / 'xlam_60k.json'))
    cities = next(t for r in rows for t in json.loads(r['tools']) if t['function']['name'] == 'country_region_cities')
    assert cities['function']['parameters']['required'] == ['countryid', 'regioncode']


def test_xlam_decoded_layout_variant_reads_the_same():
    """Rows whose `answers` / `tools` were saved decoded (JSON arrays, not strings) convert alike."""
    rows, _ = convert('xlam', read_local(REAL / 'xlam_60k_decoded.json'))
    (r,) = rows
    assert json.loads(r['ground_truth']) == [
        {'name': 'find_peak_element', 'arguments': {'nums': [44, 46, 48, 50, 52]}},
        {'name': 'light_travel_time', 'arguments': {'distance_in_light_years': 25}}]
    nums = json.loads(r['tools'])[0]['function']['parameters']
    assert nums == {'type': 'object', 'required': ['nums'], 'properties': {
        'nums': {'type': 'array', 'description': 'The list of integers. (type: List[int])'}}}


def test_toolace_real_dialogue_instances():
    raw = read_local(REAL / 'toolace.json')
    rows, _ = convert('toolace', raw)
    by_step = {r['step']: r for r in rows}
    assert [json.loads(by_step[k]['ground_truth']) for k in range(5)] == [
        [{'name': 'GetCompetitions', 'arguments': {}}], [], [],
        [{'name': 'Get Manager Placeholder Image', 'arguments': {'sport': 'football'}}], []]
    r = by_step[0]
    assert [m['role'] for m in r['messages']] == ['system', 'user']
    assert r['messages'][0]['content'] == (
        'You are an expert in composing functions. You are given a question and a set of possible functions. \n'
        'Based on the question, you will need to make one or more function/tool calls to achieve the purpose. \n'
        'If none of the function can be used, point it out. If the given question lacks the parameters required '
        'by the function,\nalso point it out. You should only return the function call in tools call sections.')
    tools = json.loads(r['tools'])
    assert [t['function']['name'] for t in tools] == ['GetCompetitions', 'Get Manager Placeholder Image',
                                                       'Search Competition API', 'Get Category Image']
    assert tools[1]['function']['parameters'] == {'type': 'object', 'required': ['sport'], 'properties': {
        'sport': {'description': 'The name of the sport for which the manager placeholder image is required.',
                  'type': 'string'}}}
    r = by_step[3]  # after a tool result and two text answers
    assert [m['role'] for m in r['messages']] == ['system', 'user', 'tool_call', 'tool_response', 'assistant',
                                                  'user', 'assistant', 'user']
    assert json.loads(r['messages'][3]['content']) == {'name': 'GetCompetitions', 'results': {'competitions': [
        {'id': 1, 'name': 'Copa Libertadores', 'startDate': '2023-02-15', 'endDate': '2023-11-20'},
        {'id': 2, 'name': 'Copa Sudamericana', 'startDate': '2023-03-05', 'endDate': '2023-10-25'},
        {'id': 3, 'name': 'Liga 1 Peru', 'startDate': '2023-02-03', 'endDate': '2023-12-05'}]}}
    assert by_step[4]['reference_answer'] == raw[0]['conversations'][-1]['value']


def test_apigen_mt_real_dialogue_instances():
    """Consecutive function_call turns (get_reservation_details, then `think` after its observation), an empty
    observation, text answers and a final one after a human turn: 5 instances."""
    raw = read_local(REAL / 'apigen_mt_5k.json')
    rows, _ = convert('xlam_mt', raw)
    by_step = {r['step']: r for r in rows}
    assert [json.loads(r['ground_truth']) and json.loads(r['ground_truth'])[0]['name'] for r in rows] == [
        [], 'get_reservation_details', 'think', [], []]
    assert json.loads(by_step[1]['ground_truth']) == [{'name': 'get_reservation_details',
                                                        'arguments': {'reservation_id': '0U4NPP'}}]
    r = by_step[3]
    assert [m['role'] for m in r['messages']] == ['system', 'user', 'assistant', 'user', 'tool_call',
                                                  'tool_response', 'tool_call', 'tool_response']
    assert r['messages'][-1]['content'] == ''  # the `think` tool's empty observation, kept as is
    assert r['messages'][0]['content'] == raw[0]['system']
    assert r['reference_answer'] == raw[0]['conversations'][7]['value']
    assert len(json.loads(r['tools'])) == 14 and r['dialogue_id'] == '0'


# ------------------------------------------------------------------ Hammer

def test_hammer_alpaca_layout_fails_once_naming_both_layouts(tmp_path):
    """Issue 19.3: Hammer's published masked file is instruction/input/output: one error, not 10 skips."""
    raw = read_local(REAL / 'hammer_masking_sft_data_example.json')
    with pytest.raises(LayoutError, match=r'instruction/input/output.*expected xLAM: \{"id", "query"'):
        convert('hammer', raw, strict=False)
    with pytest.raises(LayoutError, match='instruction/input/output'):
        convert('xlam', raw, strict=True)
    for strict in ([], ['--strict']):
        p = cli('convert', '--source', 'hammer', '--input', str(REAL / 'hammer_masking_sft_data_example.json'),
                '--output', str(tmp_path / 'o.jsonl'), *strict)
        assert p.returncode == 2 and p.stderr.count('error:') == 1, p.stderr
        assert 'instruction/input/output' in p.stderr and 'empty "query"' not in p.stderr
        assert not (tmp_path / 'o.jsonl').exists()


def test_a_file_where_some_rows_fit_is_still_converted_row_by_row():
    raw = read_local(REAL / 'xlam_60k.json') + [{'instruction': 'x', 'input': '', 'output': '[]'}]
    rows, stats = convert('xlam', raw, strict=False)
    assert stats.dialogues['xlam'] == 3 and sum(stats.skips.values()) == 1


def test_hammer_masking_follows_declared_types_and_rewrites_default_mentions():
    """Issue 19.4 on the real rows, over 20 seeds (2/3 masked each): a masked default keeps its parameter's
    declared type, a description quoting the old default names the new one, `required` is renamed along."""
    raw = read_local(REAL / 'xlam_60k.json') + read_local(REAL / 'xlam_60k_decoded.json')
    seen_masked = rewritten = 0
    for seed in range(20):
        plain = {r['dialogue_id']: json.loads(r['tools']) for r in convert('xlam', raw)[0]}
        for r in convert('hammer', raw, seed=seed)[0]:
            tools = json.loads(r['tools'])
            before = plain[r['dialogue_id']]
            if [t['function']['name'] for t in tools] == [t['function']['name'] for t in before]:
                continue
            seen_masked += 1
            for old, new in zip(before, tools):
                o, n = old['function']['parameters'], new['function']['parameters']
                assert len(n.get('required', [])) == len(o.get('required', []))
                for (_, ospec), (nname, nspec) in zip(o['properties'].items(), n['properties'].items()):
                    assert nspec['type'] == ospec['type']
                    if 'default' not in ospec or ospec['default'] == '':
                        assert nspec.get('default') == ospec.get('default')
                        continue
                    d = nspec['default']
                    assert {'integer': isinstance(d, int) and not isinstance(d, bool),
                            'number': isinstance(d, (int, float)), 'string': isinstance(d, str),
                            'array': True}[ospec['type']], (ospec, nspec)
                    mention = re.search(r"Defaults to '([^']*)'", ospec.get('description', ''))
                    if mention and mention.group(1) == ospec['default']:
                        assert f"Defaults to '{d}'" in nspec['description']
                        rewritten += 1
    assert seen_masked > 20 and rewritten > 20


def test_perturb_default_by_declared_type():
    rng = __import__('random').Random(3)
    assert isinstance(hammer.perturb_default('11.50293', rng, 'integer'), int)  # the example
    assert isinstance(hammer.perturb_default('2026', rng, 'integer'), int)
    assert isinstance(hammer.perturb_default(46.95828, rng, 'number'), float)
    assert hammer.perturb_default('true', rng, 'boolean') is False
    assert hammer.perturb_default(True, rng, 'integer') is True  # does not fit: left alone
    assert hammer.perturb_default('', rng, 'integer') == ''
    s = hammer.perturb_default(1727, rng, 'string')
    assert isinstance(s, str) and s.isalpha()
    assert hammer.rewrite_default_mention("If set to '1', fresh data. Defaults to '0'.", '0', 'abc') == \
        "If set to '1', fresh data. Defaults to 'abc'."
    assert hammer.rewrite_default_mention('The 2-letter code (default is \'en\').', 'en', 'xy') == \
        "The 2-letter code (default is 'xy')."
    assert hammer.rewrite_default_mention('Speed in m/s. Default value is 299792458 m/s.', 299792458, 7) == \
        'Speed in m/s. Default value is 7 m/s.'
    assert hammer.rewrite_default_mention("Options are 'km' (default), 'mi'.", 'km', 'qq') == \
        "Options are 'qq' (default), 'mi'."
    assert hammer.rewrite_default_mention('Range 0-255. Defaults to 0.5.', 0, 4) == 'Range 0-255. Defaults to 0.5.'
    assert hammer.rewrite_default_mention('Include special chars. Defaults to False.', False, True) == \
        'Include special chars. Defaults to True.'


# ------------------------------------------------------------------ merged inputs (issue 19.2)

def _irrelevance_like(rows):
    """xlam-irrelevance's shape: xLAM rows with answers "[]" and no id (derived from the real rows)."""
    return [{'query': r['query'] + ' (irrelevant)', 'answers': '[]', 'tools': r['tools']} for r in rows]


def test_hand_merged_file_keeps_ids_unique(tmp_path):
    real = read_local(REAL / 'xlam_60k.json')
    xlam_rows = [{**r, 'id': i} for i, r in enumerate(real)]  # ids 0, 1, 2 as in the hub's first rows
    merged = tmp_path / 'merged.json'
    merged.write_text(json.dumps(_irrelevance_like(real) + xlam_rows))
    rows, stats = convert('hammer', read_inputs([str(merged)]), strict=True)
    assert stats.dialogues['hammer'] == 6 and sum(stats.skips.values()) == 0
    assert sorted({r['dialogue_id'] for r in rows}) == ['0', '1', '2', 'noid-0', 'noid-1', 'noid-2']


def test_several_inputs_per_source_prefix_ids_with_the_file(tmp_path):
    real = read_local(REAL / 'xlam_60k.json')
    irr = tmp_path / 'irrelevance.json'
    irr.write_text(json.dumps(_irrelevance_like(real)))
    out = tmp_path / 'o.jsonl'
    p = cli('build', '--sources', 'hammer', '--out', str(out), '--strict',
            '--input', f'hammer={irr}', '--input', f'hammer={REAL / "xlam_60k.json"}')
    assert p.returncode == 0, p.stderr
    ids = [json.loads(line)['dialogue_id'] for line in out.read_text().splitlines()]
    assert sorted(ids) == ['irrelevance:0', 'irrelevance:1', 'irrelevance:2',
                           'xlam_60k:3493', 'xlam_60k:57546', 'xlam_60k:8815']
    plan = cli('build', '--sources', 'hammer', '--out', 'x', '--print-plan',
               '--input', f'hammer={irr}', '--input', f'hammer={REAL / "xlam_60k.json"}')
    assert f'{irr}, {REAL / "xlam_60k.json"}' in plan.stdout


# ------------------------------------------------------------------ real gold through the reward

def test_real_gold_scores_two_through_render_and_parse():
    for name, source in [('xlam_60k.json', 'xlam'), ('toolace.json', 'toolace'), ('apigen_mt_5k.json', 'xlam_mt')]:
        for r in convert(source, read_local(REAL / name))[0]:
            gold = json.loads(r['ground_truth'])
            text = '<think>\nreason\n</think>\n\n' + (render_tool_calls(gold) if gold else r['reference_answer'])
            assert parse_completion(text).calls == gold
            assert outcome_scores(text, r['ground_truth']) == (1.0, 1.0)


# ------------------------------------------------------------------ the same tag-text rule end to end

TAG_VALUE = 'what do <think>, </think> and <tool_call> mean'


def _tagged_row(value=TAG_VALUE):
    """The real xLAM row 57546 with one argument value holding tag text, converted."""
    raw = [r for r in read_local(REAL / 'xlam_60k.json') if r['id'] == 57546]
    answers = json.loads(raw[0]['answers'])
    answers[2]['arguments']['category'] = value
    (row,), _ = convert('xlam', [{**raw[0], 'answers': json.dumps(answers)}])
    return row, answers


def test_converter_keeps_tag_text_and_skips_only_the_unreadable_close_tag():
    row, answers = _tagged_row()
    assert json.loads(row['ground_truth']) == answers
    rows, stats = convert('xlam', [{**read_local(REAL / 'xlam_60k.json')[1],
                                    'answers': json.dumps([{'name': 'mailcheck', 'arguments': {'domain': 'a</tool_call>'}}])}],
                          strict=False)
    assert rows == [] and list(stats.skips) == [('xlam', 'call holds </tool_call> text')]


def test_sft_export_target_parses_back_to_the_gold_with_tag_text():
    from data_prep.sft import SFTRowError, sft_row
    row, answers = _tagged_row()
    out = sft_row({**row, 'reference_rationale': 'The user asks what <think> and <tool_call> mean; I pass it on.'})
    target = out['messages'][-1]['content']
    assert parse_completion(target).calls == answers
    assert outcome_scores(target, row['ground_truth']) == (1.0, 1.0)
    bad = {**row, 'reference_rationale': 'r',
           'ground_truth': json.dumps([{'name': 'mailcheck', 'arguments': {'domain': 'a</tool_call>'}}])}
    with pytest.raises(SFTRowError, match='</tool_call>'):
        sft_row(bad)
    # a rationale holding </think> would close the think block early: the target would fail the format
    with pytest.raises(SFTRowError, match='does not read back'):
        sft_row({**row, 'reference_rationale': 'The user asks what </think> means.'})
    # thinking off: the rationale is plain text before the calls, where a quoted tag would be read as layout
    plain = sft_row({**row, 'reference_rationale': 'The user wants the products.'}, thinking=False)
    assert parse_completion(plain['messages'][-1]['content']).calls == answers
    for quoted in ('The user asks what <think> means.', 'I write a <tool_call> block.'):
        with pytest.raises(SFTRowError, match='does not read back'):
            sft_row({**row, 'reference_rationale': quoted}, thinking=False)


def test_rationale_prompt_holds_tag_text_verbatim_and_xlam_required():
    from data_prep.rationales import request_messages
    row, answers = _tagged_row()
    user = request_messages(row)[1]['content']
    assert json.dumps(answers[2], ensure_ascii=False) in user
    assert '- mailcheck(domain: string)' in user  # required: no "?" (it was `domain?: string`)
    assert 'get_products_in_category(skip: integer, limit: integer, category: string)' in user


def test_judge_input_reads_calls_with_tag_text():
    from plugin.judge_base import JudgeSample, judge_input
    from plugin.judge_prompt import build_messages
    row, answers = _tagged_row()
    completion = '<think>\nThe user quotes the tags.\n</think>\n\n' + render_tool_calls(answers)
    inp = judge_input(JudgeSample(completion=completion, history=row['messages'], ground_truth=row['ground_truth'],
                                  reference_rationale='r', tools=row['tools']))
    assert inp.candidate_reasoning == 'The user quotes the tags.'
    assert inp.candidate_action == render_tool_calls(answers)
    messages, _, _ = build_messages(inp, 4000)
    fenced = messages[1]['content']
    assert '<tool_call>' not in fenced and '\\u003ctool_call\\u003e' in fenced  # data stays escaped data
