"""Issue 18, the first GPU hour: the seven defects a CPU can see (each test fails on the code before the fix),
the memory plan (shells/memory_plan.py) and the GPU set-up's package set (shells/check_gpu_env.py).
The CPU rehearsal that runs gpu_smoke.sh / reproduce.sh for real is tests/test_gpu_rehearsal.py.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from shells import memory_plan as MP
from testsupport import REPO
from testsupport.shell_run import SHELLS, _env, commands, sh, swift_parse

GPU_MODELS = ['qwen3-1.7b', 'qwen3-4b', 'qwen3-8b']


def _fake_smi(tmp: Path, gpus: int) -> str:
    """A node with `gpus` GPUs as train.sh sees it (nvidia-smi's index list); returns a PATH."""
    b = tmp / f'smi{gpus}'
    b.mkdir(exist_ok=True)
    (b / 'nvidia-smi').write_text(f'#!/bin/sh\nseq 0 {gpus - 1}\n')
    (b / 'nvidia-smi').chmod(0o755)
    return f'{b}:{os.environ["PATH"]}'


# ------------------------------------------------------------------------------------------ defect 1
def test_a_launch_sees_exactly_its_gpus(tmp_path):
    """NPROC_PER_NODE below the visible GPU count is model parallel to ms-swift (is_mp): train.sh restricts
    CUDA_VISIBLE_DEVICES to NPROC_PER_NODE devices (from nvidia-smi, or the user's own list)."""
    path = _fake_smi(tmp_path, 8)
    [(env, argv)] = commands(sh(tmp_path, 'train.sh', '--dry-run', 'grpo', 'qwen3-1.7b', NPROC_PER_NODE=2,
                                PATH=path).stdout)
    assert env['CUDA_VISIBLE_DEVICES'] == '0,1' and env['NPROC_PER_NODE'] == '2'
    [(env, _)] = commands(sh(tmp_path, 'train.sh', '--dry-run', 'grpo', 'qwen3-1.7b', NPROC_PER_NODE=2,
                             CUDA_VISIBLE_DEVICES='5,3,7', PATH=path).stdout)
    assert env['CUDA_VISIBLE_DEVICES'] == '5,3'
    [(env, _)] = commands(sh(tmp_path, 'train.sh', '--dry-run', 'grpo', 'qwen3-1.7b', PATH=path).stdout)
    assert env['CUDA_VISIBLE_DEVICES'] == '0,1,2,3,4,5,6,7'
    p = sh(tmp_path, 'train.sh', '--dry-run', 'grpo', 'qwen3-1.7b', check=False, NPROC_PER_NODE=4,
           CUDA_VISIBLE_DEVICES='0,1', PATH=path)
    assert p.returncode == 2 and 'lists fewer GPUs than NPROC_PER_NODE=4' in p.stderr and p.stdout == ''
    # the smoke's step 1 (2 ranks on an 8-GPU node) and step 2 (one GPU)
    smoke = commands(sh(tmp_path, 'gpu_smoke.sh', '--dry-run', SMOKE_DIR=tmp_path / 's', PATH=path).stdout)
    rl = [e for e, a in smoke if a[:2] == ['swift', 'rlhf']]
    assert [e['CUDA_VISIBLE_DEVICES'] for e in rl] == ['0,1', '0']


def test_ms_swift_is_mp_on_the_smoke_launch(tmp_path):
    """ms-swift's own is_mp() under the environment torchrun gives a rank of the smoke's step 1: model parallel
    (so DeepSpeed and vLLM refused) with 8 visible GPUs, not with the 2 train.sh leaves visible."""
    code = r'''
import json, os, sys, torch
torch.cuda.is_available = lambda: True
torch.cuda.device_count = lambda: len(os.environ['CUDA_VISIBLE_DEVICES'].split(','))
from swift.utils import is_mp
out = {}
for cvd in ('0,1,2,3,4,5,6,7', '0,1'):
    os.environ.update(CUDA_VISIBLE_DEVICES=cvd, LOCAL_WORLD_SIZE='2', RANK='0', LOCAL_RANK='0', WORLD_SIZE='2')
    out[cvd] = is_mp()
print(json.dumps(out))
'''
    p = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=240, cwd=REPO)
    assert p.returncode == 0, p.stderr[-2000:]
    assert json.loads(p.stdout.splitlines()[-1]) == {'0,1,2,3,4,5,6,7': True, '0,1': False}


