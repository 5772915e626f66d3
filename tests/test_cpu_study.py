"""The CPU study (benchmarks/cpu_study.py, cpu_study_report.py, shells/cpu_study.sh): table and curves from
hand-made ms-swift logs, the resume logic, and the dry run's commands read back by ms-swift's own parser.
No training here (the study itself takes about an hour); ~1 min for the parse."""
import json
from pathlib import Path

import pytest

from benchmarks import cpu_study as S
from benchmarks import cpu_study_report as R
from eval import plots as P
from testsupport import REPO
from testsupport.shell_run import commands, sh, swift_parse

STEPS = 7


def _log_line(step, **kv):
    return json.dumps({'loss': 0.01, **kv, 'step_time': 40.0 + step, 'global_step/max_steps': f'{step}/{STEPS}',
                       'elapsed_time': f'{40 * step}s'})


def _write_runs(root: Path):
    """Two runs as ms-swift 4.6 writes them: grpo logs R_out as the format and exec columns, awpo as one."""
    grpo = root / 'train' / 'smollm2' / 'grpo'
    awpo = root / 'train' / 'smollm2' / 'awpo'
    for d in (grpo, awpo):
        d.mkdir(parents=True)
    fmt = [0.5, 0.75, 0.75, 1.0, 1.0, 1.0, 1.0]
    exe = [0.0, 0.25, 0.5, 0.25, 0.5, 0.5, 0.75]
    lines = [_log_line(i + 1, reward=f + e, reward_std=0.3, frac_reward_zero_std=0.5,
                       **{'rewards/AWPOFormat/mean': f, 'rewards/AWPOExec/mean': e}) for i, (f, e) in
             enumerate(zip(fmt, exe))]
    # an eval line and the final summary line are not steps
    lines += [json.dumps({'eval_loss': 1.0, 'global_step/max_steps': '7/7'}), json.dumps({'train_runtime': 300.0})]
    (grpo / 'logging.jsonl').write_text('\n'.join(lines) + '\n')
    out = [0.5, 1.0, 1.0, 1.5, 1.0, 1.5, 2.0]
    judge = [0.25, 0.5, 0.5, 0.75, 0.5, 0.75, 1.0]
    gate = [0.0, 0.5, 0.0, 1.0, 0.5, 0.0, 0.0]
    lines = [_log_line(i + 1, reward=o + j, reward_std=0.4, frac_reward_zero_std=0.0,
                       **{'rewards/AWPOOutcome/mean': o, 'rewards/AWPOJudge/mean': j, 'awpo/gate_open_frac': g,
                          'awpo/w_mix_mean': g / 4, 'awpo/d_mean': 1.25, 'awpo/clip_eps': 0.2 - g / 10})
             for i, (o, j, g) in enumerate(zip(out, judge, gate))]
    (awpo / 'logging.jsonl').write_text('\n'.join(lines) + '\n')
    return grpo, awpo


def test_log_summary_first_and_last_five_steps_by_hand(tmp_path):
    grpo, awpo = _write_runs(tmp_path)
    g = R.log_summary(P.read_log(grpo / 'logging.jsonl'))
    # R_out = format + exec: 0.5, 1.0, 1.25, 1.25, 1.5, 1.5, 1.75
    assert g['steps_logged'] == 7
    assert g['outcome_first'] == pytest.approx((0.5 + 1.0 + 1.25 + 1.25 + 1.5) / 5)   # 1.1
    assert g['outcome_last'] == pytest.approx((1.25 + 1.25 + 1.5 + 1.5 + 1.75) / 5)   # 1.45
    assert g['judge_first'] is None and g['gate_open_mean'] is None and g['clip_eps_min'] is None
    assert g['step_time_mean_s'] == pytest.approx(44.0)
    a = R.log_summary(P.read_log(awpo / 'logging.jsonl'))
    assert a['outcome_first'] == pytest.approx(1.0) and a['outcome_last'] == pytest.approx(1.4)
    assert a['judge_last'] == pytest.approx(0.7)
    assert a['gate_open_mean'] == pytest.approx(2.0 / 7) and a['steps_gate_open'] == 3
    assert a['w_mix_mean'] == pytest.approx(0.5 / 7) and a['clip_eps_min'] == pytest.approx(0.1)
    # a step that logged only one of grpo's two outcome columns has no R_out (not half of it)
    assert R.outcome_of({'rewards/AWPOFormat/mean': 1.0}) is None
    assert R.outcome_of({'rewards/AWPOFormat/mean': 1.0, 'rewards/AWPOExec/mean': float('nan')}) is None


