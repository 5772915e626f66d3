"""Finished outputs: atomic writes, and a manifest written last that says an output is complete.

A long job (rationales, the SFT export, a build) writes its output, then `write_manifest(out, rows)`.
A recipe that must not train on a half-written file asks `check_manifest(out)` (or the CLI
`python -m data_prep check-manifest OUT`): it fails unless the manifest exists, says the output is
complete and its row count equals the file's line count. A killed job leaves no manifest.
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from typing import Iterator

MANIFEST_SUFFIX = '.manifest.json'


class ManifestError(ValueError):
    """An output that is missing, unfinished or changed since its manifest was written; names the file."""


@contextlib.contextmanager
def atomic_writer(path: str, mode: str = 'w') -> Iterator:
    """Open a temporary file beside `path`; on clean exit rename it over `path`, on error remove it."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f'.{os.path.basename(path)}.', suffix='.tmp', dir=folder)
    try:
        with os.fdopen(fd, mode, encoding=None if 'b' in mode else 'utf-8') as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def manifest_path(out_path: str) -> str:
    return f'{out_path}{MANIFEST_SUFFIX}'


def count_lines(path: str) -> int:
    with open(path, 'rb') as handle:
        return sum(1 for line in handle if line.strip())


def write_manifest(out_path: str, rows: int, **meta) -> str:
    """Record that `out_path` is complete with `rows` non-empty lines (written last, atomically)."""
    record = {'output': os.path.basename(out_path), 'rows': int(rows), 'complete': True, **meta}
    with atomic_writer(manifest_path(out_path)) as handle:
        json.dump(record, handle, indent=1, sort_keys=True)
        handle.write('\n')
    return manifest_path(out_path)


def remove_manifest(out_path: str) -> None:
    """Call before starting to (re)write `out_path`: an output being written is not finished."""
    with contextlib.suppress(FileNotFoundError):
        os.remove(manifest_path(out_path))


def check_manifest(out_path: str) -> dict:
    """The manifest of a finished output; ManifestError naming the file if it is missing or does not match."""
    mpath = manifest_path(out_path)
    if not os.path.exists(out_path):
        raise ManifestError(f'{out_path}: output does not exist')
    try:
        with open(mpath, encoding='utf-8') as handle:
            record = json.load(handle)
    except FileNotFoundError:
        raise ManifestError(f'{out_path}: no {MANIFEST_SUFFIX} beside it, so the job that writes it did not '
                            'finish (killed, or failed part-way); rerun it (it resumes)') from None
    except (ValueError, OSError) as exc:
        raise ManifestError(f'{mpath}: unreadable manifest ({exc})') from None
    if not isinstance(record, dict) or record.get('complete') is not True or not isinstance(record.get('rows'), int):
        raise ManifestError(f'{mpath}: manifest does not mark the output complete')
    found = count_lines(out_path)
    if found != record['rows']:
        raise ManifestError(f'{out_path}: {found} rows, but its manifest says {record["rows"]}: '
                            'the file changed after it was finished; rerun the job that writes it')
    return record
