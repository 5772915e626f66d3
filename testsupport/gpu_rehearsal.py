"""A CPU rehearsal of the GPU path: ``shells/gpu_smoke.sh`` and ``shells/reproduce.sh`` run for real (not
``--dry-run``) on a faked GPU node, with stand-ins only for what needs a GPU (tests/test_gpu_rehearsal.py).

Stand-ins, put first on PATH (``Rehearsal.env()``):

* ``nvidia-smi``: the node's GPUs (``--query-gpu=index``), which train.sh reads to give a launch its GPUs.
* ``swift`` (stdlib Python): records every call (argv + environment) in ``launches.jsonl``; then
  - ``rlhf`` / ``sft``: torchrun as ms-swift starts it (``swift/cli/main.py``: only when NPROC_PER_NODE or NNODES
    is set, with the arguments ``get_torchrun_args`` builds, asked of ms-swift in the check server), with
    torchrun's static rendezvous: with NNODES > 1 every node must start the same launch within ``rdzv_timeout``
    seconds, else it fails as torchrun does; then ms-swift's own start-up checks on the real command line
    (the check server, below); on success it writes what a finished run leaves: ``checkpoint-N/config.json``,
    ``last-checkpoint``, ``logging.jsonl`` (``awpo/*`` metrics when plugin/awpo.py is loaded);
  - ``rollout``: parses its arguments (RolloutArguments), then answers ``/health/`` on its port until killed;
  - ``export``: writes the output folder.
* ``python -m eval.bfcl|eval.apibank|eval.mmlu_pro``: an evaluator serves the model with vLLM on a GPU. The
  stand-in checks the checkpoint as the evaluator does (``eval.serve.resolve_checkpoint``), records the vLLM
  command the evaluator would start (``eval.serve.vllm_cmd`` + ``thinking_args``), waits ``eval_seconds`` (only
  for the row named by REHEARSAL_SLOW_EVAL, if set; that one also lasts while another node waits in a
  rendezvous, as a real evaluation outlasts torchrun's 600 s: what breaks a multi-node run) and writes the
  summary with ``eval.results``. Every
  other ``python`` call runs the real interpreter.
* modules ``vllm`` and ``deepspeed`` (only their versions, for the smoke's version line).

The check server (``python -m testsupport.gpu_rehearsal serve``, ms-swift imported once): per ``swift
rlhf|sft`` launch and for the node's first and last local rank, with the environment torchrun gives that rank
(RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE) over the launch's own (CUDA_VISIBLE_DEVICES...), and
``torch.cuda`` faked to the node (device_count over the visible devices, get_device_properties /
mem_get_info of the node's cards, is_available):
  1. ms-swift's parser (HfArgumentParser over RLHFArguments / SftArguments): unknown or abbreviated flags fail;
  2. ms-swift's start-up steps that need no model files or GPU, in RLHFArguments.__post_init__'s order:
     ``_process_loss_type``, ``_init_grpo``, ``_init_max_completion_length``, ``_init_padding_side``,
     ``_set_default``, ``_init_rollout`` (server mode: the rollout server must answer on host:port),
     GRPOArguments.__post_init__, SftArguments ``_init_deepspeed`` (``is_mp``: DeepSpeed vs device_map; the
     config file; deepspeed's presence is taken as given), ``_check_sequence_parallel``, ``_check_teacher``,
     ``_check_grpo`` (``is_mp``: vLLM vs device_map), GRPO's ``_init_generation_batch_params`` (batch
     divisibility);
  3. the learning rate of every optimiser step with transformers' own warm-up rounding and scheduler: a run
     whose every step has LR 0 (all warm-up) fails;
  4. the memory plan (shells/memory_plan.py) on the node's cards, incl. vLLM's start check (free memory >=
     its share).
What it cannot show is listed in docs/training.md ("What the CPU rehearsal checks").
"""
from __future__ import annotations

import hashlib
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from testsupport import REPO

GIB = 2 ** 30
DIST_VARS = ('RANK', 'LOCAL_RANK', 'WORLD_SIZE', 'LOCAL_WORLD_SIZE', 'NPROC_PER_NODE', 'NNODES', 'NODE_RANK',
             'MASTER_ADDR', 'MASTER_PORT', 'CUDA_VISIBLE_DEVICES', 'USE_HF', 'VLLM_USE_MODELSCOPE')
EVALUATORS = ('eval.bfcl', 'eval.apibank', 'eval.mmlu_pro')