def test_table_and_figure_from_markers_and_logs(tmp_path):
    _write_runs(tmp_path)
    done = tmp_path / 'done'
    done.mkdir()
    bfcl = lambda sp, mu: {'scores': {'categories': {'simple_python': {'accuracy': sp, 'total_count': 20},  # noqa: E731
                                                     'multiple': {'accuracy': mu, 'total_count': 20}}}}
    (done / 'warmstart.json').write_text(json.dumps({
        'model': '/w', 'heldout': {'format': 0.85, 'exec': 0.3}, 'bfcl': bfcl(10.0, 5.0),
        'eval_wall_s': 120}))
    (done / 'grpo.json').write_text(json.dumps({
        'steps': 7, 'train_wall_s': 600, 'heldout': {'format': 0.9, 'exec': 0.35}, 'bfcl': bfcl(15.0, 5.0),
        'eval_wall_s': 100}))
    (done / 'awpo.json').write_text(json.dumps({
        'steps': 7, 'train_wall_s': 660, 'heldout': {'format': 0.95, 'exec': 0.4}, 'bfcl': None,
        'eval_wall_s': 90}))
    args = S.parse_args(['--study-dir', str(tmp_path), '--steps', '10', '--report-only'])
    table = S.Study(args).report()
    rows = {r['method']: r for r in table['rows']}
    assert list(rows) == ['warmstart', 'grpo', 'awpo']   # mixed_grpo has no marker: not in the table
    assert rows['warmstart']['heldout_format'] == 0.85 and rows['warmstart']['bfcl_simple_python'] == 10.0
    assert rows['grpo']['outcome_delta'] == pytest.approx(0.35)
    assert rows['awpo']['outcome_delta'] == pytest.approx(0.4) and rows['awpo']['bfcl_multiple'] is None
    md = (tmp_path / 'cpu_study.md').read_text()
    assert '| GRPO (outcome) | 1.100 | 1.450 | +0.350 | – | – | 0.900 | 0.350 | 15 | 5 | 10.0 | 44 | 1.7 |' in md
    assert '| AWPO | 1.000 | 1.400 | +0.400 | 0.700 | 0.29 | 0.950 | 0.400 | – | – | 11.0 | 44 | 1.5 |' in md
    assert json.loads((tmp_path / 'cpu_study.json').read_text()) == json.loads(json.dumps(table))
    png = (tmp_path / 'cpu_study.png').read_bytes()
    assert png[:8] == b'\x89PNG\r\n\x1a\n' and len(png) > 20_000
    # --report-only uses the settings the study was run with (saved beside it), e.g. its window
    (tmp_path / 'settings.json').write_text(json.dumps({**table['settings'], 'steps': 6, 'window': 3}))
    again = S.Study(S.parse_args(['--study-dir', str(tmp_path), '--report-only'])).report()
    g = {r['method']: r for r in again['rows']}['grpo']
    assert g['outcome_first'] == pytest.approx(2.75 / 3) and g['outcome_last'] == pytest.approx(4.75 / 3)
    assert 'R_out first 3' in (tmp_path / 'cpu_study.md').read_text()
    # the figure's trailing mean
    assert R.rolling([1, 2, 3, 4, 5, 6], 5) == [1, 1.5, 2, 2.5, 3, 4]


