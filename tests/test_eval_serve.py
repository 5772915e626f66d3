"""Serving: clear errors on bad checkpoints, LoRA adapters on their base, and no orphan processes."""
import json
import os
import time

import pytest

from eval import serve as S


def _gone(pgid: int) -> bool:
    """True when no live process of the group is left (a zombie awaiting init's reaping is dead)."""
    return not S.group_alive(pgid)


def test_missing_path_fails_before_starting_anything(tmp_path):
    srv = S.Server(model_path=str(tmp_path / 'nope'), backend='swift', use_lock=False)
    with pytest.raises(S.ServeError, match='does not exist'):
        srv.start()
    assert srv.proc is None
    (tmp_path / 'empty').mkdir()
    with pytest.raises(S.ServeError, match='neither config.json'):
        S.resolve_checkpoint(str(tmp_path / 'empty'))
    (tmp_path / 'file').write_text('x')
    with pytest.raises(S.ServeError, match='not a folder'):
        S.resolve_checkpoint(str(tmp_path / 'file'))
    with pytest.raises(S.ServeError, match='--model-path'):
        S.Server().start()


def test_lora_adapter_is_served_on_its_base(tmp_path):
    ad = tmp_path / 'checkpoint-10'
    ad.mkdir()
    (ad / 'adapter_config.json').write_text(json.dumps({'base_model_name_or_path': '/models/base'}))
    ck = S.resolve_checkpoint(str(ad))
    assert ck.model == '/models/base' and ck.adapter == str(ad.resolve())
    assert S.resolve_checkpoint(str(ad), base_model='/other').model == '/other'
    cmd = S.swift_deploy_cmd(ck, 8001, 'awpo-eval', S.SMOLLM2_SWIFT_ARGS)
    assert cmd[1:4] == ['deploy', '--model', '/models/base']
    assert cmd[cmd.index('--adapters') + 1] == str(ad.resolve())   # not name=path: test_eval_serve_batch.py
    assert cmd[cmd.index('--agent_template') + 1] == 'hermes'
    v = S.vllm_cmd(ck, 8001, 'awpo-eval', [])
    assert v[v.index('--lora-modules') + 1] == f'awpo-eval={ad.resolve()}' and '--tool-call-parser' in v
    (ad / 'adapter_config.json').write_text('{}')
    with pytest.raises(S.ServeError, match='base model'):
        S.resolve_checkpoint(str(ad))


def test_group_alive_sees_a_real_process_group():
    import subprocess
    p = subprocess.Popen(['sleep', '30'], start_new_session=True)
    try:
        assert S.group_alive(p.pid) == [p.pid]
    finally:
        p.kill()
        p.wait()
    assert S.group_alive(p.pid) == []


def test_base_url_must_answer():
    port = S.free_port()
    with pytest.raises(S.ServeError, match='no OpenAI-compatible server'):
        S.Server(base_url=f'http://127.0.0.1:{port}/v1').start()


@pytest.mark.slow
def test_broken_checkpoint_gives_clear_error_and_no_orphan(tmp_path):
    """A folder that looks like a model but is not: swift deploy dies, we report it and leave nothing."""
    bad = tmp_path / 'broken-ckpt'
    bad.mkdir()
    (bad / 'config.json').write_text('{"model_type": "llama", "this is": "not a model"}')
    # no model is ever loaded (swift fails on the config), so the heavy-job lock is not taken
    srv = S.Server(model_path=str(bad), backend='swift', extra_args=S.SMOLLM2_SWIFT_ARGS,
                   log_path=str(tmp_path / 'server.log'), startup_timeout=300, use_lock=False)
    t0 = time.time()
    with pytest.raises(S.ServeError) as e:
        srv.start()
    msg = str(e.value)
    assert 'exited with code' in msg and str(bad) in msg and 'server.log' in msg
    assert srv.proc is None and srv._lock_fd is None and _gone(srv.pgid)
    log_pid_groups = [p for p in os.listdir('/proc') if p.isdigit()]
    assert log_pid_groups  # /proc readable
    # every process that was started in the server's session is gone
    for pid in log_pid_groups:
        try:
            with open(f'/proc/{pid}/cmdline', 'rb') as f:
                assert str(bad).encode() not in f.read(), f'orphan process {pid}'
        except (FileNotFoundError, ProcessLookupError):
            pass
    assert time.time() - t0 < 300


