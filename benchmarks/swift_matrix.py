"""The ms-swift version matrix: does the plugin work on each ms-swift release a user is likely to have?

    python -m benchmarks.swift_matrix                        # every release in RELEASES (about 5 min each, CPU)
    python -m benchmarks.swift_matrix --releases 4.4.2       # one release
    python -m benchmarks.swift_matrix --oldest-supported     # the oldest supported release (what CI runs)

For each release, in a throwaway venv under ``--workdir`` (default /tmp/awpo-swift-matrix, never the repo):

1. **install**: ``pip install ms-swift==X`` first, as a user with an existing environment has it; then this
   project. A release inside the supported range (plugin/swift_version.py, = setup.cfg) gets the user's plain
   ``pip install -e <repo>``, and must keep X (pip may not replace it). One outside the range cannot satisfy
   setup.cfg, so the project goes in with ``--no-deps`` and its other requirements with ms-swift pinned to X.
   torch is the CPU build 2.13.0, installed once into ``<workdir>/torch`` and shared by every venv through a
   ``.pth`` file (measured: 42 s and 0.9 GB per venv saved); every pip call pins ``torch==2.13.0``.
2. **api**: the plugin's start-up checks (``check_swift_version``, ``plugin.trainer.check_swift_api``).
3. **register**: ``plugin/awpo.py`` imported the way ms-swift imports ``--external_plugins`` files; the rewards
   and the trainer must be in ms-swift's tables.
4. **train**: a real 2-step ``swift rlhf --rlhf_type grpo`` AWPO run on the CPU model (SmolLM2-135M) with the
   judge column served by the HTTP judge stub (the suite's e2e: tests/test_e2e_swift.py): both steps logged
   with ``awpo/*`` metrics, the stub's score in ``rewards/AWPOJudge/mean``, the loss applying AWPO's radius.
   Outside the range, ``swift rlhf`` must stop at start with the plugin's refusal (rc != 0, no model loaded).

One line per release (works / refused: message / fails at <stage>: message, time, the transformers / trl /
peft pip pulled), a Markdown table at the end (``<workdir>/matrix.md``), every record appended to
``<workdir>/matrix.jsonl``, the pip and run logs in ``<workdir>/logs/<release>/``. The exit status is 1 if any
release's result differs from what the range claims (inside: works; outside: refused).
The CPU model folder must exist (``python -m cpu_model.smollm2``, made by shells/setup_cpu.sh).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Dict, List, Optional

REPO = Path(__file__).resolve().parents[1]
# The newest patch of each minor release a user is likely to have (`pip index versions ms-swift`, 2026-12-04).
RELEASES = ('4.6.0', '4.5.3', '4.4.2', '4.3.2', '4.2.3', '4.1.3', '4.0.4', '3.12.6')
TORCH = 'torch==2.13.0'  # the CPU build shells/setup_cpu.sh installs
STEPS = 2
TRAIN_TIMEOUT = 3 * 3600  # a 2-step run takes ~2 min idle; a box shared with other jobs can take 30 min and more
RESULT_TAG = 'AWPO_MATRIX_RESULT '
STAGES = ('install', 'api', 'register', 'train')


# ---------------------------------------------------------------------- helpers (no third-party imports)
def project_requirements(repo: Path = REPO) -> List[str]:
    """setup.cfg's install_requires, one requirement a line (comments dropped)."""
    import configparser
    cfg = configparser.ConfigParser()
    cfg.read(repo / 'setup.cfg')
    lines = [ln.split('#')[0].strip() for ln in cfg['options']['install_requires'].splitlines()]
    return [ln for ln in lines if ln]


def swift_requirement(repo: Path = REPO) -> str:
    """The ms-swift line of setup.cfg's install_requires."""
    (req,) = [r for r in project_requirements(repo) if r.replace('_', '-').lower().startswith('ms-swift')]
    return req


