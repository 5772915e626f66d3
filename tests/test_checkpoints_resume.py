"""Issue 21.8: resume from the newest COMPLETE checkpoint, incomplete ones moved aside (never deleted), and
one log line per step after a resume (plots, tables and check_awpo_active read the de-duplicated log).
The last test kills a real `swift rlhf` run (SmolLM2 on the CPU) while it saves and reruns it."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from eval import check_awpo_active, plots
from eval.checkpoints import main as ckpt_main
from eval.checkpoints import newest_complete, problems
from eval.jsonl import global_step, latest_per_step
from testsupport.checkpoints import make_checkpoint, write_safetensors

KINDS = ('lora', 'full', 'sharded', 'zero3')


@pytest.mark.parametrize('kind', KINDS)
def test_a_finished_save_is_complete(tmp_path, kind):
    assert problems(make_checkpoint(tmp_path, 7, kind)) is None


def _truncate(path: Path, keep: int) -> None:
    path.write_bytes(path.read_bytes()[:keep])


CASES = {  # what a kill at some point of the save leaves -> the reason given
    'lora: the issue\'s case (adapter_config.json 0 bytes, no trainer_state.json)':
        ('lora', lambda d: ((d / 'adapter_config.json').write_text(''), (d / 'trainer_state.json').unlink()),
         'trainer_state.json is missing'),
    'lora: adapter_config.json 0 bytes': ('lora', lambda d: (d / 'adapter_config.json').write_text(''),
                                          'adapter_config.json is not valid JSON (0 bytes'),
    'lora: adapter weights cut': ('lora', lambda d: _truncate(d / 'adapter_model.safetensors', 100), 'truncated'),
    'full: config.json torn': ('full', lambda d: _truncate(d / 'config.json', 5), 'config.json is not valid JSON'),
    'full: no weights': ('full', lambda d: (d / 'model.safetensors').unlink(), 'no model weights'),
    'sharded: a shard missing': ('sharded', lambda d: (d / 'model-00002-of-00002.safetensors').unlink(),
                                 'model-00002-of-00002.safetensors (listed in model.safetensors.index.json) is missing'),
    'sharded: a shard cut': ('sharded', lambda d: _truncate(d / 'model-00001-of-00002.safetensors', 40), 'truncated'),
    'optimizer.pt cut': ('full', lambda d: _truncate(d / 'optimizer.pt', 30), 'optimizer.pt is not a whole torch file'),
    'trainer_state.json torn': ('lora', lambda d: _truncate(d / 'trainer_state.json', 10), 'trainer_state.json is not valid JSON'),
    'trainer_state of another step': ('lora', lambda d: (d / 'trainer_state.json').write_text('{"global_step": 6}'),
                                      'says global_step 6, the folder says 7'),
    'zero3: no latest': ('zero3', lambda d: (d / 'latest').unlink(), 'without its `latest` file'),
    'zero3: latest names a missing folder': ('zero3', lambda d: (d / 'latest').write_text('global_step9'),
                                             "`latest` names 'global_step9'"),
    'zero3: rank 1 optimizer states missing':
        ('zero3', lambda d: (d / 'global_step7' / 'bf16_zero_pp_rank_1_mp_rank_00_optim_states.pt').unlink(),
         'optim states of rank(s) [1] missing (of 2 ranks)'),
    'zero3: empty model states':
        ('zero3', lambda d: (d / 'global_step7' / 'zero_pp_rank_0_mp_rank_00_model_states.pt').write_bytes(b''),
         'zero_pp_rank_0_mp_rank_00_model_states.pt is empty'),
}


@pytest.mark.parametrize('case', list(CASES))
def test_an_interrupted_save_is_incomplete_and_says_why(tmp_path, case):
    kind, damage, reason = CASES[case]
    d = make_checkpoint(tmp_path, 7, kind)
    damage(d)
    why = problems(d)
    assert why is not None and reason in why, why


def test_safetensors_check_reads_the_header_not_the_data(tmp_path):
    p = write_safetensors(tmp_path / 'x.safetensors', {'a': [1.0, 2.0], 'b': [3.0]})
    from eval.checkpoints import safetensors_problem   # a whole file, one byte short, one byte long
    assert safetensors_problem(p) is None
    data = p.read_bytes()
    p.write_bytes(data[:-1])
    assert 'truncated' in safetensors_problem(p)
    p.write_bytes(data + b'\0')
    assert safetensors_problem(p) is not None


def test_newest_complete_moves_newer_incomplete_ones_aside_and_deletes_nothing(tmp_path, capsys):
    out = tmp_path / 'run'
    for step in (100, 200, 300, 1000):
        make_checkpoint(out, step, 'zero3')
    (out / 'checkpoint-1000' / 'trainer_state.json').unlink()          # killed mid-save
    _truncate(out / 'checkpoint-300' / 'global_step300' / 'bf16_zero_pp_rank_1_mp_rank_00_optim_states.pt', 20)
    files_before = sorted(p.name for p in out.rglob('*') if p.is_file())
    assert newest_complete(out) == out / 'checkpoint-200'                 # report only: nothing moved
    assert (out / 'checkpoint-1000').is_dir()
    assert ckpt_main([str(out), '--move-aside']) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == str(out / 'checkpoint-200')
    moved = sorted((out / 'incomplete').iterdir())
    assert [m.name.split('.')[0] for m in moved] == ['checkpoint-1000', 'checkpoint-300']
    assert 'checkpoint-1000 is incomplete (trainer_state.json is missing): moved to' in captured.err
    assert sorted(p.name for p in out.rglob('*') if p.is_file()) == files_before   # every file still there
    assert sorted(p.name for p in out.glob('checkpoint-*')) == ['checkpoint-100', 'checkpoint-200']
    # nothing complete at all: no resume, all moved aside
    (out / 'checkpoint-100' / 'trainer_state.json').write_text('{')
    (out / 'checkpoint-200' / 'latest').unlink()
    assert newest_complete(out, move_aside=True, log=lambda m: None) is None
    assert not list(out.glob('checkpoint-*')) and len(list((out / 'incomplete').iterdir())) == 4


# ------------------------------------------------------------------------------------ de-duplicated logs
def test_latest_per_step_keeps_the_last_occurrence_of_each_step():
    recs = [{'s': 1}, {'s': 2}, {'s': 3}, {'s': 4, 'old': 1}, {'s': 3, 'new': 1}, {'s': 4, 'new': 1}, {'end': 1},
            {'s': 5}]
    kept = latest_per_step(recs, lambda r: r.get('s'))
    assert kept == [{'s': 1}, {'s': 2}, {'s': 3, 'new': 1}, {'s': 4, 'new': 1}, {'end': 1}, {'s': 5}]
    # the same step logged twice at the end of a run and again after the resume
    assert latest_per_step([{'s': 1}, {'s': 2, 'a': 1}, {'s': 2, 'b': 1}], lambda r: r['s']) == [{'s': 1}, {'s': 2, 'b': 1}]
    assert global_step({'global_step/max_steps': '3/10'}) == 3 and global_step({'step': ['4', '4']}) == 4
    assert global_step({'train_runtime': 1}) is None


def _resumed_run(tmp_path: Path) -> Path:
    """A run killed after logging step 3 with checkpoint-2, resumed: steps 3 and 4 logged after it again."""
    run = tmp_path / 'run'
    run.mkdir()
    def line(step, gate):
        return {'global_step/max_steps': f'{step}/4', 'reward': float(step), 'awpo/gate_open_frac': gate,
                'awpo/w_mix_mean': gate, 'awpo/clip_eps': 0.2 - 0.1 * gate}
    logs = [line(1, 0.0), line(2, 0.0), line(3, 0.5), line(3, 0.0), line(4, 0.0), {'train_runtime': 9.0}]
    (run / 'logging.jsonl').write_text(''.join(json.dumps(x) + '\n' for x in logs))
    comp = [{'step': [str(s)] * 2, 'prompt': ['p', 'p'], 'completion': [f'c{s}{tag}', 'd'], 'AWPOOutcome': [1.0, 0.0],
             'AWPOJudge': [0.5, 0.1], 'advantages': [1.0, -1.0]} for s, tag in ((1, ''), (2, ''), (3, 'old'), (3, 'new'), (4, ''))]
    (run / 'completions.jsonl').write_text(''.join(json.dumps(x) + '\n' for x in comp))
    (run / 'awpo_config.json').write_text(json.dumps({'eps_max': 0.2}))
    return run


def test_plots_and_check_awpo_active_read_one_line_per_step(tmp_path, capsys):
    run = _resumed_run(tmp_path)
    rows = plots.read_log(run / 'logging.jsonl')
    assert [r['step'] for r in rows] == [1, 2, 3, 4] and rows[2]['awpo/gate_open_frac'] == 0.0
    comps = plots.read_completions(run / 'completions.jsonl')
    assert len(comps) == 8 and 'c3old' not in [c['completion'] for c in comps]
    assert 'logged again by a resumed run' in capsys.readouterr().err
    # step 3's first logging (gate open) was superseded: AWPO never acted in the steps that count
    hit, steps, _ = check_awpo_active.check(run)
    assert hit is None and len(steps) == 4
    assert check_awpo_active.main([str(run)]) == 1


# ------------------------------------------------------------------------------------ real kill (slow)
def _alive_in_group(pgid: int) -> list:
    """Processes of process group `pgid` still running (zombies left out), from /proc."""
    alive = []
    for stat in Path('/proc').glob('[0-9]*/stat'):
        try:
            fields = stat.read_text().rsplit(')', 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != 'Z':
            alive.append(int(stat.parent.name))
    return alive


def _ckpt_dirs(out: Path):
    return sorted(out.glob('checkpoint-*'), key=lambda p: int(p.name.split('-')[1]))


@pytest.mark.slow
def test_a_real_swift_run_killed_while_saving_resumes_from_the_last_complete_checkpoint(smollm2_dir, tmp_path):
    """`swift rlhf` (2 steps, a checkpoint every step) is SIGKILLed as soon as step 2 is logged, i.e. in the
    middle of step 2's save (or, if the save was quicker than the poll, right after it: then checkpoint-2 is
    cut the way a kill leaves it, adapter_config.json 0 bytes and no trainer_state.json). On a box so loaded
    that step 2 is not logged within `deadline`, the kill comes in the middle of step 2 instead. The rerun,
    as train.sh does it: `python -m eval.checkpoints --move-aside` picks checkpoint-1 (moves checkpoint-2
    aside); ms-swift resumes, logs step 2 (again, after a mid-save kill) and finishes; the readers see steps
    1 and 2 once each."""
    from testsupport.swift_run import REPO, read_log, swift_bin, train_steps
    import sys
    data = tmp_path / 'demo.jsonl'
    subprocess.run([sys.executable, '-m', 'data_prep', 'demo', '--out', str(data)], cwd=REPO, check=True,
                   capture_output=True)
    from testsupport.swift_run import shortest_rows
    rows = shortest_rows(data, tmp_path / 'train.jsonl', 4)
    out = tmp_path / 'run'
    cmd = _cmd(swift_bin(), REPO, smollm2_dir, rows, out)
    env = {**os.environ, 'HF_HUB_OFFLINE': '1', 'PYTHONUNBUFFERED': '1'}
    t0 = time.time()
    step2_logged = False
    with open(tmp_path / 'first.log', 'w') as log:
        # its own process group: `swift` is a launcher that runs the trainer as a child process, and killing
        # the launcher alone would leave the trainer running (and writing into the same folder)
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + 1800          # generous: the box may be shared; ~1 min when idle
        try:
            while proc.poll() is None and time.time() < deadline:
                if out.exists() and any(global_step(r) == 2 for r in train_steps(read_log(out))):
                    step2_logged = True
                    break
                time.sleep(0.05)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)   # mid-save when step 2 was just logged, else mid-step 2
            proc.wait()
    assert proc.returncode == -signal.SIGKILL, (tmp_path / 'first.log').read_text()[-3000:]
    for _ in range(100):                              # the whole group is gone, the trainer included
        if not _alive_in_group(proc.pid):
            break
        time.sleep(0.1)
    else:
        raise AssertionError(f'the trainer survived the kill: {_alive_in_group(proc.pid)}')
    t_kill = time.time() - t0
    names = [p.name for p in _ckpt_dirs(out)]
    assert 'checkpoint-1' in names and problems(out / 'checkpoint-1') is None, names
    caught_mid_save = 'checkpoint-2' in names and problems(out / 'checkpoint-2') is not None
    if 'checkpoint-2' in names and not caught_mid_save:       # the save beat the poll: cut it as a kill would
        (out / 'checkpoint-2' / 'adapter_config.json').write_text('')
        (out / 'checkpoint-2' / 'trainer_state.json').unlink()
    print(f'killed after {t_kill:.0f} s ({"step 2 logged" if step2_logged else "during step 2"}); '
          f'checkpoints {names}; caught mid-save: {caught_mid_save}')

    resume = subprocess.run([sys.executable, '-m', 'eval.checkpoints', '--move-aside', str(out)], cwd=REPO,
                            capture_output=True, text=True, check=True)
    assert resume.stdout.strip() == str(out / 'checkpoint-1')
    if 'checkpoint-2' in names:
        assert 'checkpoint-2 is incomplete' in resume.stderr and list((out / 'incomplete').iterdir())
    p = subprocess.run(cmd + ['--resume_from_checkpoint', resume.stdout.strip()], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=1800)
    assert p.returncode == 0, (p.stdout + p.stderr)[-3000:]
    raw = [global_step(r) for r in train_steps(read_log(out))]
    assert raw == ([1, 2, 2] if step2_logged else [1, 2]), raw   # step 2 appended again after a mid-save kill
    assert [r['step'] for r in plots.read_log(out / 'logging.jsonl')] == [1, 2]
    steps = check_awpo_active.read_steps(out)
    assert [global_step(s) for s in steps] == [1, 2]
    comp = [c['step'] for c in plots.read_completions(out / 'completions.jsonl')]
    assert sorted(set(comp)) == ['1', '2'] and len(comp) == 2 * 2
    assert problems(out / 'checkpoint-2') is None
    print(f'total {time.time() - t0:.0f} s')


def _cmd(swift, repo, model, rows, out):
    """Small and quick on 2 cores: 2 completions of 8 tokens per step, LoRA, a checkpoint every step."""
    from cpu_model import smollm2
    return [swift, 'rlhf', '--rlhf_type', 'grpo', '--external_plugins', str(repo / 'plugin/awpo.py'),
            '--reward_funcs', 'awpo_format', 'awpo_exec', '--model', str(model), '--dataset', str(rows),
            '--output_dir', str(out), '--add_version', 'false', '--max_steps', '2', *smollm2.TRAIN_FLAGS,
            '--agent_template', smollm2.AGENT_TEMPLATE, '--tuner_type', 'lora', '--dataloader_num_workers', '0',
            '--dataloader_persistent_workers', 'false',
            '--report_to', 'none', '--num_generations', '2', '--per_device_train_batch_size', '2',
            '--gradient_accumulation_steps', '1', '--max_completion_length', '8', '--max_length', '1536',
            '--temperature', '1.0', '--logging_steps', '1', '--save_steps', '1', '--save_total_limit', '3',
            '--learning_rate', '1e-5', '--seed', '42', '--dataset_num_proc', '1', '--log_completions', 'true',
            '--split_dataset_ratio', '0']
