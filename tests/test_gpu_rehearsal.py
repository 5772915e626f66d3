"""The CPU rehearsal of the GPU path (issue 18): gpu_smoke.sh and reproduce.sh run for real on faked GPU nodes
(testsupport/gpu_rehearsal.py says what is stood in and what ms-swift checks), one node and two.

Each test fails if one of the first GPU hour's defects comes back: 1 (a launch with fewer processes than
visible GPUs: ms-swift's is_mp refuses DeepSpeed / vLLM), 3 (a node that goes on to the next launch while
rank 0 evaluates: torchrun's static rendezvous times out), 4 (a vLLM share that holds no KV cache), 5 (the
smoke's one step at learning rate 0).
"""
from __future__ import annotations

import json
import os
import signal
import socket
import time
from pathlib import Path

import pytest

from testsupport import REPO
from testsupport.gpu_rehearsal import CheckServer, Rehearsal, run_script, start_script

pytestmark = pytest.mark.gpu_rehearsal


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.fixture(scope='module')
def checks(tmp_path_factory):
    """One check server (ms-swift imported once) for every rehearsal node of this file."""
    with CheckServer(tmp_path_factory.mktemp('checks')) as server:
        yield server


@pytest.fixture(scope='module')
def judge():
    from testsupport.judge_stub import JudgeStub
    with JudgeStub(mode='ok') as stub:
        yield stub.base_url


def build_data(d: Path) -> Path:
    """Finished training data from the bundled demo set (data_prep demo) with a fixture rationale per row (what
    the paid rationales step adds) and both SFT files (data_prep sft, each thinking mode), with the manifests
    reproduce.sh checks: no hub, no paid request."""
    import subprocess
    import sys

    from data_prep.manifest import write_manifest
    d.mkdir(parents=True, exist_ok=True)
    train = d / 'awpo_train.jsonl'
    subprocess.run([sys.executable, '-m', 'data_prep', 'demo', '--out', str(train)], cwd=REPO, check=True,
                   capture_output=True, timeout=300)
    rows = [json.loads(ln) for ln in train.read_text().splitlines() if ln.strip()]
    for r in rows:
        r['reference_rationale'] = f'The user asks: {r["messages"][-1]["content"][:80]} The reference action answers it.'
    rat = d / 'awpo_train_rationales.jsonl'
    rat.write_text(''.join(json.dumps(r) + '\n' for r in rows))
    write_manifest(str(rat), len(rows))
    for name, think in (('awpo_sft.jsonl', 'true'), ('awpo_sft_nothink.jsonl', 'false')):
        subprocess.run([sys.executable, '-m', 'data_prep', 'sft', '--in', str(rat), '--out', str(d / name), '--quiet',
                        '--thinking', think], cwd=REPO, check=True, capture_output=True, timeout=300)
        assert (d / name).stat().st_size > 0
    return d


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
    return build_data(tmp_path_factory.mktemp('data'))


def _workdir(tmp: Path, data: Path) -> Path:
    import shutil
    w = tmp / 'work'
    shutil.copytree(data, w / 'data')
    return w


def _ok(p, what):
    assert p.returncode == 0, f'{what} failed ({p.returncode}):\n{p.stderr[-6000:]}'


# ------------------------------------------------------------------------------------------ the smoke
@pytest.mark.parametrize('gpus,gib,profile', [(8, 79.1, '80g'), (4, 39.4, '40g'), (3, 79.1, '80g'), (2, 23.6, '24g')])
def test_gpu_smoke_passes_on_a_rehearsal_node(tmp_path, checks, judge, gpus, gib, profile):
    """All three smoke steps run: 2 ranks colocated (8, 4, 3 and 2 visible GPUs), the server-mode step against the
    rollout server the script starts, the served checkpoint's 5 BFCL cases."""
    with Rehearsal(tmp_path / 'node', gpus=gpus, gib=gib, checks=checks) as reh:
        p = run_script(reh, tmp_path, 'gpu_smoke.sh', AWPO_JUDGE_BASE_URL=judge, SMOKE_DIR=tmp_path / 'smoke',
                       SMOKE_ROLLOUT_PORT=_free_port(), SMOKE_POLL_S=1, MEM_PROFILE=profile)
        _ok(p, 'gpu_smoke.sh')
        assert 'SMOKE PASSED' in p.stderr
        runs = [x for x in reh.launches() if x['kind'] == 'swift']
        assert [x['sub'] for x in runs] == ['rlhf', 'rollout', 'rlhf']
        step1 = runs[0]
        assert step1['env']['NPROC_PER_NODE'] == '2' and step1['env']['CUDA_VISIBLE_DEVICES'] == '0,1'
        assert step1['env']['USE_HF'] == '1'
        [ev] = [x for x in reh.launches() if x['kind'] == 'eval']
        assert ev['vllm'][:3] == ['vllm', 'serve', str((tmp_path / 'smoke/runs/qwen3-1.7b/awpo/checkpoint-1').resolve())]
        assert '--reasoning-parser' in ev['vllm']      # Qwen3-1.7B thinks: the served model parses <think>