# ------------------------------------------------------------------------------------------ defect 2
def test_gpu_setup_installs_bfcl_eval_in_its_own_venv(tmp_path):
    cmds = [a for _, a in commands(sh(tmp_path, 'setup_gpu.sh', '--dry-run', VENV='/n/.venv',
                                      EVAL_VENV='/n/.venv-eval').stdout)]
    ev = [a for a in cmds if a[0] == '/n/.venv-eval/bin/python']
    assert ['/n/.venv-eval/bin/python', '-m', 'pip', 'install', '-q', '-r', 'shells/requirements-eval-venv.txt'] in ev
    reqs = [ln for ln in (SHELLS / 'requirements-eval-venv.txt').read_text().splitlines()
            if ln and not ln.startswith('#')]
    assert 'bfcl-eval==2026.3.23' in reqs
    # torch before bfcl-eval, the CPU build (else sentence-transformers pulls a CUDA torch)
    t = next(i for i, a in enumerate(ev) if any(x.startswith('torch==') for x in a))
    assert ev[t][-1].endswith('/whl/cpu') and t < ev.index(['/n/.venv-eval/bin/python', '-m', 'pip', 'install', '-q',
                                                            '-r', 'shells/requirements-eval-venv.txt'])
    # the CPU set-up pins the same bfcl-eval; eval.bfcl looks for .venv-eval, the default EVAL_VENV
    assert 'bfcl-eval==2026.3.23' in (SHELLS / 'setup_cpu.sh').read_text()
    assert "'.venv-eval'" in (REPO / 'eval' / 'bfcl.py').read_text() or '".venv-eval"' in (
        REPO / 'eval' / 'bfcl.py').read_text()
    assert 'bfcl-eval not found' not in (SHELLS / 'gpu_smoke.sh').read_text()
    assert sh(tmp_path, 'setup_gpu.sh', '--dry-run', SKIP_EVAL_VENV=1).stdout.count('.venv-eval') == 0


def test_gpu_env_check_resolves_exactly_what_setup_gpu_installs():
    """One source: shells/check_gpu_env.py reads setup_gpu.sh's own pip lines (the slow test resolves them)."""
    from shells.check_gpu_env import requirement_sets, setup_commands
    sets = requirement_sets(setup_commands('/n/.venv', '/n/.venv-eval'))
    assert sets == {'/n/.venv/bin/python': ['torch==2.14.0', '-e', '.[gpu,eval]'],
                    '/n/.venv-eval/bin/python': ['torch==2.13.0', '-r', 'shells/requirements-eval-venv.txt']}
    import configparser
    cfg = configparser.ConfigParser()
    cfg.read(REPO / 'setup.cfg')
    extras = cfg['options.extras_require']
    assert 'vllm==0.33.*' in extras['gpu'] and 'deepspeed' in extras['gpu'] and 'evalscope' in extras['eval']
    assert re.search(r'ms-swift[=<>]', cfg['options']['install_requires'])


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get('CHECK_GPU_ENV') != '1', reason='asks the package registry for ~400 packages '
                    '(minutes): CHECK_GPU_ENV=1 to run, or python -m shells.check_gpu_env')