# ------------------------------------------------------------------------------------------ the stand-ins
SWIFT_SHIM = r'''#!{python}
import sys
sys.path.insert(0, {repo!r})
from testsupport.gpu_rehearsal import swift_main
sys.exit(swift_main(sys.argv[1:]))
'''
PYTHON_SHIM = r'''#!{python}
import os, sys
if len(sys.argv) > 2 and sys.argv[1] == '-m' and sys.argv[2] in {evaluators!r}:
    sys.path.insert(0, {repo!r})
    from testsupport.gpu_rehearsal import evaluator_main
    sys.exit(evaluator_main(sys.argv[2], sys.argv[3:]))
os.execv({python!r}, [{python!r}] + sys.argv[1:])
'''
NVIDIA_SMI = '''#!/bin/sh
# the rehearsal node's GPUs (nvidia-smi lists every GPU, whatever CUDA_VISIBLE_DEVICES says)
case "$*" in *--query-gpu=index*) i=0; while [ $i -lt {gpus} ]; do echo $i; i=$((i + 1)); done ;;
  *) echo "GPU 0: rehearsal ({gib} GiB) x {gpus}" ;; esac
'''


class CheckServer:
    """The check server process (ms-swift imported once); one can serve every rehearsal node: each request
    carries its node's topology."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.proc: subprocess.Popen | None = None
        self.port = 0

    def start(self) -> 'CheckServer':
        self.root.mkdir(parents=True, exist_ok=True)
        port_file = self.root / 'check_server.port'
        port_file.unlink(missing_ok=True)
        env = {k: v for k, v in os.environ.items() if k not in DIST_VARS and not k.startswith('AWPO_')}
        env.update(PYTHONPATH=str(REPO), HF_HUB_OFFLINE='1', TRANSFORMERS_OFFLINE='1')
        log = self.root / 'check_server.log'
        self.proc = subprocess.Popen([sys.executable, '-m', 'testsupport.gpu_rehearsal', 'serve', str(port_file)],
                                     cwd=REPO, env=env, stdout=open(log, 'w'), stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.time() + 240
        while not port_file.exists():
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError('check server did not start: ' + log.read_text()[-3000:])
            time.sleep(0.2)
        self.port = int(port_file.read_text())
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=30)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


@dataclass
class Rehearsal:
    """One faked GPU node (or two, sharing ``root``): shims, the check server (its own, or ``checks``), and the
    launch log."""
    root: Path
    gpus: int = 8
    gib: float = 79.1
    rdzv_timeout: float = 2.0
    eval_seconds: float = 0.0
    checks: CheckServer | None = None

    def __post_init__(self):
        self.root = Path(self.root)
        self.bin = self.root / 'bin'
        self.stubs = self.root / 'stubs'
        self._own = self.checks is None

    # -- set-up
    def start(self) -> 'Rehearsal':
        self.bin.mkdir(parents=True, exist_ok=True)
        for name, text in (('swift', SWIFT_SHIM.format(python=sys.executable, repo=str(REPO))),
                           ('python', PYTHON_SHIM.format(python=sys.executable, repo=str(REPO),
                                                         evaluators=EVALUATORS)),
                           ('nvidia-smi', NVIDIA_SMI.format(gpus=self.gpus, gib=self.gib))):
            p = self.bin / name
            p.write_text(text)
            p.chmod(0o755)
        for mod, version in (('vllm', '0.33.0'), ('deepspeed', '0.18.9')):
            (self.stubs / mod).mkdir(parents=True, exist_ok=True)
            (self.stubs / mod / '__init__.py').write_text(f'__version__ = {version!r}  # GPU rehearsal stand-in\n')
        if self._own:
            self.checks = CheckServer(self.root).start()
        self.port = self.checks.port
        return self

    def stop(self):
        if self._own and self.checks:
            self.checks.stop()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def env(self, workdir: Path, **extra) -> dict:
        """The environment of a script run on this node (what tests/testsupport.shell_run clears, cleared)."""
        env = {k: v for k, v in os.environ.items()
               if k not in DIST_VARS and not k.startswith(('AWPO_', 'ROLLOUT_', 'MEM_PROFILE', 'FORCE', 'SMOKE_',
                                                           'DRY_PLAN', 'WAIT_', 'MODEL_HUB', 'OPENAI_'))}
        env.update(PATH=f'{self.bin}:{os.environ["PATH"]}', PYTHONPATH=f'{REPO}:{self.stubs}',
                   RUNS_DIR=str(workdir / 'runs'), RESULTS_DIR=str(workdir / 'results'), DATA_DIR=str(workdir / 'data'),
                   REHEARSAL_DIR=str(self.root), REHEARSAL_PORT=str(self.port), REHEARSAL_GPUS=str(self.gpus),
                   REHEARSAL_GIB=str(self.gib), REHEARSAL_RDZV_TIMEOUT=str(self.rdzv_timeout),
                   REHEARSAL_EVAL_S=str(self.eval_seconds), HF_HUB_OFFLINE='1', TRANSFORMERS_OFFLINE='1')
        env.update({k: str(v) for k, v in extra.items()})
        return env

    def launches(self) -> list[dict]:
        path = self.root / 'launches.jsonl'
        return [json.loads(ln) for ln in path.read_text().splitlines()] if path.exists() else []


def _log(record: dict) -> None:
    root = Path(os.environ['REHEARSAL_DIR'])
    line = json.dumps(record) + '\n'
    with open(root / 'launches.jsonl', 'a') as f:   # one write per line: the two nodes append concurrently
        f.write(line)


def _flag(argv: list[str], name: str, default=None):
    value = default
    for i, tok in enumerate(argv[:-1]):
        if tok == name:
            value = argv[i + 1]
    return value


def _ask(request: dict) -> dict:
    import urllib.request
    req = urllib.request.Request(f'http://127.0.0.1:{os.environ["REHEARSAL_PORT"]}/check',
                                 data=json.dumps(request).encode(), headers={'Content-Type': 'application/json'})
    with urllib.request.urlopen(req, timeout=300) as r:
        return json.loads(r.read())


def rendezvous(key: str, nnodes: int, node_rank: int, timeout: float) -> str | None:
    """torchrun's static rendezvous between the rehearsal's node processes: every node's n-th start of the same
    launch meets the others' n-th; None when all arrived within ``timeout``, else torchrun's kind of error."""
    base = Path(os.environ['REHEARSAL_DIR']) / 'rdzv' / key
    n = 0
    while (base / str(n) / f'node{node_rank}').exists():
        n += 1
    gen = base / str(n)
    gen.mkdir(parents=True, exist_ok=True)
    (gen / f'node{node_rank}').write_text(str(time.time()))
    deadline = time.time() + timeout
    while True:
        arrived = [r for r in range(nnodes) if (gen / f'node{r}').exists()]
        if len(arrived) == nnodes:
            (gen / 'done').touch()
            return None
        if time.time() > deadline:
            (gen / f'node{node_rank}.timeout').touch()
            return (f'torch.distributed.DistStoreError: Timed out after {timeout:g} seconds waiting for clients. '
                    f'{len(arrived)}/{nnodes} clients joined (static rendezvous, node rank {node_rank}: the other '
                    f'nodes did not start this launch in time)')
        time.sleep(0.05)


def _someone_waits() -> bool:
    """A node is in a rendezvous that neither completed nor timed out."""
    for gen in (Path(os.environ['REHEARSAL_DIR']) / 'rdzv').glob('*/*'):
        arrived = list(gen.glob('node[0-9]*'))
        if not (gen / 'done').exists() and not list(gen.glob('*.timeout')) and arrived:
            return True
    return False


def _write_run(argv: list[str], sub: str) -> None:
    """What a finished ms-swift run leaves in --output_dir (ms-swift 4.6, --add_version false)."""
    out = Path(_flag(argv, '--output_dir'))
    max_steps = int(_flag(argv, '--max_steps', 0) or 0) or 3
    ckpt = out / f'checkpoint-{max_steps}'
    ckpt.mkdir(parents=True, exist_ok=True)
    model = _flag(argv, '--model')
    (ckpt / 'config.json').write_text(json.dumps({'rehearsal': True, 'trained_from': model, 'steps': max_steps}))
    link = out / 'last-checkpoint'
    tmp = out / f'.last-checkpoint.{os.getpid()}'
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(ckpt.name)
    os.replace(tmp, link)
    awpo = 'plugin/awpo.py' in argv
    rows = []
    for step in range(1, min(max_steps, 5) + 1):
        row = {'global_step/max_steps': f'{step}/{max_steps}', 'loss': 0.0, 'learning_rate': 1e-6}
        if sub == 'rlhf':
            row.update({'reward': 1.0 + 0.1 * step, 'rewards/AWPOOutcome/mean': 0.8, 'rewards/AWPOJudge/mean': 0.5})
            if awpo:
                row.update({'awpo/gate_open_frac': 0.5, 'awpo/w_mix_mean': 0.2, 'awpo/prio_frac': 0.1,
                            'awpo/clip_eps': 0.2, 'awpo/d_mean': 0.3, 'awpo/judge_missing_frac': 0.0})
        rows.append(json.dumps(row))
    (out / 'logging.jsonl').write_text('\n'.join(rows) + '\n')


def swift_main(args: list[str]) -> int:
    sub, argv = (args[0] if args else ''), args[1:]
    env = {k: os.environ[k] for k in os.environ if k in DIST_VARS or k.startswith('AWPO_')}
    _log({'kind': 'swift', 'sub': sub, 'argv': argv, 'env': env, 'cwd': os.getcwd(), 'time': time.time()})
    node = {'gpus': int(os.environ['REHEARSAL_GPUS']), 'gib': float(os.environ['REHEARSAL_GIB'])}
    if sub == 'export':
        out = Path(_flag(argv, '--output_dir'))
        out.mkdir(parents=True, exist_ok=True)
        (out / 'config.json').write_text('{"rehearsal": true}')
        return 0
    if sub == 'rollout':
        res = _ask({'sub': sub, 'argv': argv, 'env': env, 'node': node})
        if not res['ok']:
            print('\n'.join(res['errors']), file=sys.stderr)
            return 1
        return _serve_health(int(_flag(argv, '--port', 8000)))
    if sub not in ('rlhf', 'sft'):
        print(f'rehearsal swift: no stand-in for `swift {sub}`', file=sys.stderr)
        return 2
    # torchrun first: with NNODES > 1 the static rendezvous (every node starts this launch within the timeout),
    # from the variables ms-swift hands to torchrun (the check below asserts that it does).
    nnodes = int(os.environ.get('NNODES', 1))
    if nnodes > 1:
        key = hashlib.sha1(' '.join([os.environ.get('MASTER_ADDR', ''), os.environ.get('MASTER_PORT', '29500'),
                                     _flag(argv, '--output_dir', '')]).encode()).hexdigest()[:16]
        err = rendezvous(key, nnodes, int(os.environ.get('NODE_RANK', 0)), float(os.environ['REHEARSAL_RDZV_TIMEOUT']))
        if err:
            _log({'kind': 'rdzv_timeout', 'argv': argv, 'env': env, 'time': time.time()})
            print(err, file=sys.stderr)
            return 1
    # then every rank's start-up: ms-swift's own checks, in the check server
    res = _ask({'sub': sub, 'argv': argv, 'env': env, 'node': node, 'cwd': os.getcwd()})
    torchrun = res.get('torchrun')
    print(f"run sh: `{' '.join(['python', '-m', 'torch.distributed.run', *torchrun] if torchrun else ['python', sub])}`")
    if not res['ok']:
        for e in res['errors']:
            print(e, file=sys.stderr)
        return 1
    _write_run(argv, sub)
    return 0


def _serve_health(port: int) -> int:
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class H(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path.rstrip('/') == '/health' else 404)
            self.end_headers()

        def log_message(self, *a):
            pass
    ThreadingHTTPServer(('127.0.0.1', port), H).serve_forever()
    return 0


def evaluator_main(module: str, argv: list[str]) -> int:
    """The evaluators' stand-in (see the module docstring)."""
    from eval import results as R
    from eval.serve import ServeError, resolve_checkpoint, thinking_args, vllm_cmd
    bench = module.split('.')[1]
    model, name = _flag(argv, '--model-path'), _flag(argv, '--name')
    think = _flag(argv, '--enable-thinking')
    env = {k: os.environ[k] for k in os.environ if k in DIST_VARS}
    try:
        ckpt = resolve_checkpoint(model)
    except ServeError as e:
        _log({'kind': 'eval', 'module': module, 'argv': argv, 'env': env, 'error': str(e)})
        print(f'[{module}] error: {e}', file=sys.stderr)
        return 2
    serve = vllm_cmd(ckpt, 8000, name, thinking_args('vllm', None if think is None else think == 'true'))
    _log({'kind': 'eval', 'module': module, 'argv': argv, 'env': env, 'vllm': serve, 'time': time.time()})
    slow = os.environ.get('REHEARSAL_SLOW_EVAL')   # only this row's evaluation takes long (if set)
    if not slow or slow == name:
        time.sleep(float(os.environ.get('REHEARSAL_EVAL_S', '0')))
    if slow == name:
        # A real evaluation outlasts torchrun's 600 s window: this one lasts while another node waits in a
        # rendezvous (until that wait times out), so a node that went ahead fails as it would on GPUs.
        deadline = time.time() + 3 * float(os.environ['REHEARSAL_RDZV_TIMEOUT'])
        while _someone_waits() and time.time() < deadline:
            time.sleep(0.2)
    paths = R.plan_run(_flag(argv, '--results-dir', 'results'), name, bench,
                       on_exists='suffix' if '--on-exists' in argv else 'refuse')
    limit = _flag(argv, '--limit')
    scores = {'rehearsal': True}
    if bench == 'bfcl':
        cats = (_flag(argv, '--categories', 'non_live') or '').split(',')
        scores['categories'] = {c: {'total_count': int(limit or 10), 'accuracy': 0.0} for c in cats}
    R.write_summary(paths, benchmark=bench, name=name, model={'path': model},
                    scores=scores, settings={'limit': int(limit) if limit else None, 'rehearsal': True},
                    extra={'paper_row': _flag(argv, '--paper-row')} if _flag(argv, '--paper-row') else None)
    return 0