def test_the_rehearsal_catches_defects_1_and_5(tmp_path, checks):
    """The launch the old smoke made, run through the rehearsal's `swift`: 2 processes with all 8 GPUs visible
    (ms-swift: model parallel, refused with DeepSpeed / vLLM), and a run whose only step is warm-up (LR 0)."""
    import shlex
    import subprocess
    with Rehearsal(tmp_path / 'node', gpus=8, checks=checks) as reh:
        data = tmp_path / 'data'
        build_data(data)
        env = reh.env(tmp_path, DATA_DIR=data, NPROC_PER_NODE=2)
        one_step = ['--max_steps', '1', '--gradient_accumulation_steps', '1', '--per_device_train_batch_size', '4']
        out = subprocess.run(['bash', str(REPO / 'shells' / 'train.sh'), '--dry-run', 'grpo', 'qwen3-1.7b', '--',
                              *one_step, '--warmup_ratio', '0'], cwd=REPO, env=env, capture_output=True, text=True,
                             timeout=120).stdout
        words = shlex.split(out.strip().splitlines()[-1])
        launch_env = dict(w.split('=', 1) for w in words[:words.index('swift')])
        argv = words[words.index('swift'):]
        assert launch_env['CUDA_VISIBLE_DEVICES'] == '0,1'

        def launch(drop_env=(), drop_args=0):
            e = dict(env, **{k: v for k, v in launch_env.items() if k not in drop_env})
            return subprocess.run(argv[:len(argv) - drop_args], cwd=REPO, env=e, capture_output=True, text=True,
                                  timeout=300)
        p = launch()
        assert p.returncode == 0, p.stderr[-3000:]
        p = launch(drop_env=('CUDA_VISIBLE_DEVICES',))                       # defect 1 back
        assert p.returncode != 0 and 'is not compatible with `device_map`' in p.stderr, p.stderr[-3000:]
        assert 'n_gpu: 8, local_world_size: 2' in p.stderr
        p = launch(drop_args=2)                                              # defect 5 back: the recipe's warm-up
        assert p.returncode != 0 and 'runs at learning rate 0' in p.stderr, p.stderr[-3000:]


def test_the_rehearsal_catches_defect_4(tmp_path, checks):
    """The old 40 GB profile (vLLM 0.3 x 40 GB for the 8B) on a 40 GB node: the plan refuses, in train.sh and in
    the rehearsal's own check of the launch (MEMORY_PLAN=0 skips train.sh's)."""
    with Rehearsal(tmp_path / 'node', gpus=8, gib=39.4, checks=checks) as reh:
        data = tmp_path / 'data'
        build_data(data)
        args = ('grpo', 'qwen3-8b', '--', '--vllm_gpu_memory_utilization', '0.3')
        p = run_script(reh, tmp_path, 'train.sh', *args, DATA_DIR=data, MEM_PROFILE='40g')
        assert p.returncode == 2 and 'MEM_PROFILE=40g does not fit grpo on qwen3-8b' in p.stderr
        assert not reh.launches()
        p = run_script(reh, tmp_path, 'train.sh', *args, DATA_DIR=data, MEM_PROFILE='40g', MEMORY_PLAN=0)
        assert p.returncode != 0 and 'memory (39.4 GiB cards)' in p.stderr and 'short by' in p.stderr


# ------------------------------------------------------------------------------------------ reproduce.sh
def _check_reproduce(reh: Rehearsal, work: Path, tables: list[str]):
    runs = [x for x in reh.launches() if x['kind'] == 'swift']
    outs = {x['argv'][x['argv'].index('--output_dir') + 1] for x in runs}
    for out in outs:
        assert (Path(out) / 'DONE').exists() and (Path(out) / 'FINAL').exists(), out
    assert all(x['env'].get('USE_HF') == '1' for x in runs)
    evals = [x for x in reh.launches() if x['kind'] == 'eval']
    assert evals and not [x for x in evals if 'error' in x]
    assert all(x['env'].get('USE_HF') == '1' and x['env'].get('VLLM_USE_MODELSCOPE') == 'False' for x in evals)
    for x in evals:   # thinking mode served as trained: the 4B-2507 without the reasoning parser
        name = x['argv'][x['argv'].index('--name') + 1]
        assert ('--reasoning-parser' in x['vllm']) == (not name.startswith('qwen3-4b-')), name
    if 'figure1' in tables:
        assert list((work / 'results' / 'plots').glob('*/rewards.png'))
    if set(tables) & {'table2', 'table3', 'table4', 'table5'}:
        assert (work / 'results' / 'tables.md').exists()
    return runs, evals