def test_gpu_env_resolves_from_the_registry(tmp_path):
    """pip's resolver over the GPU set-up's package set (no install, no CUDA index: see the script)."""
    p = subprocess.run([sys.executable, '-m', 'shells.check_gpu_env', '--report-dir', str(tmp_path)], cwd=REPO,
                       capture_output=True, text=True, timeout=1800)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    from shells.check_gpu_env import normalize
    main = {normalize(i['metadata']['name']): i['metadata']['version']
            for i in json.loads((tmp_path / '.venv.json').read_text())['install']}
    assert main['torch'] == '2.14.0' and main['vllm'].startswith('0.33.') and main['ms-swift'].startswith('4.')
    assert 'deepspeed' in main and 'evalscope' in main
    ev = {normalize(i['metadata']['name']) for i in json.loads((tmp_path / '.venv-eval.json').read_text())['install']}
    assert 'bfcl-eval' in ev


# ------------------------------------------------------------------------------------------ defect 4 + the plan
def test_the_plan_counts_the_published_qwen3_sizes():
    """Parameters from the config numbers match the model cards (Qwen3-1.7B: 1.7B, 1.4B non-embedding; 4B:
    4.0B / 3.6B; 8B: 8.2B / 6.95B); KV cache per token by hand: 2 x layers x 8 KV heads x 128 x 2 B."""
    published = {'qwen3-1.7b': (1.7e9, 1.4e9), 'qwen3-4b': (4.0e9, 3.6e9), 'qwen3-8b': (8.2e9, 6.95e9)}
    for name, (total, body) in published.items():
        b = MP.BACKBONES[name]
        assert abs(b.params - total) / total < 0.02, (name, b.params)
        assert abs(b.layers * b.layer_params - body) / body < 0.02, name
    assert MP.BACKBONES['qwen3-8b'].kv_bytes_per_token() == 2 * 36 * 8 * 128 * 2 == 147456
    assert MP.BACKBONES['qwen3-1.7b'].kv_bytes_per_token(tp=2) == 2 * 28 * 4 * 128 * 2
    # bf16 weights of the 8B: 2 x 8.19e9 B = 16.4 GB, the number
    assert round(2 * MP.BACKBONES['qwen3-8b'].params / 1e9, 1) == 16.4


