"""Issue 21.9: a served LoRA adapter gets vLLM's --max-lora-rank from its own rank (vLLM's default 16 refuses
a larger adapter at start-up), rounded up to a rank vLLM accepts; the user's own flag wins."""
import json

import pytest

from eval import serve as S


def adapter(tmp_path, **cfg):
    ad = tmp_path / 'checkpoint-10'
    ad.mkdir(exist_ok=True)
    (ad / 'adapter_config.json').write_text(json.dumps({'base_model_name_or_path': '/models/base', **cfg}))
    return S.resolve_checkpoint(str(ad))


@pytest.mark.parametrize('cfg, flag', [({'r': 64}, '64'), ({'r': 8}, '8'), ({'r': 48}, '64'),
                                       ({'r': 16, 'rank_pattern': {'q_proj': 128}}, '128'), ({}, None)])
def test_vllm_gets_the_adapters_rank(tmp_path, cfg, flag):
    v = S.vllm_cmd(adapter(tmp_path, **cfg), 9, 'awpo-eval', [])
    assert (v[v.index('--max-lora-rank') + 1] if '--max-lora-rank' in v else None) == flag


def test_user_flag_wins_and_too_large_a_rank_is_a_clear_error(tmp_path):
    v = S.vllm_cmd(adapter(tmp_path, r=64), 9, 'awpo-eval', ['--max-lora-rank', '256'])
    assert v.count('--max-lora-rank') == 1 and v[v.index('--max-lora-rank') + 1] == '256'
    with pytest.raises(S.ServeError, match='merge the adapter'):
        S.vllm_cmd(adapter(tmp_path, r=1024), 9, 'awpo-eval', [])
    full = S.Checkpoint(model='/models/full')
    assert '--max-lora-rank' not in S.vllm_cmd(full, 9, 'awpo-eval', [])