def expected(release: str, repo: Path = REPO) -> str:
    """What the supported range of the project at ``repo`` (its setup.cfg, which for this checkout is
    plugin/swift_version.py's range, tests/test_swift_versions.py) promises for ``release``: 'works' or
    'refused'. Read from ``repo``, so ``--repo`` can try a candidate range before it is the project's."""
    from packaging.requirements import Requirement

    from plugin.swift_version import is_supported
    return 'works' if is_supported(release, str(Requirement(swift_requirement(repo)).specifier)) else 'refused'


def oldest_supported(releases=RELEASES, repo: Path = REPO) -> str:
    from packaging.version import Version
    return min((r for r in releases if expected(r, repo) == 'works'), key=Version)


def _last_error(text: str, limit: int = 300) -> str:
    """The most telling line of a failed command's output: the last exception line, else the last line."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for ln in reversed(lines):
        head = ln.split(':', 1)[0]
        if head.endswith(('Error', 'Exception', 'Exit')) or ln.startswith('ERROR'):
            return ln[:limit]
    return (lines[-1] if lines else '(no output)')[:limit]


def _refusal(text: str) -> Optional[str]:
    """The plugin's refusal line (SwiftVersionError) in ``text``, if any."""
    for ln in text.splitlines():
        i = ln.find('AWPO cannot run on the installed ms-swift')
        if i >= 0 and 'supports ms-swift' in ln:
            return ln[i:].strip()
    return None


# ---------------------------------------------------------------------- probes (run inside a release's venv)
def _probe_api() -> Dict:
    from plugin.swift_version import SwiftVersionError, check_swift_version
    try:
        version = check_swift_version()
        from plugin.trainer import check_swift_api  # imports ms-swift's GRPOTrainer; refuses outside the range
        check_swift_api()
    except SwiftVersionError as e:
        return {'status': 'refused', 'message': str(e)}
    except Exception as e:  # noqa: BLE001 - the matrix reports whatever stops it
        traceback.print_exc()  # into the probe's log
        return {'status': 'fails', 'message': f'{type(e).__name__}: {e}'.splitlines()[0][:300]}
    return {'status': 'ok', 'message': f'ms-swift {version}: GRPOTrainer internals as plugin/trainer.py expects'}


def _probe_register() -> Dict:
    import importlib.util

    from plugin.swift_version import SwiftVersionError
    try:
        spec = importlib.util.spec_from_file_location('_awpo_matrix_entry', REPO / 'plugin' / 'awpo.py')
        spec.loader.exec_module(importlib.util.module_from_spec(spec))  # what ms-swift does with the file
        from swift.rewards import orms
        from swift.trainers.trainer_factory import TrainerFactory

        from plugin.registry import REWARDS, TRAINER
        missing = [k for k in REWARDS if k not in orms]
        trainer = TrainerFactory.TRAINER_MAPPING.get('grpo')
        if missing or trainer != TRAINER:
            return {'status': 'fails', 'message': f'rewards missing {missing}, grpo trainer {trainer!r}'}
    except SwiftVersionError as e:
        return {'status': 'refused', 'message': str(e)}
    except Exception as e:  # noqa: BLE001
        traceback.print_exc()
        return {'status': 'fails', 'message': f'{type(e).__name__}: {e}'.splitlines()[0][:300]}
    return {'status': 'ok', 'message': f'rewards {sorted(REWARDS)} and trainer {TRAINER} registered'}


def _kill_processes_of(out: Path) -> None:
    """Kill the processes whose command line names ``out`` (by pid): on a timeout, run_grpo kills the ``swift``
    launcher only, and the ``swift/cli/rlhf.py`` child it started would train on as an orphan."""
    import signal
    for d in Path('/proc').glob('[0-9]*'):
        try:
            if int(d.name) != os.getpid() and str(out) in (d / 'cmdline').read_bytes().replace(b'\0', b' ').decode():
                os.kill(int(d.name), signal.SIGKILL)
        except (OSError, ValueError):
            continue


