"""AWPOConfig: file + environment loading, validation errors that name the field, secret-free output."""
from __future__ import annotations

import json

import pytest

from plugin.config import AWPOConfig


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


# ------------------------------------------------------------------ issue 11 C.1: refuse / warn, naming field and source

@pytest.mark.parametrize('values, field', [
    ({'r_out_max': 0}, 'r_out_max'),
    ({'r_out_max': -2}, 'r_out_max'),
    ({'eps_min': 0, 'eps_max': 0}, 'eps_max'),
    ({'eps_mix': float('nan')}, 'eps_mix'),
    ({'tau_high': float('inf')}, 'tau_high'),
    ({'judge': {'temperature': float('nan')}}, 'judge.temperature'),
    ({'judge': {'temperature': float('inf')}}, 'judge.temperature'),
    ({'judge': {'breaker_cooldown': float('inf')}}, 'judge.breaker_cooldown'),
    ({'judge': {'timeout': float('nan')}}, 'judge.timeout'),
    ({'reward_name_match': 'bag'}, 'reward_name_match'),
])
def test_degenerate_values_are_refused_naming_field_and_file(tmp_path, values, field):
    p = tmp_path / 'bad.json'
    p.write_text(json.dumps(values))  # json.dumps writes NaN / Infinity, which Python's json reads back
    with pytest.raises(ValueError) as e:
        AWPOConfig.load(p, env={})
    msg = str(e.value)
    assert repr(field) in msg and str(p) in msg, msg


@pytest.mark.parametrize('var, value, field', [
    ('AWPO_R_OUT_MAX', '0', 'r_out_max'),
    ('AWPO_EPS_MAX', '0', 'eps_max'),
    ('AWPO_JUDGE_TEMPERATURE', 'nan', 'judge.temperature'),
    ('AWPO_JUDGE_TEMPERATURE', 'inf', 'judge.temperature'),
    ('AWPO_EPS_MIX', 'lots', 'eps_mix'),
])
def test_degenerate_env_values_name_the_variable(var, value, field):
    with pytest.raises(ValueError) as e:
        AWPOConfig.load(env={var: value, 'AWPO_EPS_MIN': '0'} if var == 'AWPO_EPS_MAX' else {var: value})
    assert repr(field) in str(e.value) and var in str(e.value), str(e.value)


def test_yaml_source_is_named_for_a_value_from_the_file(tmp_path):
    p = tmp_path / 'awpo.yaml'
    p.write_text('judge:\n  temperature: .nan\n')
    with pytest.raises(ValueError, match=r"'judge\.temperature' \(in file .*awpo\.yaml\): must be a finite"):
        AWPOConfig.load(p, env={})


@pytest.mark.parametrize('values, words', [
    ({'eps_mix': 1.5}, ['eps_mix', 'never shuts the gate']),
    ({'eps_mix': 1.0}, ['eps_mix', 'never shuts the gate']),
    ({'eps_mix': 0.0}, ['eps_mix', 'always shut']),
    ({'r_out_max': 3.0}, ['r_out_max', 'never shuts']),
    ({'eps_min': 0.0}, ['eps_min', 'clip radius is 0']),
])
def test_legal_but_unusual_values_warn_with_meaning(tmp_path, caplog, values, words):
    p = tmp_path / 'unusual.yaml'
    p.write_text(''.join(f'{k}: {v}\n' for k, v in values.items()))
    with caplog.at_level('WARNING', logger='awpo'):
        cfg = AWPOConfig.load(p, env={})
    for k, v in values.items():
        assert getattr(cfg, k) == v  # warned, not refused
    hits = [m for m in caplog.messages if all(w in m for w in words)]
    assert hits and str(p) in hits[0], caplog.messages


def test_usual_values_do_not_warn(caplog):
    with caplog.at_level('WARNING', logger='awpo'):
        AWPOConfig.load(env={'AWPO_EPS_MIX': '0.8'})
    assert not [m for m in caplog.messages if 'AWPO config' in m]


# ------------------------------------------------------------------ issue 11 C.2: broken files

