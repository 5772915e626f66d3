"""Where evaluators write: ``results/<name>/<benchmark>.json`` plus a per-case outputs file beside it.

Never silently overwritten. When ``<benchmark>.json`` already exists the run is refused
(``on_exists='refuse'``, the default) or written as ``<benchmark>.2.json``, ``.3.json``... (``'suffix'``);
the per-case file takes the same stem (``<benchmark>.cases.jsonl`` / ``<benchmark>.2.cases.jsonl``).
A per-case file without its summary JSON is an interrupted run: evaluators append to it and resume.
``eval.tables`` reads the highest-numbered summary of each benchmark.
"""
from __future__ import annotations

import datetime as _dt
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional

from eval.jsonl import read_jsonl, truncate_torn_tail

ON_EXISTS = ('refuse', 'suffix')


class ResultExistsError(FileExistsError):
    pass


@dataclass
class RunPaths:
    summary: Path   # results/<name>/<benchmark>[.k].json
    cases: Path     # results/<name>/<benchmark>[.k].cases.jsonl
    workdir: Path   # results/<name>/<benchmark>[.k]_work/ (raw files of external tools)


def _paths(run_dir: Path, stem: str) -> RunPaths:
    return RunPaths(run_dir / f'{stem}.json', run_dir / f'{stem}.cases.jsonl', run_dir / f'{stem}_work')


def plan_run(results_dir: str | Path, name: str, benchmark: str, on_exists: str = 'refuse') -> RunPaths:
    """Pick the output paths of a new run of ``benchmark`` under ``results_dir/name``."""
    if on_exists not in ON_EXISTS:
        raise ValueError(f'on_exists must be one of {ON_EXISTS}, not {on_exists!r}')
    if not re.fullmatch(r'[A-Za-z0-9_.+-]+', name):
        raise ValueError(f'run name {name!r}: use letters, digits, _ . + - only')
    run_dir = Path(results_dir) / name
    run_dir.mkdir(parents=True, exist_ok=True)
    paths = _paths(run_dir, benchmark)
    if not paths.summary.exists():
        return paths  # fresh, or resuming an interrupted run (cases file without summary)
    if on_exists == 'refuse':
        raise ResultExistsError(f'{paths.summary} exists: choose another --name, or --on-exists suffix to keep '
                                f'both runs')
    k = 2
    while _paths(run_dir, f'{benchmark}.{k}').summary.exists():
        k += 1
    return _paths(run_dir, f'{benchmark}.{k}')


def read_cases(path: Path) -> List[Dict[str, Any]]:
    """Per-case records already written (for resuming). A torn last line (a kill mid-write) is cut from the
    file, so the next appended record starts on its own line; a bad line before the end is an error naming
    file and line (``eval.jsonl``), never a silent stop that would re-run and duplicate the cases after it."""
    if not path.exists():
        return []
    truncate_torn_tail(path)
    records, _ = read_jsonl(path, torn_tail=False)
    return [rec for _, rec in records]


def append_case(path: Path, record: Dict[str, Any]) -> None:
    with open(path, 'a') as f:
        f.write(json.dumps(record, ensure_ascii=False) + '\n')


def write_summary(paths: RunPaths, *, benchmark: str, name: str, model: Dict[str, Any],
                  scores: Dict[str, Any], settings: Dict[str, Any], extra: Optional[Dict[str, Any]] = None) -> Path:
    """Write the summary JSON (exclusive create: a concurrent run cannot overwrite it)."""
    doc = {
        'benchmark': benchmark, 'name': name, 'model': model, 'scores': scores, 'settings': settings,
        'date': _dt.datetime.now(_dt.timezone.utc).isoformat(timespec='seconds'),
        'cases_file': paths.cases.name,
    }
    doc.update(extra or {})
    with open(paths.summary, 'x') as f:
        json.dump(doc, f, indent=2, ensure_ascii=False)
        f.write('\n')
    return paths.summary


def latest_summary(run_dir: Path, benchmark: str) -> Optional[Path]:
    """``<benchmark>.json`` or its highest-numbered ``<benchmark>.<k>.json``."""
    best, best_k = None, 0
    for p in run_dir.glob(f'{benchmark}*.json'):
        m = re.fullmatch(re.escape(benchmark) + r'(?:\.(\d+))?\.json', p.name)
        if m:
            k = int(m.group(1) or 1)
            if k > best_k:
                best, best_k = p, k
    return best


def load_runs(results_dir: str | Path, benchmarks: Iterable[str]) -> Dict[str, Dict[str, Dict[str, Any]]]:
    """{run name: {benchmark: summary dict}} for every run folder under ``results_dir``."""
    runs: Dict[str, Dict[str, Dict[str, Any]]] = {}
    root = Path(results_dir)
    if not root.is_dir():
        return runs
    for run_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for bench in benchmarks:
            p = latest_summary(run_dir, bench)
            if p is not None:
                runs.setdefault(run_dir.name, {})[bench] = read_summary(p)
    return runs


def read_summary(path: Path) -> Dict[str, Any]:
    """One summary JSON; ValueError naming the file when it is not JSON or lacks its ``scores`` object."""
    try:
        doc = json.loads(Path(path).read_text(encoding='utf-8'))
    except (ValueError, RecursionError) as exc:
        raise ValueError(f'{path}: corrupt result summary, not JSON ({str(exc)[:160]}); '
                         'rerun that evaluation or move the file away') from None
    if not isinstance(doc, dict) or not isinstance(doc.get('scores'), dict) or \
            not isinstance(doc.get('settings', {}), dict):
        raise ValueError(f'{path}: not a result summary (needs a "scores" object and a "settings" object)')
    return doc