def _probe_train(workdir: Path, steps: int, model_wait: float = 0) -> Dict:
    import socket

    from cpu_model import smollm2
    from testsupport.swift_run import read_log, run_grpo, shortest_rows, train_steps

    model = smollm2.default_dir()
    deadline = time.time() + model_wait  # e.g. while shells/setup_cpu.sh is still making it
    while not smollm2.is_ready(model) and time.time() < deadline:
        time.sleep(10)
    if not smollm2.is_ready(model):
        return {'status': 'fails', 'message': f'CPU model folder {model} missing: run python -m cpu_model.smollm2'}
    workdir.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, '-m', 'data_prep', 'demo', '--out', str(workdir / 'demo.jsonl')], cwd=REPO,
                   check=True, capture_output=True)
    rows = shortest_rows(workdir / 'demo.jsonl', workdir / 'train.jsonl', 8)
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    stub = subprocess.Popen([sys.executable, '-m', 'testsupport.judge_stub', '--port', str(port), '--mode', 'ok',
                             '--score', '0.9', '--model', 'stub-judge'], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        line = stub.stdout.readline()
        if 'listening' not in line:
            return {'status': 'fails', 'message': f'judge stub did not start: {line.strip()}'}
        env = {'AWPO_JUDGE_BASE_URL': f'http://127.0.0.1:{port}/v1', 'AWPO_JUDGE_MODEL': 'stub-judge',
               'AWPO_JUDGE_API_KEY': 'sk-matrix', 'AWPO_JUDGE_TIMEOUT': '30'}
        out = workdir / 'run'
        shutil.rmtree(out, ignore_errors=True)
        t0 = time.time()
        try:
            # the suite's CPU flags (testsupport/swift_run.py), --dataloader_persistent_workers false included:
            # ms-swift 4.5.x defaults it on and, unlike 4.4 and 4.6, keeps it with 0 workers (torch then raises).
            rc, log = run_grpo(model, rows, out, ['awpo_outcome', 'awpo_judge'], steps=steps, env=env,
                               timeout=TRAIN_TIMEOUT)
        finally:
            _kill_processes_of(out)
        seconds = round(time.time() - t0, 1)
    finally:
        stub.kill()
        stub.wait()
    refusal = _refusal(log)
    if rc != 0:
        if refusal and 'Loading checkpoint' not in log:
            return {'status': 'refused', 'message': refusal, 'seconds': seconds}
        return {'status': 'fails', 'message': f'swift rlhf rc={rc}: {_last_error(log)}', 'seconds': seconds}
    recs = [r for r in train_steps(read_log(out)) if 'awpo/clip_eps' in r]
    problems = []
    if len(recs) != steps:
        problems.append(f'{len(recs)} AWPO steps logged, expected {steps}')
    for i, r in enumerate(recs, 1):
        if abs(r.get('awpo/clip_eps_applied', -1) - r['awpo/clip_eps']) > 1e-4:
            problems.append(f'step {i}: the loss applied radius {r.get("awpo/clip_eps_applied")}, AWPO computed '
                            f'{r["awpo/clip_eps"]}')
        if abs(r.get('rewards/AWPOJudge/mean', -1) - 0.9) > 1e-6 or r.get('awpo/judge_missing_frac') != 0.0:
            problems.append(f'step {i}: judge column {r.get("rewards/AWPOJudge/mean")}, expected the stub\'s 0.9')
    if 'Traceback' in log:
        problems.append(f'a traceback in the log: {_last_error(log)}')
    if problems:
        return {'status': 'fails', 'message': '; '.join(problems), 'seconds': seconds}
    step_time = [r.get('step_time') for r in recs]
    return {'status': 'ok', 'seconds': seconds, 'step_time': step_time,
            'message': f'{steps} steps, judge 0.9 over HTTP, clip_eps {[round(r["awpo/clip_eps"], 4) for r in recs]}'}


def probe(stage: str, workdir: Path, steps: int, model_wait: float = 0) -> None:
    res = {'api': _probe_api, 'register': _probe_register}[stage]() if stage != 'train' else \
        _probe_train(workdir, steps, model_wait)
    print(RESULT_TAG + json.dumps(res), flush=True)


# ---------------------------------------------------------------------- the driver
class Release:
    """One release's throwaway venv and the commands run in it (logs under ``<workdir>/logs/<release>``)."""

    def __init__(self, release: str, workdir: Path, repo: Path, torch_dir: Path, model_wait: float = 0):
        self.release, self.repo, self.torch_dir, self.model_wait = release, repo, torch_dir, model_wait
        self.venv = workdir / 'venvs' / f'ms-swift-{release}'
        self.logs = workdir / 'logs' / release
        self.run_dir = workdir / 'runs' / release
        self.py = self.venv / 'bin' / 'python'

    def sh(self, name: str, cmd: List[str], env: Optional[Dict] = None, timeout: float = TRAIN_TIMEOUT + 600):
        self.logs.mkdir(parents=True, exist_ok=True)
        with open(self.logs / f'{name}.log', 'w') as log:
            log.write('$ ' + ' '.join(map(str, cmd)) + '\n')
            log.flush()
            try:
                rc = subprocess.run([str(c) for c in cmd], cwd=self.repo, stdout=log, stderr=subprocess.STDOUT,
                                    env={**os.environ, 'PIP_DISABLE_PIP_VERSION_CHECK': '1', **(env or {})},
                                    timeout=timeout).returncode
            except subprocess.TimeoutExpired:
                log.write(f'\nTimeoutError: {name} did not finish in {timeout:.0f} s\n')
                rc = 124
        return rc, (self.logs / f'{name}.log').read_text(errors='replace')

    def pip(self, name: str, *args: str, constraints: List[str] = ()):
        cons = self.logs / f'{name}.constraints.txt'
        self.logs.mkdir(parents=True, exist_ok=True)
        cons.write_text('\n'.join([TORCH, *constraints]) + '\n')
        # --no-compile: Python compiles what it imports anyway; pip's byte-compiling of every file of transformers,
        # gradio, ms-swift... is most of an install's CPU time.
        return self.sh(name, [self.py, '-m', 'pip', 'install', '--no-compile', '-c', cons, *args])

    def install(self) -> Dict:
        shutil.rmtree(self.venv, ignore_errors=True)
        rc, out = self.sh('venv', [_base_python(), '-m', 'venv', self.venv])
        if rc:
            return {'status': 'fails', 'message': f'venv: {_last_error(out)}'}
        site = next((self.venv / 'lib').glob('python3*/site-packages'))
        (site / 'awpo_shared_torch.pth').write_text(str(self.torch_dir) + '\n')
        rc, out = self.pip('pip_ms_swift', f'ms-swift=={self.release}')
        if rc:
            return {'status': 'fails', 'message': f'pip install ms-swift=={self.release}: {_last_error(out)}'}
        if expected(self.release, self.repo) == 'works':  # the user's command; setup.cfg must accept the installed release
            rc, out = self.pip('pip_project', '-e', str(self.repo))
        else:  # setup.cfg cannot be satisfied: the project without deps, then its other requirements
            rc, out = self.pip('pip_project', '--no-deps', '-e', str(self.repo))
            others = [r for r in project_requirements(self.repo) if not r.lower().startswith(('ms-swift', 'ms_swift'))]
            if not rc:
                rc, out = self.pip('pip_project_deps', *others, constraints=[f'ms-swift=={self.release}'])
        if rc:
            return {'status': 'fails', 'message': f'pip install -e (project): {_last_error(out)}'}
        return {'status': 'ok', 'message': 'installed'}

    def versions(self) -> Dict[str, Optional[str]]:
        code = ('import json; from importlib.metadata import version\n'
                'def v(n):\n    try: return version(n)\n    except Exception: return None\n'
                "print(json.dumps({n: v(n) for n in ('ms-swift', 'transformers', 'trl', 'peft', 'torch', 'accelerate')}))")
        rc, out = self.sh('versions', [self.py, '-c', code])
        return json.loads(out.strip().splitlines()[-1]) if rc == 0 else {}

    def probe(self, stage: str, steps: int) -> Dict:
        rc, out = self.sh(f'probe_{stage}', [self.py, '-m', 'benchmarks.swift_matrix', '--probe', stage,
                                             '--workdir', self.run_dir, '--steps', str(steps),
                                             '--model-wait', str(self.model_wait)],
                          env={'HF_HUB_OFFLINE': '1', 'TRANSFORMERS_OFFLINE': '1', 'HF_DATASETS_OFFLINE': '1'})
        for ln in reversed(out.splitlines()):
            if ln.startswith(RESULT_TAG):
                return json.loads(ln[len(RESULT_TAG):])
        return {'status': 'fails', 'message': f'probe {stage} rc={rc}: {_last_error(out)}'}


def _base_python() -> str:
    """The interpreter venvs are made from (this one's base when run inside a venv)."""
    for name in ('python3', 'python'):
        exe = Path(sys.base_prefix) / 'bin' / name
        if exe.exists():
            return str(exe)
    return 'python3'


def ensure_torch(workdir: Path, log_dir: Path) -> Path:
    """``<workdir>/torch``: torch 2.13.0 (CPU) and its dependencies, installed once with ``pip --target``."""
    target = workdir / 'torch'
    if list(target.glob('torch-2.13.0*.dist-info')):
        return target
    log_dir.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(target, ignore_errors=True)
    with open(log_dir / 'torch.log', 'w') as log:
        subprocess.run([sys.executable, '-m', 'pip', 'install', '-q', '--target', str(target), TORCH], check=True,
                       stdout=log, stderr=subprocess.STDOUT)
    return target


def run_release(release: str, workdir: Path, repo: Path, torch_dir: Path, steps: int, keep: bool,
                on_stage=lambda s: None, model_wait: float = 0) -> Dict:
    rel = Release(release, workdir, repo, torch_dir, model_wait)
    t0 = time.time()
    rec: Dict = {'release': release, 'expected': expected(release, repo), 'stages': {}, 'time': {}}
    try:
        for stage in STAGES:
            on_stage(stage)
            ts = time.time()
            res = rel.install() if stage == 'install' else rel.probe(stage, steps)
            rec['time'][stage] = round(time.time() - ts, 1)
            rec['stages'][stage] = res
            if stage == 'install' and res['status'] == 'ok':
                rec['versions'] = rel.versions()
                got = rec['versions'].get('ms-swift')
                if got != release:
                    res.update(status='fails', message=f'pip replaced ms-swift {release} by {got}')
            if res['status'] == 'fails' or (res['status'] == 'refused' and stage == 'train'):
                break
    finally:
        if not keep:
            shutil.rmtree(rel.venv, ignore_errors=True)
    rec['seconds'] = round(time.time() - t0, 1)
    rec['result'], rec['detail'] = summarize(rec['stages'])
    rec['as_expected'] = rec['result'] == rec['expected']
    rec['logs'] = str(rel.logs)
    return rec


def summarize(stages: Dict[str, Dict]) -> tuple:
    """('works' | 'refused' | 'fails', detail) from the stages' results."""
    for stage in STAGES:
        res = stages.get(stage)
        if res is None:
            continue
        if res['status'] == 'fails':
            return 'fails', f'at {stage}: {res["message"]}'
    if all(stages.get(s, {}).get('status') == 'ok' for s in STAGES):
        return 'works', stages['train']['message']
    refused = [s for s in STAGES if stages.get(s, {}).get('status') == 'refused']
    if refused and stages.get('train', {}).get('status') == 'refused':
        return 'refused', f'at {", ".join(refused)}: {stages[refused[0]]["message"]}'
    return 'fails', f'incomplete: {json.dumps({s: r["status"] for s, r in stages.items()})}'


def line(rec: Dict) -> str:
    v = rec.get('versions') or {}
    mark = '' if rec['as_expected'] else f'  <-- expected {rec["expected"]}'
    return (f'ms-swift {rec["release"]:<7} {rec["result"]:<8} {rec["seconds"]:>6.0f} s  '
            f'(transformers {v.get("transformers")}, trl {v.get("trl")}, peft {v.get("peft")})  '
            f'{rec["detail"]}{mark}')


def table(records: List[Dict]) -> str:
    rows = ['| ms-swift | result | time (s): install / checks / 2-step run | transformers | trl | peft | detail |',
            '|---|---|---|---|---|---|---|']
    for r in records:
        v, t = r.get('versions') or {}, r['time']
        checks = round(t.get('api', 0) + t.get('register', 0), 1)
        detail = r['detail'].replace('|', '/')
        rows.append(f'| {r["release"]} | {r["result"]} | {r["seconds"]:.0f}: {t.get("install", 0):.0f} / '
                    f'{checks:.0f} / {t.get("train", 0):.0f} | {v.get("transformers")} | {v.get("trl")} | '
                    f'{v.get("peft")} | {detail} |')
    return '\n'.join(rows) + '\n'


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--releases', nargs='+', default=None, help=f'ms-swift releases (default: {" ".join(RELEASES)})')
    ap.add_argument('--oldest-supported', action='store_true',
                    help='only the oldest release of RELEASES inside the supported range (CI)')
    ap.add_argument('--workdir', type=Path, default=Path('/tmp/awpo-swift-matrix'))
    ap.add_argument('--repo', type=Path, default=REPO, help='the project to install (default: this checkout)')
    ap.add_argument('--steps', type=int, default=STEPS)
    ap.add_argument('--keep', action='store_true', help='keep the venvs (default: deleted after each release)')
    ap.add_argument('--model-wait', type=float, default=0,
                    help='seconds to wait for the CPU model folder to appear (while set-up still makes it)')
    ap.add_argument('--probe', choices=('api', 'register', 'train'), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.probe:
        probe(args.probe, args.workdir, args.steps, args.model_wait)
        return 0
    if args.workdir.resolve().is_relative_to(REPO) or args.workdir.resolve().is_relative_to(args.repo.resolve()):
        ap.error(f'--workdir {args.workdir} is inside the repository; use a folder under /tmp')
    releases = [oldest_supported(repo=args.repo)] if args.oldest_supported else (args.releases or list(RELEASES))

    from tqdm import tqdm
    args.workdir.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    torch_dir = ensure_torch(args.workdir, args.workdir / 'logs')
    print(f'[matrix] shared torch: {torch_dir} ({time.time() - t0:.0f} s); project {args.repo}; '
          f'setup.cfg requires {swift_requirement(args.repo)}', flush=True)
    records = []
    bar = tqdm(releases, desc='ms-swift releases', unit='release')
    for release in bar:
        rec = run_release(release, args.workdir, args.repo, torch_dir, args.steps, args.keep,
                          on_stage=lambda s, r=release: bar.set_postfix_str(f'{r}: {s}'), model_wait=args.model_wait)
        rec['at'] = time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())
        records.append(rec)
        with open(args.workdir / 'matrix.jsonl', 'a') as f:
            f.write(json.dumps(rec) + '\n')
        tqdm.write(line(rec))
    md = table(records)
    (args.workdir / 'matrix.md').write_text(md)
    bad = [r['release'] for r in records if not r['as_expected']]
    print('\n' + md)
    print(f'[matrix] {len(records)} releases in {time.time() - t0:.0f} s: '
          f'{sum(r["result"] == "works" for r in records)} work, {sum(r["result"] == "refused" for r in records)} '
          f'refused, {sum(r["result"] == "fails" for r in records)} fail; '
          + (f'NOT as the range claims: {", ".join(bad)}' if bad else 'every result as the supported range claims')
          + f'. Table: {args.workdir / "matrix.md"}, records: {args.workdir / "matrix.jsonl"}, logs: '
          f'{args.workdir / "logs"}')
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main())
