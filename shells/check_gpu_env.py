"""Does the GPU set-up's package set resolve? Asks pip's resolver, from this machine's package registry,
without installing anything and without a GPU:

    python -m shells.check_gpu_env [--report-dir DIR]

The set is read from what `bash shells/setup_gpu.sh --dry-run` prints (its one source: setup_gpu.sh's pip
lines, setup.cfg's extras gpu,eval, shells/requirements-eval-venv.txt), grouped by the environment each
line installs into (.venv: torch + this project with its extras; .venv-eval: torch CPU + bfcl-eval), and
each group is resolved at once: `pip install --dry-run --ignore-installed --report FILE REQUIREMENTS`.
So what is checked is exactly what setup_gpu.sh installs, as one resolution per environment (setup_gpu.sh
installs torch first, then the rest; one resolution is the stricter test: it fails if anything later asks
for another torch).

Not checked: the PyTorch wheel indexes (`--index-url https://download.pytorch.org/whl/<cuda|cpu>`) are not
reachable here, so each torch pin is resolved from the registry instead (the same version; the registry's
Linux torch wheels are the default CUDA build). Whether the CUDA index holds that build for your CUDA tag,
and whether the CUDA libraries load on your driver, only `shells/gpu_smoke.sh` on the GPU node shows.
pip fetches each candidate's metadata (PEP 658 files where the index has them, else the wheel): minutes,
and up to a few GB where the index gives no metadata files, hence a script (and a slow-marked test), not CI.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
KEY_PACKAGES = ('torch', 'vllm', 'ms-swift', 'deepspeed', 'evalscope', 'transformers', 'trl', 'bfcl-eval')


def setup_commands(venv: str = '/gpu-node/.venv', eval_venv: str = '/gpu-node/.venv-eval') -> list[list[str]]:
    """The pip install command lines `setup_gpu.sh --dry-run` prints (argv lists)."""
    env = {k: v for k, v in os.environ.items() if k not in ('EXTRAS', 'CUDA', 'TORCH_VERSION', 'EVAL_TORCH',
                                                              'SKIP_EVAL_VENV', 'DRY_PLAN')}
    env.update(VENV=venv, EVAL_VENV=eval_venv)
    out = subprocess.run(['bash', str(REPO / 'shells' / 'setup_gpu.sh'), '--dry-run'], cwd=REPO, env=env,
                         capture_output=True, text=True, check=True).stdout
    cmds = [shlex.split(line) for line in out.splitlines()]
    return [c for c in cmds if c[1:4] == ['-m', 'pip', 'install']]


def requirement_sets(cmds: list[list[str]]) -> dict[str, list[str]]:
    """Per environment (its python), the requirements its pip lines install: options dropped (-q, --upgrade,
    --index-url URL), `-e X` and `-r FILE` kept; the self-upgrade of pip left out."""
    sets: dict[str, list[str]] = {}
    for c in cmds:
        py, args = c[0], c[4:]
        reqs, i = [], 0
        while i < len(args):
            a = args[i]
            if a in ('--index-url', '--extra-index-url'):
                i += 2
                continue
            if a in ('-e', '-r'):
                reqs += [a, args[i + 1]]
                i += 2
                continue
            if not a.startswith('-'):
                reqs.append(a)
            i += 1
        if reqs != ['pip']:
            sets.setdefault(py, []).extend(reqs)
    return sets


def resolve(reqs: list[str], report: Path) -> dict[str, str]:
    """pip's resolver over `reqs` (nothing installed); name -> version of everything it would install."""
    cmd = [sys.executable, '-m', 'pip', 'install', '--dry-run', '--ignore-installed', '--quiet', '--report',
           str(report), *reqs]
    p = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f'pip could not resolve {" ".join(reqs)}:\n{p.stderr[-4000:]}')
    data = json.loads(report.read_text())
    return {normalize(i['metadata']['name']): i['metadata']['version'] for i in data['install']}


def normalize(name: str) -> str:
    """A distribution name as PEP 503 compares them (ms_swift == ms-swift)."""
    return re.sub(r'[-_.]+', '-', name).lower()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog='python -m shells.check_gpu_env', description=__doc__.split('\n\n')[0])
    ap.add_argument('--report-dir', help='keep pip\'s JSON reports here (default: a temporary folder)')
    args = ap.parse_args(argv)
    sets = requirement_sets(setup_commands())
    out = Path(args.report_dir or tempfile.mkdtemp(prefix='gpu-env-'))
    out.mkdir(parents=True, exist_ok=True)
    ok = True
    for n, (py, reqs) in enumerate(sets.items()):
        name = Path(py).parent.parent.name
        print(f'[check_gpu_env] {name}: pip install --dry-run {" ".join(reqs)}', flush=True)
        try:
            got = resolve(reqs, out / f'{name}.json')
        except RuntimeError as e:
            print(f'[check_gpu_env] {name}: DOES NOT RESOLVE\n{e}')
            ok = False
            continue
        keys = {k: got[k] for k in KEY_PACKAGES if k in got}
        print(f'[check_gpu_env] {name}: resolves, {len(got)} packages; ' +
              ', '.join(f'{k} {v}' for k, v in keys.items()) + f' (report {out / f"{name}.json"})')
    print('[check_gpu_env] not checked: the PyTorch CUDA/CPU wheel indexes (torch resolved from the registry at the '
          'same version), CUDA libraries on your driver (shells/gpu_smoke.sh)')
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
