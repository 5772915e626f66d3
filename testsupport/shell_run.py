"""Run the repo's shell scripts (``--dry-run``) and read back the ``swift`` commands they print with ms-swift's
own argument parser (used by tests/test_shells.py and tests/test_cpu_study.py).

How the commands are parsed (see ``PARSER``, run in one subprocess to pay ms-swift's import once):
* Every command: the parser ``swift rlhf|sft|rollout|export`` itself builds (``swift.utils.parse_args``:
  ``HfArgumentParser`` over RLHFArguments / SftArguments / RolloutArguments / ExportArguments, under
  ms-swift's ``_patch_get_type_hints``), asked with ``parse_known_args``: an unknown flag, a bad type or a
  value outside a Literal's choices fails here exactly as it fails in ``swift``. Then the model-free part
  of RLHFArguments.__post_init__ runs on the result. The rest of __post_init__ is skipped for the GPU
  recipes because it cannot run here (hub download, vLLM server, DeepSpeed config).
* The CPU commands (SmolLM2, a local folder): the complete ``swift.utils.parse_args``, __post_init__
  included (it imports plugin/awpo.py and reads the model folder), as ``swift rlhf`` does before training.
"""
from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

from testsupport import REPO

SHELLS = REPO / 'shells'


def _env(tmp: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(('AWPO_', 'NNODES', 'NODE_RANK', 'MASTER_', 'NPROC_PER_NODE', 'ROLLOUT_',
                                'MEM_PROFILE', 'FORCE', 'CPU_', 'DEMO_', 'DRY_PLAN', 'DATA_DIR', 'SMOKE_',
                                'BFCL_THREADS', 'OPENAI_API_KEY', 'WAIT_DATA_S'))
           and k != 'RANK'}
    env.update(RUNS_DIR=str(tmp / 'runs'), RESULTS_DIR=str(tmp / 'results'), DATA_DIR=str(tmp / 'data'))
    env.update({k: str(v) for k, v in extra.items()})
    return env


def sh(tmp: Path, script: str, *args: str, check: bool = True, **env) -> subprocess.CompletedProcess:
    # timeout: a hang guard (reproduce.sh --dry-run all takes ~15 s on an idle box, ~60 s on a loaded one)
    p = subprocess.run(['bash', str(SHELLS / script), *args], cwd=REPO, env=_env(tmp, **env),
                       capture_output=True, text=True, timeout=180)
    if check and p.returncode != 0:
        raise AssertionError(f'{script} {args} failed ({p.returncode}):\n{p.stderr}')
    return p


def commands(out: str) -> list[tuple[dict, list[str]]]:
    """Each stdout line of a dry run -> (leading VAR=value environment, argv)."""
    cmds = []
    for line in out.splitlines():
        toks = shlex.split(line)
        env = {}
        while toks and '=' in toks[0] and not toks[0].startswith('-'):
            k, v = toks.pop(0).split('=', 1)
            env[k] = v
        cmds.append((env, toks))
    return cmds


PARSER = r'''
import dataclasses, json, os, sys
from transformers import HfArgumentParser
from swift.arguments import ExportArguments, RLHFArguments, RolloutArguments, SftArguments
from swift.utils import parse_args
from swift.utils.utils import _patch_get_type_hints

CLASSES = {'rlhf': RLHFArguments, 'sft': SftArguments, 'rollout': RolloutArguments, 'export': ExportArguments}
PARSERS = {}

def jsonable(d):
    out = {}
    for k, v in d.items():
        try:
            json.dumps(v); out[k] = v
        except TypeError:
            out[k] = repr(v)
    return out

def model_free(cls, ns, world):
    """RLHFArguments without __post_init__, then the model-free steps of __post_init__."""
    shim = type('Shim', (cls,), {'world_size': world})
    obj = object.__new__(shim)
    obj.__dict__.update(vars(ns))
    if cls is RLHFArguments:
        obj._process_loss_type(); obj._init_grpo(); obj._init_max_completion_length(); obj._set_default()
        if not (obj.val_dataset or obj.split_dataset_ratio):   # as SftArguments.__post_init__ does
            obj.eval_strategy = 'no'
        obj._init_generation_batch_params()
    return obj.__dict__

results = []
for job in json.load(sys.stdin):
    sub, argv, env, world, full = job['sub'], job['argv'], job['env'], job['world'], job['full']
    cls = CLASSES[sub]
    try:
        if full:
            saved = dict(os.environ); os.environ.update(env)
            try:
                args, rest = parse_args(cls, argv)
            finally:
                os.environ.clear(); os.environ.update(saved)
            d = dict(vars(args))
        else:
            if sub not in PARSERS:
                with _patch_get_type_hints():
                    PARSERS[sub] = HfArgumentParser([cls])
            ns, rest = PARSERS[sub].parse_known_args(argv)
            d = model_free(cls, ns, world)
        # argparse accepts unique prefixes (--epsilon_hi for --epsilon_high): our flags must be exact.
        names = {f.name for f in dataclasses.fields(cls)}
        inexact = [t for t in argv if t.startswith('--') and t[2:] not in names]
        results.append({'ok': not rest and not inexact, 'rest': rest, 'inexact': inexact, 'args': jsonable(d)})
    except BaseException as e:  # noqa: BLE001 - report, the test asserts
        results.append({'ok': False, 'error': f'{type(e).__name__}: {e}'})
print('@@RESULT@@' + json.dumps(results))
'''


def swift_parse(jobs: list[dict], cwd: Path) -> list[dict]:
    env = dict(os.environ, HF_HUB_OFFLINE='1', TRANSFORMERS_OFFLINE='1', PYTHONPATH=str(REPO))
    env = {k: v for k, v in env.items() if not k.startswith('AWPO_') or k == 'AWPO_SMOLLM2_DIR'}
    p = subprocess.run([sys.executable, '-c', PARSER], input=json.dumps(jobs), cwd=cwd, env=env,
                       capture_output=True, text=True, timeout=240)
    assert p.returncode == 0, p.stderr[-4000:]
    return json.loads(p.stdout.split('@@RESULT@@', 1)[1])