# ------------------------------------------------------------------------------------------ the check server
class _Topology:
    gpus = 8
    gib = 79.1


def _visible() -> list[int]:
    cvd = os.environ.get('CUDA_VISIBLE_DEVICES')
    if cvd is None:
        return list(range(_Topology.gpus))
    out = []
    for tok in cvd.split(','):   # CUDA stops at the first id that is not a device of the node
        if not tok.strip().isdigit() or int(tok) >= _Topology.gpus:
            break
        out.append(int(tok))
    return out


def _fake_cuda() -> None:
    """torch.cuda as the rehearsal node shows it (before ms-swift is imported)."""
    import types

    import torch

    def props(device=None):
        return types.SimpleNamespace(name='rehearsal GPU', total_memory=int(_Topology.gib * GIB), major=9, minor=0,
                                     multi_processor_count=132)
    torch.cuda.is_available = lambda: True
    torch.cuda.device_count = lambda: len(_visible())
    torch.cuda.get_device_properties = props
    torch.cuda.mem_get_info = lambda device=None: (int(_Topology.gib * GIB), int(_Topology.gib * GIB))
    torch.cuda.set_device = lambda device: None
    torch.cuda.current_device = lambda: 0
    torch.cuda.is_bf16_supported = lambda *a, **k: True


