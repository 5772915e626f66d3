"""A LoRA adapter served by the real swift deploy answers requests sent side by side (issue 20).

eval.serve asks swift deploy to batch up to SWIFT_MAX_BATCH waiting requests and eval.bfcl sends that many at
once. ms-swift 4.6 fails such a batch for an adapter served under its own name (``--adapters name=path``:
"Length of `adapter_names` should be the same as the number of inputs, but got 1 and 8"), which scored the
demo's AWPO model 0/20 on BFCL; the adapter is now loaded into the served model (``--adapters path``).
"""
import json
import threading
import urllib.request

import pytest

from eval import serve as S


def make_adapter(base, out):
    """A small LoRA adapter on SmolLM2, saved in peft's format as swift rlhf saves its checkpoints."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(str(base), torch_dtype=torch.float32)
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=['q_proj', 'v_proj'],
                                                  init_lora_weights=False))
    peft_model.save_pretrained(str(out))
    cfg = json.loads((out / 'adapter_config.json').read_text())
    assert cfg['base_model_name_or_path'] == str(base)
    return out


def chat(url, n_words):
    body = json.dumps({'model': 'awpo-eval', 'max_tokens': 8, 'temperature': 0,
                       'messages': [{'role': 'user', 'content': 'Count: ' + ' '.join(['one'] * n_words)}]})
    req = urllib.request.Request(f'{url}/chat/completions', data=body.encode(),
                                 headers={'Content-Type': 'application/json'})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors='replace')


@pytest.mark.slow
def test_lora_adapter_answers_a_batch_of_concurrent_requests(smollm2_dir, tmp_path):
    adapter = make_adapter(smollm2_dir, tmp_path / 'checkpoint-1')
    srv = S.Server(model_path=str(adapter), backend='swift', served_name='awpo-eval',
                   extra_args=S.SMOLLM2_SWIFT_ARGS, log_path=str(tmp_path / 'server.log'), startup_timeout=300)
    answers = [None] * S.SWIFT_MAX_BATCH
    with srv as url:
        def ask(i):
            answers[i] = chat(url, i + 1)   # prompts of different lengths: the batch is padded
        threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(answers))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    log = (tmp_path / 'server.log').read_text(errors='replace')
    assert [status for status, _ in answers] == [200] * len(answers), answers
    assert f'max_batch_size={S.SWIFT_MAX_BATCH}' in log and f"adapters=['{adapter}']" in log
    assert all(body['choices'][0]['message']['content'] is not None for _, body in answers)
    assert 'adapter_names' not in log