@pytest.mark.parametrize('name, text, where', [
    ('awpo.yaml', 'eps_mix: 0.5\njudge:\n  model: [unclosed\n', 'line 4, column 1'),
    ('awpo.yaml', 'eps_mix: 0.5\n  gating: false\n', 'line 2, column 9'),
    ('awpo.yml', 'eps_mix: 0.5\n\t- tab\n', 'line 2'),
    ('awpo.json', '{"eps_mix": 0.5,\n "gating": }', 'line 2, column 12'),
])
def test_invalid_config_file_names_file_and_position(tmp_path, name, text, where):
    p = tmp_path / name
    p.write_text(text)
    with pytest.raises(ValueError) as e:
        AWPOConfig.load(env={'AWPO_CONFIG': str(p)})
    msg = str(e.value)
    assert str(p) in msg and 'AWPO_CONFIG' in msg and where in msg, msg
    assert e.value.__cause__ is None and e.value.__suppress_context__  # no parser traceback chained


def test_invalid_config_file_through_the_command_line_is_one_clear_line(tmp_path):
    """What a user sees: the last line of the error names the file and position; no yaml internals."""
    import os
    import subprocess
    import sys
    p = tmp_path / 'awpo.yaml'
    p.write_text('eps_mix: [0.5\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith('AWPO_')}
    env['AWPO_CONFIG'] = str(p)
    r = subprocess.run([sys.executable, '-c', 'from plugin.config import AWPOConfig; AWPOConfig.load()'],
                       capture_output=True, text=True, env=env, cwd=_REPO, timeout=60)
    assert r.returncode != 0
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith('ValueError: AWPO config: ') and str(p) in last and 'line 2' in last, r.stderr
    assert 'yaml/' not in r.stderr, r.stderr


def test_non_utf8_or_missing_file_is_named(tmp_path):
    p = tmp_path / 'awpo.yaml'
    p.write_bytes(b'eps_mix: \xff\xfe\n')
    with pytest.raises(ValueError, match='cannot read .*awpo.yaml'):
        AWPOConfig.load(p, env={})
    with pytest.raises(ValueError, match=r'file not found: .*nope\.yaml \(named by \$AWPO_CONFIG\)'):
        AWPOConfig.load(env={'AWPO_CONFIG': str(tmp_path / 'nope.yaml')})


# ------------------------------------------------------------------ issue 11 C.3: non-config AWPO_* variables

_REPO = __import__('pathlib').Path(__file__).resolve().parents[1]


def test_eval_and_path_variables_do_not_break_loading(tmp_path, monkeypatch):
    from plugin.config import NON_FIELD_ENV
    env = {name: str(tmp_path) for name in NON_FIELD_ENV if name != 'AWPO_CONFIG'}
    env.update({'AWPO_BFCL_PYTHON': '/usr/bin/python3', 'AWPO_APIBANK_DIR': str(tmp_path), 'AWPO_EPS_MIX': '0.6'})
    assert AWPOConfig.load(env=env).eps_mix == 0.6
    # the variable named by judge.api_key_env holds a key, not a setting, whatever its name
    for k in [k for k in __import__('os').environ if k.startswith('AWPO_')]:
        monkeypatch.delenv(k)
    monkeypatch.setenv('AWPO_JUDGE_API_KEY_ENV', 'AWPO_JUDGE_TOKEN')
    monkeypatch.setenv('AWPO_JUDGE_TOKEN', 'sk-x')
    assert AWPOConfig.load().judge.api_key() == 'sk-x'


@pytest.mark.parametrize('var, hint', [
    ('AWPO_EPS_MXI', 'AWPO_EPS_MIX'), ('AWPO_TAU_HI', 'AWPO_TAU_HIGH'), ('AWPO_JUDGE_MODLE', 'AWPO_JUDGE_MODEL'),
    ('AWPO_BFCL_PYHTON', 'AWPO_BFCL_PYTHON'), ('AWPO_REWARD_NAME_MATCHES', 'AWPO_REWARD_NAME_MATCH'),
])
def test_typo_of_a_real_name_is_still_an_error_with_a_hint(var, hint):
    with pytest.raises(ValueError, match=f'unknown environment variable {var} \\(did you mean {hint}\\?\\)'):
        AWPOConfig.load(env={var: '1'})


def test_every_awpo_variable_the_repo_reads_is_a_field_or_listed():
    """Scan the repo's Python and shell files for AWPO_* variables they read; each must be a config field's
    variable or in NON_FIELD_ENV, else loading the plugin with it set would fail."""
    import re
    from dataclasses import fields

    from plugin.config import ENV_PREFIX, JUDGE_ENV_PREFIX, NON_FIELD_ENV, JudgeConfig
    allowed = set(NON_FIELD_ENV)
    allowed |= {ENV_PREFIX + f.name.upper() for f in fields(AWPOConfig) if f.name != 'judge'}
    allowed |= {JUDGE_ENV_PREFIX + f.name.upper() for f in fields(JudgeConfig)}
    py = re.compile(r'''(?:environ(?:\.get)?\(|environ\[|getenv\()\s*['"](AWPO_[A-Z0-9_]+)''')
    sh = re.compile(r'\$\{?(AWPO_[A-Z0-9_]+)')
    read = {}
    for path in _REPO.rglob('*'):
        rel = path.relative_to(_REPO)
        if rel.parts[0].startswith('.') or path.suffix not in ('.py', '.sh') or not path.is_file():
            continue
        text = path.read_text(errors='replace')
        for name in set(py.findall(text)) | (set(sh.findall(text)) if path.suffix == '.sh' else set()):
            read.setdefault(name, str(rel))
    assert {'AWPO_BFCL_PYTHON', 'AWPO_APIBANK_DIR', 'AWPO_SMOLLM2_DIR'} <= set(read)  # the scan sees them
    stray = {name: where for name, where in read.items() if name not in allowed}
    assert not stray, f'add these to plugin/config.py NON_FIELD_ENV (or make them fields): {stray}'


# ------------------------------------------------------------------ issue 13: a config file over its base


def test_a_config_file_overrides_its_base_and_names_each_fields_file(tmp_path):
    """``base:`` (relative to the file, any depth): the base is read first, the file's own keys win, the judge
    section merges field by field, and each field's origin is the file that set it; AWPO_* still win last."""
    (tmp_path / 'sub').mkdir()
    root, mid, leaf = tmp_path / 'root.yaml', tmp_path / 'sub' / 'mid.yaml', tmp_path / 'leaf.yaml'
    root.write_text('eps_mix: 0.6\ngating: true\njudge:\n  model: m1\n  timeout: 30\n')
    mid.write_text('base: ../root.yaml\ngating: false\njudge:\n  timeout: 20\n')
    leaf.write_text('base: sub/mid.yaml\neps_mix: 0.5\n')
    cfg = AWPOConfig.load(leaf, env={})
    assert (cfg.eps_mix, cfg.gating, cfg.judge.model, cfg.judge.timeout) == (0.5, False, 'm1', 20.0)
    src = cfg.__dict__['_sources']
    assert (src['eps_mix'], src['gating'], src['judge.timeout'], src['judge.model']) == (
        f'file {leaf}', f'file {mid}', f'file {mid}', f'file {root}')
    assert 'base' not in cfg.to_dict()
    env = AWPOConfig.load(leaf, env={'AWPO_GATING': '1'})
    assert env.gating is True and env.__dict__['_sources']['gating'] == 'environment variable AWPO_GATING'
    # a refused value names the file it came from, not the file that was asked for
    mid.write_text('base: ../root.yaml\njudge:\n  timeout: -1\n')
    with pytest.raises(ValueError, match=rf"'judge.timeout' \(in file {mid}\)"):
        AWPOConfig.load(leaf, env={})


def test_a_missing_cyclic_or_malformed_base_is_one_error_naming_the_files(tmp_path):
    a, b = tmp_path / 'a.yaml', tmp_path / 'b.yaml'
    a.write_text('base: gone.yaml\n')
    with pytest.raises(ValueError, match=rf'file not found: {tmp_path}/gone\.yaml \(the base of {a}\)'):
        AWPOConfig.load(a, env={})
    a.write_text('base: b.yaml\n')
    b.write_text('base: a.yaml\ngating: false\n')
    with pytest.raises(ValueError, match=rf'{b}: base .a\.yaml. makes a cycle: {a} -> {b} -> {a}'):
        AWPOConfig.load(a, env={})
    a.write_text('base: a.yaml\n')
    with pytest.raises(ValueError, match='makes a cycle'):
        AWPOConfig.load(a, env={})
    a.write_text('base: [b.yaml]\n')
    with pytest.raises(ValueError, match=rf"{a}: 'base' must name a file"):
        AWPOConfig.load(a, env={})