def test_reproduce_all_on_one_8_gpu_node(tmp_path, checks, data_dir, judge):
    work = _workdir(tmp_path, data_dir)
    with Rehearsal(tmp_path / 'node', gpus=8, checks=checks) as reh:
        t0 = time.time()
        # two backbones (a thinking one and the 4B-2507 without thinking): every table; the 8B runs in table4 on
        # the smaller nodes below (CI time)
        p = run_script(reh, work, 'reproduce.sh', '--models', 'qwen3-1.7b qwen3-4b', 'all', AWPO_JUDGE_BASE_URL=judge)
        _ok(p, 'reproduce.sh all')
        runs, evals = _check_reproduce(reh, work, ['table2', 'table3', 'table4', 'table5', 'figure1'])
        # every run trained once, SFT before the GRPO that starts from it, on the backbone's SFT rows
        outs = [x['argv'][x['argv'].index('--output_dir') + 1] for x in runs]
        assert len(outs) == len(set(outs)) >= 19
        sft = {x['argv'][x['argv'].index('--model') + 1]: x['argv'][x['argv'].index('--dataset') + 1]
               for x in runs if x['sub'] == 'sft'}
        assert sft['Qwen/Qwen3-4B-Instruct-2507'].endswith('awpo_sft_nothink.jsonl')
        assert sft['Qwen/Qwen3-1.7B'].endswith('awpo_sft.jsonl')
        print(f'reproduce all, one node: {len(runs)} launches, {len(evals)} evaluations, {time.time() - t0:.0f} s')


@pytest.mark.parametrize('gpus,gib,profile', [(4, 39.4, '40g'), (2, 23.6, '24g')])
def test_reproduce_table4_on_smaller_nodes(tmp_path, checks, data_dir, judge, gpus, gib, profile):
    work = _workdir(tmp_path, data_dir)
    with Rehearsal(tmp_path / 'node', gpus=gpus, gib=gib, checks=checks) as reh:
        p = run_script(reh, work, 'reproduce.sh', 'table4', AWPO_JUDGE_BASE_URL=judge, NPROC_PER_NODE=gpus,
                       MEM_PROFILE=profile)
        _ok(p, f'reproduce.sh table4 on {gpus} x {gib} GiB')
        runs, _ = _check_reproduce(reh, work, ['table4'])
        assert {x['env']['NPROC_PER_NODE'] for x in runs} == {str(gpus)} and len(runs) == 3


def _two_nodes(tmp_path, checks, data_dir, judge, table, *args, slow_eval: str, **env):
    """Two reproduce.sh processes on this machine (node ranks 0 and 1) sharing RUNS_DIR / DATA_DIR; rank 0's
    evaluation of `slow_eval` outlasts any rendezvous wait."""
    work = _workdir(tmp_path, data_dir)
    with Rehearsal(tmp_path / 'nodes', gpus=8, rdzv_timeout=60.0, eval_seconds=15.0, checks=checks) as reh:
        common = dict(NNODES=2, MASTER_ADDR='127.0.0.1', MASTER_PORT=29511, AWPO_JUDGE_BASE_URL=judge,
                      WAIT_POLL_S=1, REHEARSAL_SLOW_EVAL=slow_eval, **env)
        logs = [tmp_path / f'node{r}.log' for r in (0, 1)]
        procs = [start_script(reh, work, 'reproduce.sh', *args, table, NODE_RANK=r, log=logs[r],
                              RESULTS_DIR=work / f'results{r}', **common) for r in (0, 1)]
        try:
            for p in procs:
                p.wait(timeout=900)
            outs = [('', log.read_text()) for log in logs]
        finally:
            for p in procs:   # a node left waiting (e.g. for a marker that never comes) ends with the test
                if p.poll() is None:
                    os.killpg(p.pid, signal.SIGTERM)
        return reh, work, procs, outs


def test_reproduce_on_two_nodes_waits_for_rank_0s_evaluations(tmp_path, checks, data_dir, judge):
    """Defect 3: rank 1 must not start the next launch while rank 0 evaluates (here the base row's evaluation
    lasts 15 s, and on while a node waits in a rendezvous: longer than the 60 s rendezvous window)."""
    reh, work, procs, outs = _two_nodes(tmp_path, checks, data_dir, judge, 'all', '--models', 'qwen3-1.7b',
                                        slow_eval='qwen3-1.7b-base')
    errs = '\n'.join(f'--- node {r} (exit {p.returncode}):\n{err[-4000:]}' for r, (p, (_, err)) in
                      enumerate(zip(procs, outs)))
    assert all(p.returncode == 0 for p in procs), errs
    assert not [x for x in reh.launches() if x['kind'] == 'rdzv_timeout']
    runs = [x for x in reh.launches() if x['kind'] == 'swift']
    by_node = {}
    for x in runs:
        by_node.setdefault(x['env']['NODE_RANK'], []).append(x['argv'][x['argv'].index('--output_dir') + 1])
    assert by_node['0'] == by_node['1'] and len(by_node['0']) >= 10          # every launch on both nodes, in order
    assert "waiting for node rank 0 to evaluate qwen3-1.7b-base" in outs[1][1]
    evals = [x for x in reh.launches() if x['kind'] == 'eval']
    assert evals and all(Path(x['argv'][x['argv'].index('--results-dir') + 1]).name == 'results0' for x in evals)