def test_resume_keeps_finished_runs_and_redoes_a_half_run(tmp_path):
    grpo, awpo = _write_runs(tmp_path)
    (tmp_path / 'done').mkdir()
    (tmp_path / 'done' / 'grpo.json').write_text(json.dumps({'steps': 7}))
    (tmp_path / 'done' / 'warmstart.json').write_text('{"model": "/w"')      # torn marker: not finished
    (tmp_path / 'models' / 'awpo').mkdir(parents=True)                       # awpo was killed after merging
    (tmp_path / 'heldout').mkdir()
    (tmp_path / 'heldout' / 'awpo.json').write_text('{}')
    study = S.Study(S.parse_args(['--study-dir', str(tmp_path)]))
    assert study.pending() == ['warmstart', 'mixed_grpo', 'gdpo', 'awpo']
    study.clean('awpo')
    assert not awpo.exists() and not (tmp_path / 'models' / 'awpo').exists()
    assert not (tmp_path / 'heldout' / 'awpo.json').exists()
    assert (grpo / 'logging.jsonl').is_file()                               # the finished run is untouched
    # a run killed after its training had finished keeps the training (train.sh's DONE + our wall time, same
    # steps and flags) and redoes the merge and the evaluations; a different step count retrains
    (grpo / 'DONE').write_text('x')
    (grpo / 'train_wall.json').write_text(json.dumps({'wall_s': 600.0, 'steps': 20, 'flags': study.train_flags()}))
    (tmp_path / 'models' / 'grpo').mkdir()
    assert study.trained('grpo') == 600.0
    study.clean('grpo')
    assert (grpo / 'logging.jsonl').is_file() and not (tmp_path / 'models' / 'grpo').exists()
    assert not (tmp_path / 'done' / 'grpo.json').exists()
    other = S.Study(S.parse_args(['--study-dir', str(tmp_path), '--steps', '12']))
    assert other.trained('grpo') is None
    other.clean('grpo')
    assert not grpo.exists()
    (tmp_path / 'done' / 'grpo.json').write_text(json.dumps({'steps': 7}))
    forced = S.Study(S.parse_args(['--study-dir', str(tmp_path), '--force']))
    assert forced.pending() == ['warmstart', 'grpo', 'mixed_grpo', 'gdpo', 'awpo']


def _dry(tmp_path, smollm2_dir, *extra, **env):
    p = sh(tmp_path, 'cpu_study.sh', '--dry-run', '--warm-start', str(smollm2_dir), '--study-dir',
           str(tmp_path / 'study'), *extra, **env)
    return commands(p.stdout)


