"""Memory plan of one GPU training launch: what each GPU holds while vLLM generates and while the model
trains, and whether that fits the card of the memory profile (shells/recipes/common.sh MEM_PROFILE).

    python -m shells.memory_plan --backbone qwen3-8b --profile 40g --world 8 -- swift rlhf ARGS...
        prints the plan of that command; exit 3 (with the shortfall and what would fit) if it does not fit
    python -m shells.memory_plan --table      the table of docs/training.md (every backbone x profile,
                                              from the commands `shells/train.sh --dry-run` prints)

It reads the real command line (the last value of a flag wins, as in argparse), so a flag added after
`--` on train.sh is planned too. Standard library only: it runs before anything heavy is imported.
Lives beside the scripts (not in the installed packages): the scripts run it from the repository root.

The model (per GPU, GiB = 2**30 bytes; estimates stated with their assumption):
* training state, DeepSpeed ZeRO-3 over the world's W ranks (ZeRO paper, mixed-precision Adam):
  bf16 weights 2P/W + bf16 gradients 2P/W + fp32 master weights, Adam m and v 12P/W. `zero3_offload`
  keeps weights and optimiser on the CPU; ms-swift's --offload_model / --offload_optimizer move them to
  the CPU while vLLM generates (and when the vLLM engine starts).
* gathered weights while computing: the embedding (vocab x hidden) and two layers in bf16.
* activations with gradient checkpointing (ms-swift's default): one bf16 hidden state per layer and
  token + one layer's working set (~6 hidden + 4 intermediate + 2 attention widths per token, bf16);
  logits in fp32 with their log-softmax / gradient (x 10 bytes per vocab entry) for the completion tokens
  (GRPO keeps only those) or every token (SFT). Lengths: the recipe's maxima (--max_length,
  --max_completion_length): a micro-batch of longest sequences can come, and it must not go out of memory
  at step 300.
* vLLM colocated (--vllm_gpu_memory_utilization f of the card, tensor parallel t): bf16 weights 2P/t, a
  runtime of 1 GiB (profile-run activations, sampler) + 0.5 GiB CUDA graphs (none with
  --vllm_enforce_eager), the rest is KV cache: 2 (K, V) x layers x KV heads / t x head_dim x 2 bytes per
  token. vLLM refuses to start unless one sequence of --vllm_max_model_len fits; ms-swift gives every
  engine max_num_seqs = per-device batch x t x steps per generation (rollout_mixin._prepare_vllm_engine),
  the rank's share of a generation batch: with less KV cache the longer ones wait (slower, same samples).
* vLLM start: vLLM checks that the card's free memory is at least f x card; the training model is then
  loaded (ZeRO-3 weights 2P/W, offloaded first when an offload flag is set) and the process runtime taken.
* process runtime: 2 GiB (CUDA context, NCCL buffers, allocator fragmentation).
* sleeping vLLM (--sleep_level 1: weights to CPU, KV cache freed; 2: both freed) keeps its runtime;
  --sleep_level 0 keeps all of it.
"""
from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

GIB = 2 ** 30
RUNTIME_GIB = 2.0            # CUDA context + NCCL + fragmentation, per process
VLLM_RUNTIME_GIB = 1.0       # vLLM's profile-run activations and sampler
VLLM_GRAPHS_GIB = 0.5        # CUDA graphs (0 with --vllm_enforce_eager)