def _old_profile(backbone, profile, frac):
    world = 8
    mb = {'40g': 2, '24g': 1}[profile]
    argv = ['rlhf', '--per_device_train_batch_size', str(mb), '--gradient_accumulation_steps', str(256 // (mb * world)),
            '--max_length', '4096', '--max_completion_length', '1024', '--deepspeed',
            'zero3' if profile == '40g' else 'zero3_offload', '--use_vllm', 'true', '--vllm_mode', 'colocate',
            '--vllm_gpu_memory_utilization', str(frac), '--vllm_max_model_len', '5120', '--sleep_level', '2',
            '--offload_model', 'true', '--offload_optimizer', 'true']
    return MP.plan(backbone, profile, MP.launch_from_argv(argv, world))


def test_the_old_memory_profiles_do_not_fit_and_the_plan_says_by_how_much():
    """Defect 4: 0.3 x 40 GB and 0.25 x 24 GB hold less than the bf16 weights (8B: 15.3 GiB; 4B at 24g: 7.5 GiB)."""
    p = _old_profile('qwen3-8b', '40g', 0.3)
    assert not p.fits and any('less than one 5120-token sequence' in e and 'short by' in e for e in p.problems)
    budget = 0.3 * MP.PROFILES['40g']
    short = 2 * MP.BACKBONES['qwen3-8b'].params / MP.GIB + 1.5 - budget + 5120 * 147456 / MP.GIB
    assert f'short by {short:.1f} GiB' in ' '.join(p.problems)
    assert not _old_profile('qwen3-4b', '24g', 0.25).fits and not _old_profile('qwen3-8b', '24g', 0.25).fits
    assert _old_profile('qwen3-1.7b', '40g', 0.3).fits


def test_every_recipe_fits_its_profile_and_train_sh_prints_the_plan(tmp_path):
    for model in GPU_MODELS:
        for prof in ('80g', '40g', '24g'):
            for method in ('awpo', 'sft'):
                p = sh(tmp_path, 'train.sh', '--dry-run', method, model, MEM_PROFILE=prof)
                assert f'memory plan: {model}' in p.stderr and f'MEM_PROFILE={prof}' in p.stderr, (model, prof)
                assert 'DOES NOT FIT' not in p.stderr, p.stderr
                [(env, argv)] = [(e, a) for e, a in commands(p.stdout) if a[:1] == ['swift']][-1:]
                world = int(env['NPROC_PER_NODE'])
                plan = MP.plan(model, prof, MP.launch_from_argv(argv[1:], world))
                assert plan.fits, (model, prof, method, plan.problems)
                if method == 'awpo':   # vLLM: weights and at least a quarter of an engine's sequences at full length
                    held, n = plan.kv_seqs
                    assert held >= n / 4, (model, prof, held, n)


def test_every_profile_fits_on_fewer_gpus_too(tmp_path):
    """On 1, 2 or 4 GPUs the ZeRO-3 shards grow (16 B per parameter / GPUs): below the GPU count a backbone needs
    on a card, the profile keeps weights and optimiser on the CPU (zero3_offload), and the plan fits."""
    for model in GPU_MODELS:
        for prof in ('80g', '40g', '24g'):
            for n in (1, 2, 4):
                p = sh(tmp_path, 'train.sh', '--dry-run', 'awpo', model, MEM_PROFILE=prof, NPROC_PER_NODE=n)
                assert 'DOES NOT FIT' not in p.stderr, (model, prof, n, p.stderr[-1500:])
    [(_, argv)] = commands(sh(tmp_path, 'train.sh', '--dry-run', 'awpo', 'qwen3-8b', MEM_PROFILE='40g',
                              NPROC_PER_NODE=4).stdout)
    assert argv[argv.index('--deepspeed') + 1] == 'zero3_offload'
    [(_, argv)] = commands(sh(tmp_path, 'train.sh', '--dry-run', 'awpo', 'qwen3-8b', MEM_PROFILE='40g').stdout)
    assert argv[argv.index('--deepspeed') + 1] == 'zero3'


def test_train_refuses_a_launch_that_does_not_fit_naming_profile_shortfall_and_what_fits(tmp_path):
    p = sh(tmp_path, 'train.sh', '--dry-run', 'awpo', 'qwen3-8b', '--', '--vllm_gpu_memory_utilization', '0.3',
           check=False, MEM_PROFILE='40g')
    assert p.returncode == 2 and p.stdout == ''
    assert 'MEM_PROFILE=40g does not fit qwen3-8b on 8 GPUs' in p.stderr and 'short by' in p.stderr
    assert "what fits: -- --vllm_tensor_parallel_size 2" in p.stderr
    # the suggestion really fits
    fixed = sh(tmp_path, 'train.sh', '--dry-run', 'awpo', 'qwen3-8b', '--', '--vllm_gpu_memory_utilization', '0.3',
               '--vllm_tensor_parallel_size', '2', MEM_PROFILE='40g')
    assert fixed.returncode == 0 and 'DOES NOT FIT' not in fixed.stderr
    # a real (not dry) run stops before anything is launched
    (tmp_path / 'data').mkdir()
    (tmp_path / 'data' / 'awpo_train_rationales.jsonl').write_text('{"x": 1}\n')
    p = sh(tmp_path, 'train.sh', 'grpo', 'qwen3-8b', '--', '--vllm_gpu_memory_utilization', '0.25', check=False,
           MEM_PROFILE='24g')
    assert p.returncode == 2 and 'does not fit' in p.stderr and not (tmp_path / 'runs' / 'qwen3-8b' / 'grpo').exists()


def test_dry_runs_of_smoke_and_reproduce_print_the_memory_plan(tmp_path):
    p = sh(tmp_path, 'gpu_smoke.sh', '--dry-run', SMOKE_DIR=tmp_path / 's')
    assert p.stderr.count('memory plan: qwen3-1.7b') == 2 and 'peak generation' in p.stderr
    p = subprocess.run(['bash', str(SHELLS / 'reproduce.sh'), '--dry-run', '--models', 'qwen3-8b', 'table4'],
                       cwd=REPO, capture_output=True, text=True, timeout=120,
                       env=_env(tmp_path))
    assert p.returncode == 0 and 'memory plan: qwen3-8b' in p.stderr
    table = MP.table(methods=('awpo',))
    assert table.count('| yes |') == 9 and 'NO:' not in table


# ------------------------------------------------------------------------------------------ defect 5
def test_the_smoke_step_trains_at_a_learning_rate_above_zero(tmp_path):
    """transformers rounds the warm-up up (ceil(ratio x steps)): with --max_steps 1 and the recipe's 2 % the only
    step is a warm-up step at LR 0. The smoke passes --warmup_ratio 0; read back with ms-swift's parser, its
    bridge of --warmup_ratio to transformers 5 (warmup_steps < 1 = a ratio) and transformers' own
    get_warmup_steps + scheduler."""
    smoke = commands(sh(tmp_path, 'gpu_smoke.sh', '--dry-run', SMOKE_DIR=tmp_path / 's').stdout)
    jobs = [{'sub': 'rlhf', 'argv': a[2:], 'env': e, 'world': int(e['NPROC_PER_NODE']), 'full': False}
            for e, a in smoke if a[:2] == ['swift', 'rlhf']]
    parsed = swift_parse(jobs, cwd=REPO)
    assert len(parsed) == 2 and all(r['ok'] for r in parsed)
    code = r'''
import json, sys, types, torch
from transformers import TrainingArguments, get_scheduler
from swift.trainers.arguments import TrainArgumentsMixin
out = []
for a in json.load(sys.stdin):
    # ms-swift's own bridge of --warmup_ratio to the transformers it runs with (5.x: a float warmup_steps)
    bridge = types.SimpleNamespace(warmup_ratio=a['warmup_ratio'], warmup_steps=a['warmup_steps'] or 0,
                                   _hf_has_field=TrainArgumentsMixin._hf_has_field)
    TrainArgumentsMixin._handle_hf_removed_args(bridge)
    ta = TrainingArguments(output_dir='/tmp/x', warmup_steps=bridge.warmup_steps, report_to=[])
    warm = ta.get_warmup_steps(a['max_steps'])
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=a['learning_rate'])
    get_scheduler(a['lr_scheduler_type'], opt, num_warmup_steps=warm, num_training_steps=a['max_steps'])
    out.append([warm, opt.param_groups[0]['lr']])
print(json.dumps(out))
'''
    args = [r['args'] for r in parsed]
    args.append(dict(args[0], warmup_ratio=0.02))     # the recipe's warm-up, as the smoke had it before
    p = subprocess.run([sys.executable, '-c', code], input=json.dumps(args), capture_output=True, text=True,
                       timeout=240)
    assert p.returncode == 0, p.stderr[-2000:]
    (w1, lr1), (w2, lr2), (w_old, lr_old) = json.loads(p.stdout.splitlines()[-1])
    assert (w1, w2) == (0, 0) and lr1 == lr2 == 1e-6 and args[0]['max_steps'] == 1
    assert (w_old, lr_old) == (1, 0.0)


# ------------------------------------------------------------------------------------------ defect 6
ROW = {'messages': [{'role': 'user', 'content': 'Weather in Paris?'}],
       'tools': '[{"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]',
       'source': 'toolace', 'dialogue_id': 'd1', 'step': 0,
       'ground_truth': '[{"name": "get_weather", "arguments": {"city": "Paris"}}]',
       'reference_rationale': 'The user wants the weather in Paris: call get_weather with city Paris.'}


def test_sft_rows_follow_the_backbones_thinking_mode(tmp_path):
    from data_prep.sft import sft_target
    from plugin.toolcall_format import parse_completion
    think, plain = sft_target(ROW), sft_target(ROW, thinking=False)
    assert think.startswith('<think>\n') and '<think>' not in plain and '</think>' not in plain
    # where the reward (and the judge) read a non-thinking completion: reasoning before the calls
    parsed = parse_completion(plain)
    assert parsed.reasoning == ROW['reference_rationale'] and parsed.calls == [
        {'name': 'get_weather', 'arguments': {'city': 'Paris'}}]
    answer = dict(ROW, ground_truth='[]', reference_answer='I cannot check the weather.')
    assert sft_target(answer, thinking=False) == 'I cannot check the weather.'
    # the CLI and the manifest
    src = tmp_path / 'r.jsonl'
    src.write_text(json.dumps(ROW) + '\n')
    for flag in ('true', 'false'):
        out = tmp_path / f'sft_{flag}.jsonl'
        p = subprocess.run([sys.executable, '-m', 'data_prep', 'sft', '--in', str(src), '--out', str(out), '--quiet',
                            '--thinking', flag], cwd=REPO, capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stderr
        target = json.loads(out.read_text())['messages'][-1]['content']
        assert ('<think>' in target) == (flag == 'true')
        assert json.loads(Path(str(out) + '.manifest.json').read_text())['thinking'] is (flag == 'true')


def test_each_backbone_trains_sft_on_the_rows_of_its_thinking_mode(tmp_path):
    cmds = commands(sh(tmp_path, 'reproduce.sh', '--dry-run', 'table2').stdout)
    built = {a[a.index('--out') + 1].rsplit('/', 1)[1]: a[a.index('--thinking') + 1]
             for _, a in cmds if a[:4] == ['python', '-m', 'data_prep', 'sft']}
    assert built == {'awpo_sft.jsonl': 'true', 'awpo_sft_nothink.jsonl': 'false'}
    sft = {a[a.index('--model') + 1]: (a[a.index('--dataset') + 1], a[a.index('--enable_thinking') + 1])
           for _, a in cmds if a[:2] == ['swift', 'sft']}
    assert sft['Qwen/Qwen3-4B-Instruct-2507'] == (f'{tmp_path}/data/awpo_sft_nothink.jsonl', 'false')
    assert sft['Qwen/Qwen3-8B'] == (f'{tmp_path}/data/awpo_sft.jsonl', 'true')
    one = commands(sh(tmp_path, 'reproduce.sh', '--dry-run', '--models', 'qwen3-1.7b', 'table2').stdout)
    assert [a[a.index('--thinking') + 1] for _, a in one if a[:4] == ['python', '-m', 'data_prep', 'sft']] == ['true']


# ------------------------------------------------------------------------------------------ defect 7
def test_training_rollout_and_evaluation_download_from_one_hub(tmp_path):
    def hubs(out):
        return {(e.get('USE_HF'), e.get('VLLM_USE_MODELSCOPE')) for e, a in commands(out)
                if a[:1] == ['swift'] or a[:3] in (['python', '-m', 'eval.bfcl'], ['python', '-m', 'eval.apibank'],
                                                    ['python', '-m', 'eval.mmlu_pro'])}
    out = sh(tmp_path, 'reproduce.sh', '--dry-run', '--models', 'qwen3-4b', 'table2').stdout
    assert hubs(out) == {('1', 'False')}
    out += sh(tmp_path, 'serve_rollout.sh', '--dry-run', 'qwen3-4b').stdout
    out += sh(tmp_path, 'gpu_smoke.sh', '--dry-run', SMOKE_DIR=tmp_path / 's').stdout
    assert hubs(out) == {('1', 'False')}
    ms = sh(tmp_path, 'reproduce.sh', '--dry-run', '--models', 'qwen3-4b', 'table2', MODEL_HUB='modelscope').stdout
    assert hubs(ms) == {('0', 'True')}
    bad = sh(tmp_path, 'train.sh', '--dry-run', 'grpo', 'qwen3-4b', check=False, MODEL_HUB='hugging')
    assert bad.returncode == 2 and "unknown MODEL_HUB 'hugging'" in bad.stderr