class _Checker:
    def __init__(self):
        _fake_cuda()
        import dataclasses

        from transformers import HfArgumentParser

        import swift.arguments.sft_args as sft_args
        from swift.arguments import RLHFArguments, RolloutArguments, SftArguments
        from swift.arguments.rlhf_args import GRPOArguments
        from swift.cli.main import get_torchrun_args
        from swift.utils import get_dist_setting
        from swift.utils.utils import _patch_get_type_hints
        self.classes = {'rlhf': RLHFArguments, 'sft': SftArguments, 'rollout': RolloutArguments}
        self.names = {k: {f.name for f in dataclasses.fields(c)} for k, c in self.classes.items()}
        with _patch_get_type_hints():
            self.parsers = {k: HfArgumentParser([c]) for k, c in self.classes.items()}
        self.sft_args, self.SftArguments, self.GRPOArguments = sft_args, SftArguments, GRPOArguments
        self.get_torchrun_args, self.get_dist_setting = get_torchrun_args, get_dist_setting

    def check(self, req: dict) -> dict:
        _Topology.gpus, _Topology.gib = req['node']['gpus'], req['node']['gib']
        saved = dict(os.environ)
        try:
            for k in DIST_VARS:
                os.environ.pop(k, None)
            os.environ.update(req['env'])
            sub = req['sub']
            torchrun = self.get_torchrun_args() if sub in ('rlhf', 'sft') else None
            errors = self._parse_only(req) if sub == 'rollout' else []
            if int(os.environ.get('NNODES', 1)) > 1 and '--nnodes' not in (torchrun or []):
                errors.append(f'ms-swift does not hand NNODES to torchrun: {torchrun}')
            if sub in ('rlhf', 'sft'):
                nproc = int(os.environ.get('NPROC_PER_NODE', 1))
                nnodes = int(os.environ.get('NNODES', 1))
                node_rank = int(os.environ.get('NODE_RANK', 0))
                for local in sorted({0, nproc - 1}):
                    if torchrun is not None:
                        os.environ.update(RANK=str(node_rank * nproc + local), LOCAL_RANK=str(local),
                                          WORLD_SIZE=str(nproc * nnodes), LOCAL_WORLD_SIZE=str(nproc))
                    for e in self._check_rank(req, nproc * nnodes if torchrun is not None else 1):
                        if e not in errors:
                            errors.append(e)
            return {'ok': not errors, 'errors': errors, 'torchrun': torchrun}
        finally:
            os.environ.clear()
            os.environ.update(saved)

    def _parse(self, sub, argv, errors):
        ns, rest = self.parsers[sub].parse_known_args(argv)
        inexact = [t for t in argv if t.startswith('--') and t[2:] not in self.names[sub]]
        if rest or inexact:
            errors.append(f'ms-swift {sub}: unknown or abbreviated flags {rest or inexact}')
        return ns

    def _parse_only(self, req):
        errors = []
        try:
            self._parse(req['sub'], req['argv'], errors)
        except BaseException as e:  # noqa: BLE001 - argparse exits; report
            errors.append(f'ms-swift {req["sub"]}: {type(e).__name__}: {e}')
        return errors

    def _check_rank(self, req: dict, world: int) -> list[str]:
        from contextlib import ExitStack
        from unittest import mock
        sub, argv = req['sub'], req['argv']
        errors: list[str] = []
        where = f'rank {os.environ.get("RANK", 0)} of {world}'
        try:
            ns = self._parse(sub, argv, errors)
            cls = self.classes[sub]
            obj = object.__new__(type('Rehearsed', (cls,), {'world_size': world}))
            obj.__dict__.update(vars(ns))
            obj.rank, obj.local_rank, obj.global_world_size, obj.local_world_size = self.get_dist_setting()
            with ExitStack() as stack:
                # deepspeed is a GPU-set-up package (setup.cfg extra gpu): its presence is taken as given here.
                stack.enter_context(mock.patch.object(self.sft_args, 'require_version', lambda *a, **k: None))
                stack.enter_context(mock.patch('swift.rlhf_trainers.VLLMClient', _RolloutClient, create=True))
                if sub == 'rlhf':   # RLHFArguments.__post_init__'s steps, in its order, but the model / trainer ones
                    obj._process_loss_type()
                    obj._init_grpo()
                    obj._init_max_completion_length()
                    obj._init_padding_side()
                    obj._set_default()
                    obj._init_rollout()
                    self.GRPOArguments.__post_init__(obj)
                self.SftArguments._init_deepspeed(obj)
                if sub == 'rlhf':
                    obj._check_sequence_parallel()
                    obj._check_teacher()
                    obj._check_grpo()
                if sub == 'rlhf':
                    if not (obj.val_dataset or obj.split_dataset_ratio):
                        obj.eval_strategy = 'no'
                    obj._init_generation_batch_params()
        except BaseException as e:  # noqa: BLE001 - ms-swift raises ValueError / AssertionError; report
            errors.append(f'ms-swift refuses the launch ({where}): {type(e).__name__}: {e}')
            return errors
        errors += _learning_rate_errors(obj)
        errors += _memory_errors(sub, argv, world, req.get('cwd'))
        return errors


