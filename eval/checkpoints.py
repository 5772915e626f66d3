"""Which checkpoint a rerun may resume from (issue 21.8): the newest COMPLETE one.

    python -m eval.checkpoints OUTPUT_DIR [--move-aside] [--dry-run]

prints the path of the newest complete ``checkpoint-N`` in OUTPUT_DIR (nothing if there is none) and, with
``--move-aside``, moves every NEWER incomplete one to ``OUTPUT_DIR/incomplete/checkpoint-N.<UTC time>``
with a message on stderr (never deleted: a user may want to look at it; ms-swift's rotation and the
resume only look at ``OUTPUT_DIR/checkpoint-*``). ``shells/train.sh`` calls it before resuming.

A checkpoint is complete when (``problems`` returns the first thing missing):
* ``trainer_state.json`` parses and its ``global_step`` is the folder's N (transformers writes it after
  the weights, optimizer, scheduler and RNG states, so a save killed earlier has none);
* LoRA (``adapter_config.json`` or ``adapter_model.*`` present): ``adapter_config.json`` parses, and the
  adapter weights are whole;
* full weights: ``config.json`` parses, and the weights are whole: ``model.safetensors``, or every shard a
  ``*.index.json`` lists; ``pytorch_model.bin`` alike;
* DeepSpeed (a ``latest`` file or a ``global_step*`` folder, e.g. ZeRO-3): ``latest`` names a
  ``global_stepN`` folder that exists and holds, for ranks 0..R-1 without a gap, one whole model-states
  and one whole optimizer-states file each;
* every other ``*.pt`` / ``*.pth`` / ``*.bin`` (optimizer, scheduler, RNG states, training args) is a whole
  torch zip archive.
"Whole": a ``.safetensors`` file is exactly 8 bytes + its JSON header + the data its header describes; a
torch file is a zip whose central directory is present (torch.save writes it last). Both are read from
the header / end only, so checking a multi-GB 8B checkpoint takes milliseconds.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import re
import shutil
import struct
import sys
import zipfile
from pathlib import Path
from typing import List, Optional

_CKPT = re.compile(r'^checkpoint-(\d+)$')
_RANK = re.compile(r'zero_pp_rank_(\d+)_mp_rank_\d+_(model|optim)_states\.pt$')


def _json(path: Path) -> tuple[object, Optional[str]]:
    if not path.is_file():
        return None, f'{path.name} is missing'
    try:
        return json.loads(path.read_text(encoding='utf-8')), None
    except (ValueError, UnicodeDecodeError) as exc:
        size = path.stat().st_size
        return None, f'{path.name} is not valid JSON ({size} bytes: {str(exc)[:80]})'


def safetensors_problem(path: Path) -> Optional[str]:
    """None if `path` is a whole safetensors file (size = 8 + header + the data the header describes)."""
    try:
        size = path.stat().st_size
        with open(path, 'rb') as f:
            head = f.read(8)
            if len(head) < 8:
                return f'{path.name} is truncated ({size} bytes)'
            (n,) = struct.unpack('<Q', head)
            if n > size - 8:
                return f'{path.name} is truncated (header of {n} bytes, file of {size})'
            header = json.loads(f.read(n))
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        return f'{path.name} has an unreadable header ({str(exc)[:80]})'
    end = max((v['data_offsets'][1] for k, v in header.items() if k != '__metadata__'), default=0)
    if size != 8 + n + end:
        return f'{path.name} is {size} bytes, its header describes {8 + n + end}: truncated'
    return None


def torch_file_problem(path: Path) -> Optional[str]:
    """None if `path` is a whole torch.save file (zip with its central directory; torch writes that last)."""
    if path.stat().st_size == 0:
        return f'{path.name} is empty'
    if not zipfile.is_zipfile(path):
        return f'{path.name} is not a whole torch file (no zip central directory: truncated)'
    return None


_WEIGHTS = {  # (index file, single file, whole-file check), in the order transformers / peft look for them
    'adapter_model': (('adapter_model.safetensors.index.json', 'adapter_model.safetensors', safetensors_problem),
                      (None, 'adapter_model.bin', torch_file_problem)),
    'model': (('model.safetensors.index.json', 'model.safetensors', safetensors_problem),
              ('pytorch_model.bin.index.json', 'pytorch_model.bin', torch_file_problem)),
}


def _weights_problem(d: Path, stem: str) -> Optional[str]:
    for index_name, single, check in _WEIGHTS[stem]:
        index = d / index_name if index_name else None
        if index is not None and index.is_file():
            data, err = _json(index)
            if err:
                return err
            shards = sorted(set(data.get('weight_map', {}).values())) if isinstance(data, dict) else []
            if not shards:
                return f'{index.name} lists no weight files'
            for shard in shards:
                if not (d / shard).is_file():
                    return f'{shard} (listed in {index.name}) is missing'
                err = check(d / shard)
                if err:
                    return err
            return None
        if (d / single).is_file():
            return check(d / single)
    return f'no {stem} weights ({" / ".join(s for _, s, _ in _WEIGHTS[stem])}, single or sharded)'


def _deepspeed_problem(d: Path) -> Optional[str]:
    steps = [p for p in d.glob('global_step*') if p.is_dir()]
    latest = d / 'latest'
    if not steps and not latest.exists():
        return None
    if not latest.is_file():
        return 'DeepSpeed folder without its `latest` file (written after the shards)'
    tag = latest.read_text(encoding='utf-8', errors='replace').strip()
    sd = d / tag
    if not tag or not sd.is_dir():
        return f'`latest` names {tag!r}, which is not a folder here'
    ranks: dict = {'model': set(), 'optim': set()}
    for f in sd.iterdir():
        m = _RANK.search(f.name)
        if m:
            err = torch_file_problem(f)
            if err:
                return f'{tag}/{err}'
            ranks[m.group(2)].add(int(m.group(1)))
    if not ranks['model']:
        return f'{tag} holds no zero_pp_rank_*_model_states.pt'
    n = max(ranks['model'] | ranks['optim']) + 1
    for kind in ('model', 'optim'):
        missing = sorted(set(range(n)) - ranks[kind])
        if missing:
            return f'{tag}: {kind} states of rank(s) {missing} missing (of {n} ranks)'
    return None


def problems(d: str | Path) -> Optional[str]:
    """None if checkpoint folder `d` is complete (see the module doc), else the first thing wrong."""
    d = Path(d)
    m = _CKPT.match(d.name)
    state, err = _json(d / 'trainer_state.json')
    if err:
        return err
    step = state.get('global_step') if isinstance(state, dict) else None
    if not isinstance(step, int):
        return 'trainer_state.json has no integer global_step'
    if m and step != int(m.group(1)):
        return f'trainer_state.json says global_step {step}, the folder says {m.group(1)}'
    if (d / 'adapter_config.json').exists() or any(d.glob('adapter_model.*')):
        _, err = _json(d / 'adapter_config.json')
        err = err or _weights_problem(d, 'adapter_model')
    else:
        _, err = _json(d / 'config.json')
        err = err or _weights_problem(d, 'model')
    if err:
        return err
    err = _deepspeed_problem(d)
    if err:
        return err
    for f in sorted(d.iterdir()):
        if f.is_file() and f.suffix in ('.pt', '.pth', '.bin') and not f.name.startswith(('adapter_model', 'pytorch_model')):
            err = torch_file_problem(f)
            if err:
                return err
    return None


def checkpoints(out_dir: str | Path) -> List[Path]:
    """``OUT/checkpoint-N`` folders, newest (highest N) first."""
    out = Path(out_dir)
    found = [(int(m.group(1)), p) for p in out.glob('checkpoint-*') if p.is_dir() and (m := _CKPT.match(p.name))]
    return [p for _, p in sorted(found, reverse=True)]


def newest_complete(out_dir: str | Path, move_aside: bool = False, log=None) -> Optional[Path]:
    """The newest complete checkpoint; every newer incomplete one is reported (and moved aside if asked)."""
    log = log or (lambda msg: print(msg, file=sys.stderr))
    for ckpt in checkpoints(out_dir):
        why = problems(ckpt)
        if why is None:
            return ckpt
        if move_aside:
            stamp = _dt.datetime.now(_dt.timezone.utc).strftime('%Y%m%dT%H%M%SZ')
            dest = Path(out_dir) / 'incomplete' / f'{ckpt.name}.{stamp}'
            dest.parent.mkdir(exist_ok=True)
            shutil.move(str(ckpt), str(dest))
            log(f'[checkpoints] {ckpt} is incomplete ({why}): moved to {dest} (not deleted; remove it when '
                'you no longer need it)')
        else:
            log(f'[checkpoints] {ckpt} is incomplete ({why}): not resuming from it')
    return None


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog='python -m eval.checkpoints', description=__doc__.split('\n\n')[0])
    p.add_argument('out_dir', type=Path)
    p.add_argument('--move-aside', action='store_true', help='move newer incomplete checkpoints to OUT/incomplete/')
    args = p.parse_args(argv)
    ckpt = newest_complete(args.out_dir, move_aside=args.move_aside)
    if ckpt is not None:
        print(ckpt)
    return 0


if __name__ == '__main__':
    sys.exit(main())