def test_dry_run_prints_the_same_run_for_every_method(tmp_path, smollm2_dir):
    cmds = _dry(tmp_path, smollm2_dir, '--ablations', '--steps', '12')
    study = tmp_path / 'study'
    rl = [(env, argv) for env, argv in cmds if argv[:2] == ['swift', 'rlhf']]
    assert len(rl) == 9
    jobs = [{'sub': 'rlhf', 'argv': argv[2:], 'env': env, 'world': 1, 'full': True} for env, argv in rl]
    jobs += [{'sub': 'export', 'argv': argv[2:], 'env': env, 'world': 1, 'full': False}
             for env, argv in cmds if argv[:2] == ['swift', 'export']]
    res = swift_parse(jobs, cwd=REPO)
    assert all(r['ok'] for r in res), [r.get('error') or r.get('rest') for r in res if not r['ok']]
    args = [r['args'] for r in res[:9]]
    outs = [Path(a['output_dir']).name for a in args]
    assert outs == ['grpo', 'mixed_grpo', 'gdpo', 'awpo', 'awpo_no_gating', 'awpo_no_difficulty', 'awpo_no_clip',
                    'awpo_gate_plus_flat', 'awpo_gate_flat_only']
    # same start, rows, seed, steps, batch and lengths for every run
    for key in ('model', 'dataset', 'seed', 'max_steps', 'num_generations', 'per_device_train_batch_size',
                'gradient_accumulation_steps',
                'max_completion_length', 'learning_rate', 'temperature', 'tuner_type'):
        assert len({json.dumps(a[key]) for a in args}) == 1, key
    a = args[0]
    assert Path(a['model']) == Path(smollm2_dir) and a['dataset'] == [str(study / 'data' / 'rl.jsonl')]
    assert a['max_steps'] == 12 and a['num_generations'] == 4
    assert a['per_device_train_batch_size'] * a['gradient_accumulation_steps'] == 8     # 2 prompts x 4
    assert a['max_completion_length'] == 128
    # what differs: the method
    assert args[0]['reward_funcs'] == ['awpo_format', 'awpo_exec'] and 'AWPO_CONFIG' not in rl[0][0]
    assert args[1]['reward_funcs'] == ['awpo_outcome', 'awpo_judge'] and args[1]['external_plugins'] == [
        'plugin/baselines.py']
    # GDPO: the same rewards and plugin as Mixed-reward GRPO, ms-swift's gdpo scaling (issue 22)
    assert args[2]['reward_funcs'] == args[1]['reward_funcs'] and args[2]['external_plugins'] == ['plugin/baselines.py']
    assert (args[1]['scale_rewards'], args[2]['scale_rewards']) == ('group', 'gdpo')
    assert [x['external_plugins'] for x in args[3:]] == [['plugin/awpo.py']] * 6
    assert [env['AWPO_CONFIG'] for env, _ in rl[3:]] == [
        'shells/configs/awpo.yaml', 'shells/configs/awpo_no_gating.yaml', 'shells/configs/awpo_no_difficulty.yaml',
        'shells/configs/awpo_no_clip.yaml', 'shells/configs/awpo_gate_plus_flat.yaml',
        'shells/configs/awpo_gate_flat_only.yaml']
    # before/after evaluations: the warm start and each merged run, held-out and BFCL smoke
    bfcl = [argv for _, argv in cmds if argv[:3] == ['python', '-m', 'eval.bfcl']]
    held = [argv for _, argv in cmds if argv[:3] == ['python', '-m', 'cpu_model.heldout']]
    models = [str(smollm2_dir)] + [str(study / 'models' / m) for m in outs]
    assert [b[b.index('--model-path') + 1] for b in bfcl] == models
    assert [h[h.index('--model') + 1] for h in held] == models
    for b in bfcl:
        assert b[b.index('--categories') + 1] == 'simple_python,multiple' and b[b.index('--limit') + 1] == '20'
        assert '--server-arg=--max_new_tokens' in b and b[b.index('--server-arg=--max_new_tokens') + 1] == (
            '--server-arg=128') and '--server-arg=chatml' in b


def test_dry_run_skips_finished_runs(tmp_path, smollm2_dir):
    done = tmp_path / 'study' / 'done'
    done.mkdir(parents=True)
    for name in ('warmstart', 'grpo'):
        (done / f'{name}.json').write_text('{}')
    cmds = _dry(tmp_path, smollm2_dir)
    outs = [Path(argv[argv.index('--output_dir') + 1]).name for _, argv in cmds if argv[:2] == ['swift', 'rlhf']]
    assert outs == ['mixed_grpo', 'gdpo', 'awpo']
    assert not [a for _, a in cmds if a[:3] == ['python', '-m', 'eval.bfcl'] and 'warmstart' in a]


def test_bad_options_are_refused(tmp_path):
    with pytest.raises(SystemExit):
        S.parse_args(['--steps', '0'])
    p = sh(tmp_path, 'cpu_study.sh', '--dry-run', '--warm-start', str(tmp_path / 'missing'), check=False)
    assert p.returncode == 0      # a dry run does not look at the model; a real run does:
    study = S.Study(S.parse_args(['--warm-start', str(tmp_path), '--study-dir', str(tmp_path / 's')]))
    with pytest.raises(S.StudyError, match='not a complete model folder'):
        study.warm_start()
