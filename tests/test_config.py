"""AWPOConfig: file + environment loading, validation errors that name the field, secret-free output."""
from __future__ import annotations

import json

import pytest

from plugin.awpo_core import AWPOConfig


def test_defaults_are_valid_and_documented_values():
    cfg = AWPOConfig.load(env={})
    assert (cfg.eps_max, cfg.r_out_max) == (0.2, 2.0)
    assert cfg.tau_low < cfg.tau_high and cfg.alpha_prio > cfg.alpha_base and cfg.eps_min <= cfg.eps_max
    assert cfg.gating and cfg.difficulty and cfg.dynamic_clip


def test_yaml_then_env_override(tmp_path):
    p = tmp_path / 'awpo.yaml'
    p.write_text('eps_mix: 0.6\ngating: false\njudge:\n  model: my-judge\n  concurrency: 8\n')
    cfg = AWPOConfig.load(p, env={'AWPO_EPS_MIX': '0.65', 'AWPO_DIFFICULTY': '0', 'AWPO_JUDGE_MODEL': 'other'})
    assert cfg.eps_mix == 0.65 and cfg.gating is False and cfg.difficulty is False
    assert cfg.judge.model == 'other' and cfg.judge.concurrency == 8


def test_config_env_var_names_the_file(tmp_path):
    p = tmp_path / 'awpo.json'
    p.write_text(json.dumps({'alpha_prio': 2.5, 'dynamic_clip': False}))
    cfg = AWPOConfig.load(env={'AWPO_CONFIG': str(p)})
    assert cfg.alpha_prio == 2.5 and cfg.dynamic_clip is False


@pytest.mark.parametrize('values, field', [
    ({'tau_low': 1.5, 'tau_high': 1.0}, 'tau_low'),
    ({'alpha_prio': 1.0, 'alpha_base': 1.0}, 'alpha_prio'),
    ({'eps_min': 0.3, 'eps_max': 0.2}, 'eps_min'),
    ({'eps_mix': -0.1}, 'eps_mix'),
    ({'adv_eps': 0}, 'adv_eps'),
    ({'eps_std': -1e-6}, 'eps_std'),
    ({'bogus': 1}, 'bogus'),
    ({'gating': 'maybe'}, 'gating'),
    ({'eps_mix': 'abc'}, 'eps_mix'),
    ({'judge': {'concurrency': 0}}, 'judge.concurrency'),
    ({'judge': {'nope': 1}}, 'judge.nope'),
    ({'judge': {'backend': 'openai'}}, 'judge.base_url'),
])
def test_invalid_values_name_the_field(values, field):
    with pytest.raises(ValueError, match=field.replace('.', r'\.')):
        AWPOConfig.from_dict(values)


def test_unknown_env_variable_is_an_error():
    with pytest.raises(ValueError, match='AWPO_EPSMIX'):
        AWPOConfig.load(env={'AWPO_EPSMIX': '0.5'})
    with pytest.raises(ValueError, match='AWPO_JUDGE_URL'):
        AWPOConfig.load(env={'AWPO_JUDGE_URL': 'http://x'})


def test_bool_env_spellings():
    for s, v in [('0', False), ('false', False), ('no', False), ('1', True), ('True', True), ('on', True)]:
        assert AWPOConfig.load(env={'AWPO_GATING': s}).gating is v


def test_saved_config_names_the_key_variable_never_its_value(tmp_path, monkeypatch):
    secret = 'sk-test-SECRET-0123456789'
    monkeypatch.setenv('AWPO_JUDGE_API_KEY', secret)
    cfg = AWPOConfig.load()
    path = cfg.save(tmp_path)
    text = path.read_text()
    assert secret not in text
    saved = json.loads(text)
    assert saved['judge']['api_key_env'] == 'AWPO_JUDGE_API_KEY' and saved['judge']['api_key_set'] is True
    assert saved['eps_mix'] == cfg.eps_mix
