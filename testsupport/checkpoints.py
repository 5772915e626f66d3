"""Checkpoint folders laid out as transformers / peft / DeepSpeed write them (small, CPU): for the tests of
``eval.checkpoints``. Weights are real safetensors files (8-byte header length, JSON header, data) and real
``torch.save`` archives; only their sizes are tiny."""
from __future__ import annotations

import json
import struct
from pathlib import Path


def write_safetensors(path: Path, tensors: dict) -> Path:
    """``tensors``: name -> list of floats (stored F32)."""
    header, data = {}, b''
    for name, values in tensors.items():
        raw = struct.pack(f'<{len(values)}f', *values)
        header[name] = {'dtype': 'F32', 'shape': [len(values)], 'data_offsets': [len(data), len(data) + len(raw)]}
        data += raw
    head = json.dumps(header).encode()
    head += b' ' * (-len(head) % 8)
    path.write_bytes(struct.pack('<Q', len(head)) + head + data)
    return path


def _torch_file(path: Path, obj) -> None:
    import torch
    torch.save(obj, path)


def make_checkpoint(out: Path, step: int, kind: str = 'lora', ranks: int = 2) -> Path:
    """``out/checkpoint-STEP`` as a finished save of `kind`: 'lora', 'full', 'sharded' (full, two shards +
    index) or 'zero3' (full weights gathered + DeepSpeed's global_stepN with `ranks` shards and `latest`)."""
    d = Path(out) / f'checkpoint-{step}'
    d.mkdir(parents=True)
    if kind == 'lora':
        (d / 'adapter_config.json').write_text(json.dumps({'peft_type': 'LORA', 'r': 8, 'lora_alpha': 32}))
        write_safetensors(d / 'adapter_model.safetensors', {'a.lora_A.weight': [0.1] * 16, 'a.lora_B.weight': [0.0] * 16})
    else:
        (d / 'config.json').write_text(json.dumps({'model_type': 'llama', 'hidden_size': 4}))
        if kind == 'sharded':
            write_safetensors(d / 'model-00001-of-00002.safetensors', {'w1': [1.0] * 8})
            write_safetensors(d / 'model-00002-of-00002.safetensors', {'w2': [2.0] * 8})
            (d / 'model.safetensors.index.json').write_text(json.dumps(
                {'metadata': {'total_size': 64}, 'weight_map': {'w1': 'model-00001-of-00002.safetensors',
                                                                'w2': 'model-00002-of-00002.safetensors'}}))
        else:
            write_safetensors(d / 'model.safetensors', {'w1': [1.0] * 8, 'w2': [2.0] * 8})
    if kind == 'zero3':
        gs = d / f'global_step{step}'
        gs.mkdir()
        for r in range(ranks):
            _torch_file(gs / f'zero_pp_rank_{r}_mp_rank_00_model_states.pt', {'rank': r})
            _torch_file(gs / f'bf16_zero_pp_rank_{r}_mp_rank_00_optim_states.pt', {'rank': r, 'm': [0.0] * 4})
        (d / 'latest').write_text(f'global_step{step}')
    else:
        _torch_file(d / 'optimizer.pt', {'state': {}, 'param_groups': []})
    _torch_file(d / 'scheduler.pt', {'last_epoch': step})
    _torch_file(d / 'rng_state.pth', {'python': 1})
    _torch_file(d / 'training_args.bin', {'args': 1})
    (d / 'trainer_state.json').write_text(json.dumps({'global_step': step, 'log_history': []}))
    return d
