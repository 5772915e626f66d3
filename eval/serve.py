"""Start, health-check and stop the OpenAI-compatible server an evaluator talks to.

Three back-ends, one interface (``Server`` is a context manager yielding the ``/v1`` base URL):

* ``vllm``  -- ``vllm serve`` with the hermes tool parser, chosen automatically when a GPU and vllm exist;
* ``swift`` -- ms-swift's own ``swift deploy`` (works on CPU); the agent template renders tools and parses
  ``<tool_call>`` blocks back into OpenAI ``tool_calls``;
* ``url``   -- a server already running (``--base-url``): nothing is started or stopped.

A hub id (``Qwen/Qwen3-1.7B``, the tables' Base rows) is passed through: vLLM and ``swift deploy`` download it.

LoRA adapters are served on top of their base model (``--adapters`` / ``--lora-modules``): pass the adapter
folder as ``model_path`` together with ``base_model``, or let :func:`resolve_checkpoint` read the base model
from the adapter's ``adapter_config.json``.

The server runs in its own process group; on any failure during start-up (bad path, crash, time-out) the
whole group is killed before :class:`ServeError` is raised, so no orphan process is left behind.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

from cpu_model import smollm2

DEFAULT_SERVED_NAME = 'awpo-eval'
HEAVY_LOCK = '/tmp/awpo-heavy.lock'
# vLLM's window for evaluation. Without it vLLM takes the model's own (262k for Qwen3-4B-2507, ~39 GB of KV
# cache for one sequence: it refuses to start on 40 GB cards). 40960 is Qwen3-1.7B/8B's
# max_position_embeddings, the context bfcl-eval's own Qwen handlers assume (prompt + generation share it:
# its API handler sends no max_tokens, so the answer may use what the prompt leaves). The longest BFCL
# multi-turn prompt starts at ~28k characters of function docs + question (~8k tokens, measured on
# bfcl-eval's data) and grows with tool outputs and thinking; API-Bank prompts are far shorter.
EVAL_MAX_MODEL_LEN = 40960
HUB_ID = re.compile(r'[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*')


class ServeError(RuntimeError):
    """The server could not be started (the message names the cause and the server log)."""


@dataclass
class Checkpoint:
    """What to serve: a full model folder, a hub id, or a LoRA adapter folder on top of ``base_model``."""
    model: str
    adapter: Optional[str] = None
    hub: bool = False


def is_hub_id(model_path: str) -> bool:
    """``ORG/NAME`` (no leading ``/``, ``.`` or ``~``, one slash) whose ORG is not a local folder (a typo in
    ``runs/x`` stays a missing path): a model id the server downloads."""
    return bool(HUB_ID.fullmatch(model_path)) and not Path(model_path.split('/')[0]).is_dir()


def resolve_checkpoint(model_path: str, base_model: Optional[str] = None) -> Checkpoint:
    """Check the path and tell a full checkpoint from a LoRA adapter (``adapter_config.json``); a hub id that
    is not a local folder is passed through for the server to download."""
    path = Path(model_path).expanduser()
    if not path.exists():
        if is_hub_id(model_path):
            return Checkpoint(model=model_path, hub=True)
        raise ServeError(f'checkpoint path does not exist: {path} (nor is it a hub id ORG/NAME)')
    if not path.is_dir():
        raise ServeError(f'checkpoint path is not a folder: {path}')
    adapter_cfg = path / 'adapter_config.json'
    if adapter_cfg.is_file():
        base = base_model or json.loads(adapter_cfg.read_text()).get('base_model_name_or_path')
        if not base:
            raise ServeError(f'{adapter_cfg} names no base model: pass --base-model')
        return Checkpoint(model=str(base), adapter=str(path.resolve()))
    if not (path / 'config.json').is_file():
        raise ServeError(f'{path} holds neither config.json (full model) nor adapter_config.json (LoRA adapter)')
    return Checkpoint(model=str(path.resolve()))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def gpu_available() -> bool:
    try:
        import torch
        return bool(torch.cuda.is_available())
    except Exception:  # noqa: BLE001 - no torch means no GPU for us
        return False


def pick_backend(requested: str = 'auto') -> str:
    """``auto`` -> vllm when a GPU and the vllm package are present, else swift deploy."""
    if requested != 'auto':
        return requested
    import importlib.util
    return 'vllm' if gpu_available() and importlib.util.find_spec('vllm') else 'swift'


# swift deploy's transformers engine answers the requests waiting in its queue together, up to
# --max_batch_size of them with the same generation settings (ms-swift's default 1 answers one at a time).
# Measured on the CPU demo's 20 BFCL simple_python cases (SmolLM2 warm start, cap 288, idle 2-core box): bfcl
# generate took 84 s one request at a time, 47 s with 8 at once (40 s with 20), same answers' score (13/20).
# eval.bfcl sends as many requests at once.
SWIFT_MAX_BATCH = 8


def swift_deploy_cmd(ckpt: Checkpoint, port: int, served_name: str, swift_args: List[str]) -> List[str]:
    """``swift deploy`` command line; ``swift_args`` carries model-specific flags (template, dtype...); a
    ``--max_batch_size`` there replaces :data:`SWIFT_MAX_BATCH`."""
    swift = shutil.which('swift') or str(Path(sys.executable).with_name('swift'))
    cmd = [swift, 'deploy', '--model', ckpt.model, '--host', '127.0.0.1', '--port', str(port),
           '--served_model_name', served_name, '--verbose', 'false', '--log_interval', '-1']
    if '--max_batch_size' not in swift_args:
        cmd += ['--max_batch_size', str(SWIFT_MAX_BATCH)]
    if ckpt.adapter:
        # The adapter goes into the served model itself (`--adapters PATH`, served as --served_model_name), not
        # under a name of its own (`--adapters name=path`): ms-swift 4.6's transformers engine fails every batch
        # of requests for a named adapter ("Length of `adapter_names` should be the same as the number of
        # inputs, but got 1 and 8"), so BFCL scored 0 with --max_batch_size 8 (issue 20, 2026-12-04).
        cmd += ['--adapters', ckpt.adapter]
    return cmd + list(swift_args)


def thinking_args(backend: str, enable_thinking: Optional[bool]) -> List[str]:
    """Thinking mode as training used it (shells/recipes/common.sh THINKING); None = the template's default.

    vLLM: the chat-template switch, and with thinking on the ``qwen3`` reasoning parser, so the hermes tool
    parser reads only the answer after ``</think>`` (a ``<tool_call>`` drafted inside the reasoning is not
    a call; the training reward reads the answer the same way). swift deploy: its ``--enable_thinking``.
    """
    if enable_thinking is None:
        return []
    if backend == 'vllm':
        out = ['--default-chat-template-kwargs', json.dumps({'enable_thinking': enable_thinking})]
        return out + (['--reasoning-parser', 'qwen3'] if enable_thinking else [])
    return ['--enable_thinking', 'true' if enable_thinking else 'false']


# The ranks vLLM's --max-lora-rank accepts (vllm/config/lora.py MaxLoRARanks); its default is 16.
VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)


def adapter_rank(adapter: str) -> Optional[int]:
    """The largest LoRA rank of an adapter folder (``r`` and any ``rank_pattern`` of adapter_config.json)."""
    try:
        cfg = json.loads((Path(adapter) / 'adapter_config.json').read_text())
    except (OSError, ValueError):
        return None
    ranks = [cfg.get('r')] + list((cfg.get('rank_pattern') or {}).values())
    ranks = [int(r) for r in ranks if isinstance(r, (int, float)) and r > 0]
    return max(ranks) if ranks else None


def vllm_lora_rank(rank: int) -> int:
    """The smallest rank vLLM accepts that holds ``rank`` (an adapter above vLLM's --max-lora-rank is refused)."""
    for r in VLLM_LORA_RANKS:
        if r >= rank:
            return r
    raise ServeError(f'LoRA rank {rank} is above the largest vLLM serves ({VLLM_LORA_RANKS[-1]}): merge the adapter '
                     '(swift export --merge_lora true) and serve the merged model')


def vllm_cmd(ckpt: Checkpoint, port: int, served_name: str, extra: List[str],
             max_model_len: Optional[int] = EVAL_MAX_MODEL_LEN) -> List[str]:
    cmd = ['vllm', 'serve', ckpt.model, '--host', '127.0.0.1', '--port', str(port),
           '--enable-auto-tool-choice', '--tool-call-parser', 'hermes']
    if max_model_len and not any(a.split('=')[0] == '--max-model-len' for a in extra):
        cmd += ['--max-model-len', str(max_model_len)]
    if ckpt.adapter:
        cmd += ['--enable-lora', '--lora-modules', f'{served_name}={ckpt.adapter}']
        rank = adapter_rank(ckpt.adapter)  # the rank the recipe trained (vLLM's default 16 refuses a larger one)
        if rank and not any(a.split('=')[0] == '--max-lora-rank' for a in extra):
            cmd += ['--max-lora-rank', str(vllm_lora_rank(rank))]
    else:
        cmd += ['--served-model-name', served_name]
    return cmd + list(extra)


def group_alive(pgid: int) -> List[int]:
    """Live (not zombie) processes of process group ``pgid``, read from /proc."""
    alive = []
    for d in os.listdir('/proc'):
        if not d.isdigit():
            continue
        try:
            with open(f'/proc/{d}/stat') as f:
                fields = f.read().rsplit(')', 1)[1].split()
        except OSError:
            continue
        if fields[0] != 'Z' and int(fields[2]) == pgid:  # state, ppid, pgrp
            alive.append(int(d))
    return alive


def http_ok(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 - loopback only
            return 200 <= r.status < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


@dataclass
class Server:
    """Context manager: start the back-end, wait until ``/v1/models`` answers, stop it on exit."""
    model_path: Optional[str] = None
    base_url: Optional[str] = None
    backend: str = 'auto'
    base_model: Optional[str] = None
    served_name: str = DEFAULT_SERVED_NAME
    extra_args: List[str] = field(default_factory=list)
    log_path: Optional[str] = None
    startup_timeout: float = 600.0
    use_lock: bool = True
    port: Optional[int] = None
    max_model_len: Optional[int] = EVAL_MAX_MODEL_LEN
    enable_thinking: Optional[bool] = None
    proc: Optional[subprocess.Popen] = None
    lock_wait_s: float = 0.0    # time spent waiting for /tmp/awpo-heavy.lock
    pgid: Optional[int] = None  # process group of the last server started (kept after stop, for checks)
    _lock_fd: Optional[int] = None

    # -- public ---------------------------------------------------------------------------------------
    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> str:
        if self.base_url:
            url = self.base_url.rstrip('/')
            if not http_ok(url + '/models'):
                raise ServeError(f'no OpenAI-compatible server answers at {url}/models')
            return url
        backend, cmd = self.command()  # fails before anything is started
        log_path = Path(self.log_path or f'/tmp/awpo-serve-{self.port}.log')
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path = str(log_path)
        if self.use_lock and backend == 'swift':
            self._take_lock()
        log = open(log_path, 'w')
        print(f'[serve] {backend}: {" ".join(cmd)}\n[serve] log: {log_path}', file=sys.stderr)
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.pgid = self.proc.pid
        log.close()
        url = f'http://127.0.0.1:{self.port}/v1'
        try:
            self._wait_healthy(url)
        except BaseException:
            self.stop()
            raise
        return url

    def stop(self) -> None:
        """Kill the server's whole process group (SIGTERM, then SIGKILL after 20 s)."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
            except ProcessLookupError:
                pass
        if proc is not None:
            try:  # children that outlived the leader (swift's CLI runs the server as a child)
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            deadline = time.monotonic() + 15
            while group_alive(proc.pid) and time.monotonic() < deadline:
                time.sleep(0.2)
        self._release_lock()

    def command(self) -> tuple:
        """(backend, argv) of the server to start; checks the checkpoint, starts nothing."""
        if not self.model_path:
            raise ServeError('give --model-path (a checkpoint to serve) or --base-url (a running server)')
        ckpt = resolve_checkpoint(self.model_path, self.base_model)
        backend = pick_backend(self.backend)
        self.port = self.port or free_port()
        extra = thinking_args(backend, self.enable_thinking) + list(self.extra_args)
        if backend == 'swift':
            return backend, swift_deploy_cmd(ckpt, self.port, self.served_name, extra)
        if backend == 'vllm':
            return backend, vllm_cmd(ckpt, self.port, self.served_name, extra, self.max_model_len)
        raise ServeError(f'unknown backend {backend!r} (auto, swift, vllm)')

    # -- internals ------------------------------------------------------------------------------------
    def _wait_healthy(self, url: str) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServeError(f'server exited with code {self.proc.returncode} during start-up '
                                 f'(model {self.model_path}); last lines of {self.log_path}:\n{self.log_tail()}')
            if http_ok(url + '/models'):
                return
            time.sleep(1.0)
        raise ServeError(f'server not healthy after {self.startup_timeout:.0f} s; see {self.log_path}:\n'
                         f'{self.log_tail()}')

    def log_tail(self, n: int = 15) -> str:
        try:
            return '\n'.join(Path(self.log_path).read_text(errors='replace').splitlines()[-n:])
        except OSError:
            return '(no log)'

    def _take_lock(self) -> None:
        import fcntl
        self._lock_fd = os.open(HEAVY_LOCK, os.O_CREAT | os.O_RDWR, 0o666)
        t0 = time.monotonic()
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)  # other heavy jobs on this machine go first
        self.lock_wait_s = time.monotonic() - t0

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing releases the flock
            self._lock_fd = None


# Flags that make `swift deploy` serve the small CPU model (SmolLM2-135M-Instruct): the model's own flags
# (cpu_model/smollm2.py MODEL_FLAGS), the project's tool-call format, and a generation cap (a serving
# setting: an uncapped 135M model can ramble for minutes on 2 cores). The default cap holds the warm start's
# `<think>` plan + call (median 81 tokens on the held-out rows); the earlier 48 cut every call mid-JSON
# (issue 20). The demo derives its cap from the cases it evaluates (python -m eval.demo_eval cap) and passes
# it as --max-new-tokens.
SMOLLM2_MAX_NEW_TOKENS = 160
SMOLLM2_SWIFT_ARGS = [*smollm2.MODEL_FLAGS, '--agent_template', smollm2.AGENT_TEMPLATE,
                      '--max_new_tokens', str(SMOLLM2_MAX_NEW_TOKENS)]


def smollm2_swift_args(max_new_tokens: Optional[int] = None) -> List[str]:
    """:data:`SMOLLM2_SWIFT_ARGS` with another generation cap."""
    args = list(SMOLLM2_SWIFT_ARGS)
    if max_new_tokens:
        args[args.index('--max_new_tokens') + 1] = str(int(max_new_tokens))
    return args


def add_server_args(p: argparse.ArgumentParser) -> None:
    """The serving options every evaluator shares."""
    g = p.add_argument_group('serving')
    g.add_argument('--model-path', help='checkpoint folder (full model or LoRA adapter) to serve')
    g.add_argument('--base-url', help='use an OpenAI-compatible server already running (…/v1)')
    g.add_argument('--base-model', help='base model of a LoRA adapter (default: from adapter_config.json)')
    g.add_argument('--backend', default='auto', choices=['auto', 'swift', 'vllm'],
                   help='auto: vllm if a GPU and vllm are present, else swift deploy')
    g.add_argument('--served-name', default=None,
                   help=f'model name the server answers to (default {DEFAULT_SERVED_NAME}; with --base-url the '
                        'first model the server lists)')
    g.add_argument('--server-arg', action='append', default=[], metavar='ARG',
                   help='extra argument for swift deploy / vllm serve (repeat; e.g. --server-arg=--template)')
    g.add_argument('--smollm2', action='store_true',
                   help='add the swift deploy flags for the CPU SmolLM2 model: ' + ' '.join(SMOLLM2_SWIFT_ARGS))
    g.add_argument('--max-new-tokens', type=int, default=None,
                   help=f'with --smollm2: the generation cap (default {SMOLLM2_MAX_NEW_TOKENS})')
    g.add_argument('--startup-timeout', type=float, default=600.0)
    g.add_argument('--max-model-len', type=int, default=EVAL_MAX_MODEL_LEN,
                   help='vLLM context window: prompt + answer (default %(default)s; 0 = the model\'s own)')
    g.add_argument('--enable-thinking', choices=['true', 'false'], default=None,
                   help='thinking mode as in training (shells/recipes/common.sh THINKING); default: the template\'s')


def server_from_args(args, log_path: Optional[str] = None) -> Server:
    extra = list(args.server_arg) + (smollm2_swift_args(getattr(args, 'max_new_tokens', None))
                                     if getattr(args, 'smollm2', False) else [])
    thinking = getattr(args, 'enable_thinking', None)
    return Server(model_path=args.model_path, base_url=args.base_url, backend=args.backend,
                  base_model=args.base_model, served_name=args.served_name or DEFAULT_SERVED_NAME,
                  extra_args=extra, log_path=log_path, startup_timeout=args.startup_timeout,
                  max_model_len=getattr(args, 'max_model_len', EVAL_MAX_MODEL_LEN) or None,
                  enable_thinking=None if thinking is None else thinking == 'true')


def served_model_name(base_url: str, preferred: Optional[str]) -> str:
    """The name to put in requests: the one asked for, else the first model the server lists."""
    if preferred:
        return preferred
    with urllib.request.urlopen(base_url.rstrip('/') + '/models', timeout=10) as r:  # noqa: S310
        data = json.load(r).get('data') or []
    if not data:
        raise ServeError(f'{base_url}/models lists no model')
    return data[0]['id']