@dataclass(frozen=True)
class Backbone:
    """The numbers of the model's published config.json (Hugging Face hub, Qwen/<name>/config.json;
    the Qwen3 technical report, Table 1, gives the same layers / heads / tying)."""
    hub_id: str
    layers: int
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    tied: bool

    @property
    def layer_params(self) -> int:
        attn = self.hidden * self.head_dim * (2 * self.heads + 2 * self.kv_heads) + 2 * self.head_dim  # q,o,k,v + q/k norm
        return attn + 3 * self.hidden * self.intermediate + 2 * self.hidden                         # SwiGLU MLP + 2 norms

    @property
    def params(self) -> int:
        return self.layers * self.layer_params + self.vocab * self.hidden * (1 if self.tied else 2) + self.hidden

    def kv_bytes_per_token(self, tp: int = 1) -> int:
        return 2 * self.layers * max(1, self.kv_heads // tp) * self.head_dim * 2


BACKBONES = {   # Qwen/Qwen3-1.7B, Qwen/Qwen3-4B-Instruct-2507, Qwen/Qwen3-8B config.json
    'qwen3-1.7b': Backbone('Qwen/Qwen3-1.7B', 28, 2048, 6144, 16, 8, 128, 151936, tied=True),
    'qwen3-4b': Backbone('Qwen/Qwen3-4B-Instruct-2507', 36, 2560, 9728, 32, 8, 128, 151936, tied=True),
    'qwen3-8b': Backbone('Qwen/Qwen3-8B', 36, 4096, 12288, 32, 8, 128, 151936, tied=False),
}
# What torch reports as total_memory on the cards the profiles stand for (H100 80GB, A100 40GB,
# L4 / RTX 4090 24GB), in GiB.
PROFILES = {'80g': 79.1, '40g': 39.4, '24g': 23.6}


@dataclass
class Launch:
    """The memory-relevant settings of one `swift rlhf|sft` command (ms-swift's defaults where absent)."""
    kind: str                        # rlhf | sft
    world: int
    per_device_batch: int = 1
    grad_accum: int = 1
    max_length: int = 4096
    max_completion_length: int = 512
    deepspeed: str = ''
    use_vllm: bool = False
    vllm_mode: str = ''
    vllm_mem: float = 0.9
    vllm_tp: int = 1
    vllm_max_model_len: int = 0
    enforce_eager: bool = False
    sleep_level: int = 0
    offload_model: bool = False
    offload_optimizer: bool = False
    tuner: str = 'full'


def _flag(argv: list[str], name: str, default=None):
    """The last value of --name (argparse: the last one wins)."""
    value = default
    for i, tok in enumerate(argv[:-1]):
        if tok == f'--{name}':
            value = argv[i + 1]
    return value


def _bool(v) -> bool:
    return str(v).lower() in ('1', 'true', 'yes')


def launch_from_argv(argv: list[str], world: int) -> Launch:
    """argv: `swift rlhf ...` / `swift sft ...` (with or without the leading `swift`)."""
    if argv[:1] == ['swift']:
        argv = argv[1:]
    kind = argv[0]
    f = lambda n, d=None: _flag(argv, n, d)  # noqa: E731
    return Launch(
        kind=kind, world=world, per_device_batch=int(f('per_device_train_batch_size', 1)),
        grad_accum=int(f('gradient_accumulation_steps', 1)), max_length=int(f('max_length', 4096)),
        max_completion_length=int(f('max_completion_length', 512)) if kind == 'rlhf' else 0,
        deepspeed=f('deepspeed', '') or '', use_vllm=_bool(f('use_vllm', False)), vllm_mode=f('vllm_mode', '') or '',
        vllm_mem=float(f('vllm_gpu_memory_utilization', 0.9)), vllm_tp=int(f('vllm_tensor_parallel_size', 1)),
        vllm_max_model_len=int(f('vllm_max_model_len', 0) or 0), enforce_eager=_bool(f('vllm_enforce_eager', False)),
        sleep_level=int(f('sleep_level', 0)), offload_model=_bool(f('offload_model', False)),
        offload_optimizer=_bool(f('offload_optimizer', False)), tuner=f('tuner_type', 'full'))


@dataclass
class Plan:
    backbone: str
    profile: str
    card: float
    launch: Launch
    rows: list = field(default_factory=list)       # (phase, item, GiB)
    peaks: dict = field(default_factory=dict)      # phase -> GiB
    problems: list = field(default_factory=list)   # each makes the launch refuse
    notes: list = field(default_factory=list)
    kv_seqs: tuple = (0, 0)                        # full-length sequences the KV cache holds, engine's max_num_seqs

    @property
    def fits(self) -> bool:
        return not self.problems

    def text(self) -> str:
        ln = self.launch
        head = (f'memory plan: {self.backbone} ({BACKBONES[self.backbone].params / 1e9:.2f}B params), '
                f'MEM_PROFILE={self.profile} ({self.card:.1f} GiB per GPU), swift {ln.kind}, {ln.world} GPUs, '
                f'micro-batch {ln.per_device_batch}, {ln.deepspeed or "no DeepSpeed"}')
        out = [head]
        for phase, item, gib in self.rows:
            out.append(f'  {phase:<11} {item:<52} {gib:7.1f} GiB')
        for phase, gib in self.peaks.items():
            out.append(f'  peak {phase:<14} {gib:7.1f} of {self.card:.1f} GiB'
                       + ('' if gib <= self.card else f'  (short by {gib - self.card:.1f} GiB)'))
        out += [f'  note: {n}' for n in self.notes]
        out += [f'  DOES NOT FIT: {p}' for p in self.problems]
        return '\n'.join(out)


def plan(backbone: str, profile: str, ln: Launch) -> Plan:
    m = BACKBONES[backbone]
    card = PROFILES[profile]
    p = Plan(backbone, profile, card, ln)
    P, W = m.params, max(1, ln.world)
    offload_all = ln.deepspeed.startswith('zero3_offload')
    zero3 = ln.deepspeed.startswith('zero3')
    shard = W if zero3 else 1
    lora = ln.tuner != 'full'
    weights = 2 * P / (1 if lora else shard) / GIB if not offload_all else 0.0
    grads = 0.0 if (lora or offload_all) else 2 * P / shard / GIB
    optim = 0.0 if (lora or offload_all) else 12 * P / shard / GIB
    gathered = 2 * (m.vocab * m.hidden + 2 * m.layer_params) / GIB if zero3 else 0.0
    seq = ln.max_length + ln.max_completion_length
    mb = ln.per_device_batch
    act = mb * seq * (m.layers * m.hidden * 2 + 2 * (6 * m.hidden + 4 * m.intermediate + 2 * m.heads * m.head_dim)) / GIB
    logit_tokens = ln.max_completion_length if ln.kind == 'rlhf' else seq
    logits = mb * logit_tokens * m.vocab * 10 / GIB
    R = RUNTIME_GIB
    train_rows = [('training', 'process runtime (CUDA, NCCL)', R),
                  ('training', f'ZeRO-3 bf16 weights 2P/{shard}' + (' (on CPU: zero3_offload)' if offload_all else ''),
                   weights),
                  ('training', f'gradients 2P/{shard}', grads), ('training', f'Adam fp32 master+m+v 12P/{shard}', optim),
                  ('training', 'gathered weights (embedding + 2 layers)', gathered),
                  ('training', f'activations, {mb} x {seq} tokens, checkpointed', act),
                  ('training', f'fp32 logits + grad, {mb} x {logit_tokens} x {m.vocab}', logits)]
    vllm = ln.kind == 'rlhf' and ln.use_vllm and ln.vllm_mode == 'colocate'
    if vllm:
        t = ln.vllm_tp
        budget = ln.vllm_mem * card
        v_weights = 2 * P / t / GIB
        v_runtime = VLLM_RUNTIME_GIB + (0 if ln.enforce_eager else VLLM_GRAPHS_GIB)
        kv = budget - v_weights - v_runtime
        max_len = ln.vllm_max_model_len or seq
        per_seq = m.kv_bytes_per_token(t) * max_len / GIB
        n_seqs = mb * t * ln.grad_accum
        held = int(kv // per_seq) if kv > 0 else 0
        p.kv_seqs = (held, n_seqs)
        asleep = {0: budget}.get(ln.sleep_level, v_runtime)
        train_rows.append(('training', f'vLLM asleep (--sleep_level {ln.sleep_level})', asleep))
        gen_state = (0.0 if (ln.offload_model or offload_all) else weights) + \
                    (0.0 if (ln.offload_optimizer or offload_all) else grads + optim)
        gen_rows = [('generation', 'process runtime (CUDA, NCCL)', R),
                    ('generation', 'training state left on the GPU' + (' (offloaded)' if ln.offload_model or
                                                                     ln.offload_optimizer else ''), gen_state),
                    ('generation', f'vLLM {ln.vllm_mem:g} x {card:.1f} GiB: bf16 weights 2P/{t}', v_weights),
                    ('generation', 'vLLM runtime' + (' (eager)' if ln.enforce_eager else ' + CUDA graphs'), v_runtime),
                    ('generation', f'vLLM KV cache ({held} of {n_seqs} sequences x {max_len} tokens)', max(kv, 0.0))]
        p.rows += gen_rows
        p.peaks['generation'] = R + gen_state + budget
        # vLLM's own start check: free memory >= f x card, with the training model already loaded.
        at_start = R + (0.0 if (ln.offload_model or ln.offload_optimizer or offload_all) else weights)
        if card - at_start < budget:
            p.problems.append(f'vLLM will not start: it asks for {ln.vllm_mem:g} x {card:.1f} = {budget:.1f} GiB '
                              f'but only {card - at_start:.1f} GiB are free with the training model loaded '
                              f'(short by {budget - (card - at_start):.1f} GiB)')
        if kv < per_seq:
            p.problems.append(f'vLLM gets {budget:.1f} GiB ({ln.vllm_mem:g} x {card:.1f}): {v_weights:.1f} GiB of '
                              f'weights + {v_runtime:.1f} GiB runtime leave {max(kv, 0):.1f} GiB of KV cache, less than '
                              f'one {max_len}-token sequence ({per_seq:.2f} GiB): short by {per_seq - kv:.1f} GiB')
        elif held < n_seqs:
            p.notes.append(f'the KV cache holds {held} of the {n_seqs} sequences a vLLM engine gets per generation '
                           f'at full length ({max_len} tokens); longer batches queue (slower, same samples)')
    p.rows = train_rows + p.rows
    p.peaks = {'training': sum(g for _, _, g in train_rows), **p.peaks}
    for phase, gib in p.peaks.items():
        if gib > card:
            p.problems.append(f'{phase} needs {gib:.1f} GiB per GPU, the {profile} card has {card:.1f} GiB: '
                              f'short by {gib - card:.1f} GiB')
    return p


def suggestions(backbone: str, profile: str, ln: Launch) -> list[str]:
    """Changes to a launch that does not fit, each of which fits (tensor parallel, vLLM share, offload,
    micro-batch), as flags for `train.sh ... -- FLAGS`."""
    tries = []
    for t in (2, 4, 8):
        if ln.world % t == 0 and ln.use_vllm and ln.vllm_mode == 'colocate' and t > ln.vllm_tp:
            tries.append((f'--vllm_tensor_parallel_size {t}', dict(vllm_tp=t)))
    for f in (0.3, 0.4, 0.5, 0.6, 0.7, 0.8):
        if ln.use_vllm and ln.vllm_mode == 'colocate' and f != ln.vllm_mem:
            tries.append((f'--vllm_gpu_memory_utilization {f} --offload_model true --offload_optimizer true '
                          f'--sleep_level 2', dict(vllm_mem=f, offload_model=True, offload_optimizer=True,
                                                   sleep_level=2)))
    if ln.per_device_batch > 1:
        mb = ln.per_device_batch // 2
        tries.append((f'--per_device_train_batch_size {mb} --gradient_accumulation_steps {ln.grad_accum * 2}',
                       dict(per_device_batch=mb, grad_accum=ln.grad_accum * 2)))
    if not ln.deepspeed.startswith('zero3_offload'):
        tries.append(('--deepspeed zero3_offload', dict(deepspeed='zero3_offload')))
    out = []
    for flags, change in tries:
        if plan(backbone, profile, replace(ln, **change)).fits:
            out.append(flags)
    return out[:3]


def _cli_launch(args) -> int:
    argv = args.command
    if argv[:1] == ['swift']:
        argv = argv[1:]
    if not argv or argv[0] not in ('rlhf', 'sft'):
        return 0    # rollout / export: nothing to plan here
    ln = launch_from_argv(argv, args.world)
    p = plan(args.backbone, args.profile, ln)
    print(p.text(), file=sys.stderr)
    if p.fits:
        return 0
    fix = suggestions(args.backbone, args.profile, ln)
    print(f'[memory_plan] error: MEM_PROFILE={args.profile} does not fit {args.backbone} on {ln.world} GPUs: '
          + '; '.join(p.problems), file=sys.stderr)
    print('[memory_plan] what fits: ' + (' | '.join(f'-- {s}' for s in fix) if fix else
                                         'none of tensor parallel, a smaller vLLM share with offload, a smaller '
                                         'micro-batch or zero3_offload; use larger cards'), file=sys.stderr)
    return 3


def table(methods=('awpo', 'sft')) -> str:
    """The docs table: every backbone x profile, from the commands train.sh prints (one source: common.sh)."""
    repo = Path(__file__).resolve().parent.parent
    lines = ['| backbone | profile | launch | micro-batch | vLLM share | training peak | generation peak | KV: full-length seqs held / per engine | fits |',
             '|---|---|---|---|---|---|---|---|---|']
    for backbone in BACKBONES:
        for profile in PROFILES:
            for method in methods:
                env = dict(os.environ, MEM_PROFILE=profile, MEMORY_PLAN='0')
                out = subprocess.run(['bash', str(repo / 'shells' / 'train.sh'), '--dry-run', method, backbone],
                                     capture_output=True, text=True, env=env, cwd=repo).stdout
                for line in out.splitlines():
                    toks = shlex.split(line)
                    envs = dict(t.split('=', 1) for t in toks if '=' in t and not t.startswith('-')
                                and toks.index(t) < toks.index('swift')) if 'swift' in toks else {}
                    if 'swift' not in toks:
                        continue
                    cmd = toks[toks.index('swift') + 1:]
                    if cmd[0] != ('sft' if method == 'sft' else 'rlhf'):
                        continue
                    world = int(envs.get('NPROC_PER_NODE', 1)) * int(envs.get('NNODES', 1))
                    ln = launch_from_argv(cmd, world)
                    p = plan(backbone, profile, ln)
                    gen = p.peaks.get('generation')
                    held, n = p.kv_seqs
                    lines.append(f'| {backbone} | {profile} | {ln.kind} | {ln.per_device_batch} | '
                                 f'{ln.vllm_mem if ln.use_vllm else "-"} | {p.peaks["training"]:.1f} | '
                                 f'{"-" if gen is None else f"{gen:.1f}"} | '
                                 f'{f"{held} / {n}" if gen is not None else "-"} | '
                                 f'{"yes" if p.fits else "NO: " + "; ".join(p.problems)} |')
    return '\n'.join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog='python -m shells.memory_plan', description=__doc__.split('\n\n')[0])
    ap.add_argument('--backbone', choices=sorted(BACKBONES))
    ap.add_argument('--profile', choices=sorted(PROFILES), default='80g')
    ap.add_argument('--world', type=int, default=8, help='training processes over all nodes')
    ap.add_argument('--table', action='store_true', help='print the backbone x profile table (markdown)')
    ap.add_argument('command', nargs=argparse.REMAINDER, help='-- swift rlhf|sft ARGS')
    args = ap.parse_args(argv)
    if args.table:
        print(table())
        return 0
    if args.command[:1] == ['--']:
        args.command = args.command[1:]
    if not args.backbone or not args.command:
        ap.error('--backbone and -- swift COMMAND are needed (or --table)')
    return _cli_launch(args)


if __name__ == '__main__':
    sys.exit(main())