# ------------------------------------------------------------------ issue 14: base rows, window, thinking
def test_hub_id_is_passed_to_the_server_a_missing_local_path_is_not(tmp_path, monkeypatch):
    """The tables' Base rows serve `Qwen/Qwen3-1.7B`: vLLM / swift deploy download it (issue 14.1)."""
    ck = S.resolve_checkpoint('Qwen/Qwen3-1.7B')
    assert (ck.model, ck.adapter, ck.hub) == ('Qwen/Qwen3-1.7B', None, True)
    for bad in ('/abs/missing', './rel/missing', '~/missing/x', 'a/b/c', 'no-slash'):
        with pytest.raises(S.ServeError, match='does not exist'):
            S.resolve_checkpoint(bad)
    monkeypatch.chdir(tmp_path)                 # `runs/typo`: runs/ is a local folder, so not a hub id
    (tmp_path / 'runs').mkdir()
    with pytest.raises(S.ServeError, match='does not exist'):
        S.resolve_checkpoint('runs/typo')
    backend, cmd = S.Server(model_path='Qwen/Qwen3-8B', backend='vllm', enable_thinking=True, port=9).command()
    assert backend == 'vllm' and cmd[:3] == ['vllm', 'serve', 'Qwen/Qwen3-8B']
    backend, cmd = S.Server(model_path='Qwen/Qwen3-8B', backend='swift', enable_thinking=True, port=9).command()
    assert cmd[cmd.index('--model') + 1] == 'Qwen/Qwen3-8B' and cmd[cmd.index('--enable_thinking') + 1] == 'true'


def test_vllm_window_and_thinking_flags():
    """--max-model-len from the eval's need, not the model's 262k (14.2); thinking as trained (14.3)."""
    ck = S.Checkpoint(model='Qwen/Qwen3-4B-Instruct-2507', hub=True)
    v = S.vllm_cmd(ck, 9, 'awpo-eval', [])
    assert v[v.index('--max-model-len') + 1] == str(S.EVAL_MAX_MODEL_LEN) == '40960'
    v = S.vllm_cmd(ck, 9, 'awpo-eval', ['--max-model-len', '8192'])      # the user's value wins, once
    assert v.count('--max-model-len') == 1 and v[v.index('--max-model-len') + 1] == '8192'
    assert '--max-model-len' not in S.vllm_cmd(ck, 9, 'awpo-eval', [], max_model_len=None)
    on = S.thinking_args('vllm', True)
    assert json.loads(on[on.index('--default-chat-template-kwargs') + 1]) == {'enable_thinking': True}
    assert on[on.index('--reasoning-parser') + 1] == 'qwen3'
    off = S.thinking_args('vllm', False)
    assert json.loads(off[1]) == {'enable_thinking': False} and '--reasoning-parser' not in off
    assert S.thinking_args('swift', False) == ['--enable_thinking', 'false'] and S.thinking_args('vllm', None) == []


def test_eval_cli_options_reach_the_server_command():
    import argparse
    p = argparse.ArgumentParser()
    S.add_server_args(p)
    args = p.parse_args(['--model-path', 'Qwen/Qwen3-1.7B', '--backend', 'vllm', '--enable-thinking', 'true'])
    backend, cmd = S.server_from_args(args).command()
    assert cmd[2] == 'Qwen/Qwen3-1.7B' and '--reasoning-parser' in cmd and '40960' in cmd
    args = p.parse_args(['--model-path', 'Qwen/Qwen3-1.7B', '--backend', 'vllm', '--max-model-len', '0'])
    assert '--max-model-len' not in S.server_from_args(args).command()[1]