class _RolloutClient:
    """ms-swift's VLLMClient as far as the start-up goes: the rollout server must answer on host:port."""

    def __init__(self, base_urls=None, hosts=None, server_ports=None, connection_timeout=0, **_):
        import urllib.request
        for host, port in zip(hosts or [], server_ports or []):
            url = f'http://{host}:{port}/health/'
            try:
                urllib.request.urlopen(url, timeout=5)
            except OSError as e:
                raise ConnectionError(f'vLLM rollout server {url} does not answer ({e})') from None

    def close_communicator(self):
        pass

    def init_communicator(self, device=None):
        pass


def _learning_rate_errors(args) -> list[str]:
    """transformers' own warm-up rounding and scheduler: the LR of each optimiser step of the run."""
    import torch
    from transformers import TrainingArguments, get_scheduler
    steps = int(getattr(args, 'max_steps', -1) or -1)
    if steps <= 0 or steps > 5000:
        return []
    args._handle_hf_removed_args()   # ms-swift's bridge of --warmup_ratio to transformers 5's float warmup_steps
    dist = {k: os.environ.pop(k) for k in ('RANK', 'LOCAL_RANK', 'WORLD_SIZE', 'LOCAL_WORLD_SIZE') if k in os.environ}
    try:   # a single-process TrainingArguments: only its warm-up arithmetic is asked
        ta = TrainingArguments(output_dir='/tmp/rehearsal-lr', warmup_steps=args.warmup_steps or 0, report_to=[],
                               use_cpu=True)
    finally:
        os.environ.update(dist)
    warm = ta.get_warmup_steps(steps)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=float(args.learning_rate))
    sched = get_scheduler(args.lr_scheduler_type, opt, num_warmup_steps=warm, num_training_steps=steps,
                          scheduler_specific_kwargs=getattr(args, 'lr_scheduler_kwargs', None) or {})
    lrs = []
    for _ in range(steps):
        lrs.append(opt.param_groups[0]['lr'])
        opt.step()
        sched.step()
    if max(lrs) == 0:
        return [f'every one of the {steps} optimiser step(s) runs at learning rate 0 (transformers: {warm} warm-up '
                f'step(s) of {steps}, {args.lr_scheduler_type}): the run would not change the model']
    return []


