"""JSON-lines files written by a process that may still be running (or was killed mid-write).

One rule for every reader (``eval.plots`` on ms-swift's ``logging.jsonl`` / ``completions.jsonl``,
``eval.results`` on per-case files, the test helpers on training logs): blank lines are ignored; a last line
that does not parse is a write in progress or cut by a kill, so it is left out (``torn_tail=True``); a line
that does not parse anywhere else is corruption, and the error names the file and line. Imports nothing
from ``plugin``, so eval and tests can both use it.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, List, Optional, Tuple


class JsonlError(ValueError):
    """A line that is not JSON before the end of a file; the message is ``PATH:LINE: ...``."""


def read_jsonl(path: str | Path, torn_tail: bool = True) -> Tuple[List[Tuple[int, Any]], bool]:
    """``([(line number, value), ...], tail_was_torn)``. ``torn_tail=False``: a torn last line is an error too."""
    path = Path(path)
    lines = path.read_text(encoding='utf-8', errors='replace').splitlines()
    numbered = [(n, line) for n, line in enumerate(lines, 1) if line.strip()]
    out: List[Tuple[int, Any]] = []
    for k, (n, line) in enumerate(numbered):
        try:
            out.append((n, json.loads(line)))
        except (ValueError, RecursionError) as exc:
            if torn_tail and k == len(numbered) - 1:
                return out, True
            if k == len(numbered) - 1:
                raise JsonlError(f'{path}:{n}: last line is not JSON ({str(exc)[:160]})') from None
            raise JsonlError(f'{path}:{n}: not JSON ({str(exc)[:160]}), and more lines follow it: corruption, '
                             'not a write in progress; fix or remove that line') from None
    return out, False


def truncate_torn_tail(path: str | Path) -> bool:
    """Before appending to ``path``: drop a last line that lacks its newline (a write cut by a kill), so the
    next record does not glue onto it. Returns whether something was cut."""
    path = Path(path)
    if not path.exists():
        return False
    data = path.read_bytes()
    cut = data.rfind(b'\n') + 1
    if cut == len(data):
        return False
    with open(path, 'r+b') as f:
        f.truncate(cut)
    return True


def latest_per_step(records: List[Any], step_of: Callable[[Any], Optional[int]]) -> List[Any]:
    """One record per training step from a log a resumed run appended to (ms-swift's ``logging.jsonl`` and
    ``completions.jsonl`` are append-only: a run resumed from checkpoint N logs steps N+1.. again, after the
    lines the killed run had already written for them). Walking the file in order, a record whose step is not
    above the previous step's starts a new segment and replaces every kept record of that step or later:
    the last occurrence of each step wins, in file order. Records without a step (``step_of`` -> None, e.g.
    the final ``train_runtime`` line) are kept where they are."""
    kept: List[Tuple[Optional[int], Any]] = []
    last: Optional[int] = None
    for rec in records:
        s = step_of(rec)
        if s is not None:
            if last is not None and s <= last:
                kept = [(k, r) for k, r in kept if k is None or k < s]
            last = s
        kept.append((s, rec))
    return [r for _, r in kept]


def global_step(rec: Any) -> Optional[int]:
    """The step of an ms-swift log record: ``global_step/max_steps`` ("3/10") or a ``step`` column (a list of
    equal strings in completions.jsonl, one line per logging step); None if it has none."""
    if not isinstance(rec, dict):
        return None
    v = rec.get('global_step/max_steps')
    if v is None:
        v = rec.get('step')
        if isinstance(v, list):
            v = v[0] if v else None
    try:
        return int(str(v).split('/')[0]) if v is not None else None
    except ValueError:
        return None