def _memory_errors(sub: str, argv: list[str], world: int, cwd) -> list[str]:
    """The memory plan of this launch on the rehearsal node's cards."""
    from shells.memory_plan import BACKBONES, PROFILES, launch_from_argv, plan
    model = _flag(argv, '--model') or ''
    backbone = next((k for k, b in BACKBONES.items() if b.hub_id == model), None)
    if backbone is None:   # a run's own checkpoint (SFT+GRPO): the rehearsal wrote where it comes from
        cfg = Path(cwd or '.', model) / 'config.json'
        try:
            start = json.loads(cfg.read_text()).get('trained_from', '')
        except (OSError, ValueError):
            return []
        backbone = next((k for k, b in BACKBONES.items() if b.hub_id == start), None)
    if backbone is None:
        return []
    profile = min(PROFILES, key=lambda p: abs(PROFILES[p] - _Topology.gib))
    p = plan(backbone, profile, launch_from_argv([sub, *argv], world))
    return [f'memory ({_Topology.gib:g} GiB cards): {e}' for e in p.problems]


def serve(port_file: str) -> None:
    from http.server import BaseHTTPRequestHandler, HTTPServer
    checker = _Checker()

    class H(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers['Content-Length'])))
            try:
                out = checker.check(body)
            except BaseException as e:  # noqa: BLE001 - the rehearsal itself broke: say so
                out = {'ok': False, 'errors': [f'rehearsal check failed: {type(e).__name__}: {e}'], 'torchrun': None}
            data = json.dumps(out).encode()
            self.send_response(200)
            self.send_header('Content-Length', str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *a):
            pass
    srv = HTTPServer(('127.0.0.1', 0), H)     # one request at a time: the checks set os.environ
    tmp = Path(port_file + '.tmp')
    tmp.write_text(str(srv.server_address[1]))
    os.replace(tmp, port_file)
    srv.serve_forever()


def run_script(reh: Rehearsal, workdir: Path, script: str, *args: str, timeout: int = 600, **env):
    """Run shells/SCRIPT on the rehearsal node (for real), from the repository root as the docs do."""
    return subprocess.run(['bash', str(REPO / 'shells' / script), *args], cwd=REPO, env=reh.env(workdir, **env),
                          capture_output=True, text=True, timeout=timeout)


def start_script(reh: Rehearsal, workdir: Path, script: str, *args: str, log: Path, **env) -> subprocess.Popen:
    """Start shells/SCRIPT in the background, its stdout and stderr into `log` (a file: two nodes' pipes read one
    after the other would fill up and block the second node)."""
    return subprocess.Popen(['bash', str(REPO / 'shells' / script), *args], cwd=REPO, env=reh.env(workdir, **env),
                            stdout=open(log, 'w'), stderr=subprocess.STDOUT, text=True, start_new_session=True)


def shell_words(cmd: list[str]) -> str:
    return ' '.join(shlex.quote(c) for c in cmd)


if __name__ == '__main__':
    if sys.argv[1:2] == ['serve']:
        serve(sys.argv[2])
