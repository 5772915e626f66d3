"""BFCL's human-contributed *live* cases as an offline tool-calling training set (issue 10, warm start).

    python -m data_prep bfcl-split --out DIR            # DIR/sft.jsonl, DIR/rl.jsonl, DIR/heldout.jsonl
    python -m data_prep bfcl-split --make-split         # re-draw data_prep/splits/bfcl_live_warmstart.json

Why these cases: they are real user requests with real tool schemas and answer keys, they ship inside the
``bfcl-eval`` package (offline), and they are a different population from BFCL's curated non-live and
multi-turn categories, which stay evaluation-only. The split file (committed) lists the case ids of each
part; it is the single source of truth, so nobody can evaluate on training items (the BFCL *Live* column
of a model trained on these rows is contaminated and must not be reported; non-live and multi-turn are
not, see ``EVAL_ONLY_CATEGORIES``).

Conversion of one case (``convert_case``):
* ``question`` (one turn: optional system + user message) -> ``messages``;
* ``function`` (BFCL's JSON-schema dialect: ``dict``, ``float``, ``tuple``, ``any``) -> OpenAI tool specs
  with JSON-schema types (``data_prep.tools.normalize_schema``);
* the answer key lists, per parameter, every accepted value, ``""`` meaning "may be omitted". The gold call
  takes the first accepted value; a parameter whose first option is ``""`` is left out (the shortest
  correct call). Dict values are resolved the same way key by key.
* ``reference_rationale`` is a templated one-line plan naming the call and its arguments (``plan_text``),
  not a strong model's rationale (none is available offline); the SFT target is
  ``<think>plan</think>`` + the call in hermes format (``data_prep.sft``).

The split (``make_split``) keeps only short cases (tool schemas + question under ``max_chars`` characters,
so CPU SFT fits) and splits by *function group* (the middle number of a BFCL id ``live_simple_2-2-0``:
cases of one group share the tool), so held-out cases ask for tools the SFT never saw.
"""
from __future__ import annotations

import glob
import json
import os
import random
import re
import subprocess
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Tuple

from .manifest import atomic_writer, remove_manifest, write_manifest
from .schema import validate_row
from .sft import sft_row
from .tools import normalize_schema

SOURCE = 'bfcl_live'
TRAIN_CATEGORIES = ('live_simple', 'live_multiple')
# Every BFCL category the project evaluates (eval.bfcl's non-live and multi-turn collections): never trained on.
EVAL_ONLY_CATEGORIES = ('simple_python', 'simple_java', 'simple_javascript', 'multiple', 'parallel',
                        'parallel_multiple', 'irrelevance', 'multi_turn_base', 'multi_turn_miss_func',
                        'multi_turn_miss_param', 'multi_turn_long_context')
SPLIT_FILE = Path(__file__).with_name('splits') / 'bfcl_live_warmstart.json'
PARTS = ('sft', 'rl', 'heldout')
_ID_RE = re.compile(r'^(?P<cat>[a-z_]+)_(?P<idx>\d+)-(?P<group>\d+)-(?P<sub>\d+)$')


class BFCLDataError(ValueError):
    """Missing bfcl-eval data or a case that cannot be converted; names the file / case id."""


# ---------------------------------------------------------------- locating bfcl-eval's data (offline)

def bfcl_data_dir() -> Path:
    """bfcl-eval's ``data`` folder: ``$AWPO_BFCL_DATA``, else next to the interpreter ``eval.bfcl`` uses
    (``$AWPO_BFCL_PYTHON`` / ``.venv-eval``). bfcl-eval is not importable from the training environment."""
    env = os.environ.get('AWPO_BFCL_DATA')
    if env:
        path = Path(env)
        if not (path / 'possible_answer').is_dir():
            raise BFCLDataError(f'AWPO_BFCL_DATA={env} is not bfcl-eval\'s data folder (no possible_answer/)')
        return path
    from eval.bfcl import BFCLError, find_bfcl_python
    try:
        py = find_bfcl_python()
    except BFCLError as exc:
        raise BFCLDataError(f'{exc} (or set AWPO_BFCL_DATA to bfcl_eval/data)') from None
    venv = Path(py).parent.parent
    hits = sorted(glob.glob(str(venv / 'lib' / 'python*' / 'site-packages' / 'bfcl_eval' / 'data')))
    if hits:
        return Path(hits[-1])
    code = "import importlib.util as u, os; print(os.path.dirname(u.find_spec('bfcl_eval').origin))"
    try:
        out = subprocess.run([py, '-c', code], capture_output=True, text=True, timeout=60, check=True)
    except (subprocess.SubprocessError, OSError) as exc:
        raise BFCLDataError(f'cannot locate bfcl_eval with {py}: {exc}') from None
    path = Path(out.stdout.strip()) / 'data'
    if not (path / 'possible_answer').is_dir():
        raise BFCLDataError(f'{path}: bfcl-eval data folder not found')
    return path


def _read_jsonl(path: Path) -> List[dict]:
    rows = []
    try:
        with open(path, encoding='utf-8') as f:
            for n, line in enumerate(f, 1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError as exc:
                        raise BFCLDataError(f'{path}:{n}: not JSON ({exc})') from None
    except FileNotFoundError:
        raise BFCLDataError(f'{path}: missing (is bfcl-eval installed completely?)') from None
    return rows


def load_category(data_dir: Path, category: str, answers: bool = True) -> List[Tuple[dict, Optional[list]]]:
    """[(case, answer key or None)] of one category, in file order."""
    cases = _read_jsonl(Path(data_dir) / f'BFCL_v4_{category}.json')
    if not answers:
        return [(c, None) for c in cases]
    keys = {a['id']: a['ground_truth'] for a in _read_jsonl(Path(data_dir) / 'possible_answer' /
                                                              f'BFCL_v4_{category}.json')}
    missing = [c['id'] for c in cases if c['id'] not in keys]
    if missing:
        raise BFCLDataError(f'{category}: no answer key for {missing[:3]}')
    return [(c, keys[c['id']]) for c in cases]


# ---------------------------------------------------------------- one case -> one row

def _first_option(options: Any, where: str) -> Tuple[bool, Any]:
    """(present, value) from a BFCL list of accepted values; ``""`` first = the parameter may be omitted."""
    if not isinstance(options, list) or not options:
        raise BFCLDataError(f'{where}: accepted values must be a non-empty list, got {options!r}')
    value = options[0]
    if value == '':
        return False, None
    return True, _resolve(value, where)


def _resolve(value: Any, where: str) -> Any:
    """A dict value of an answer key maps each key to its own list of accepted values."""
    if isinstance(value, dict):
        out = {}
        for k, opts in value.items():
            present, v = _first_option(opts, f'{where}.{k}')
            if present:
                out[k] = v
        return out
    return value


def gold_calls(answer: list, case_id: str) -> List[dict]:
    """BFCL answer key ``[{name: {param: [accepted...]}}]`` -> ``[{"name", "arguments"}]`` (first accepted values)."""
    calls = []
    for i, entry in enumerate(answer):
        if not isinstance(entry, dict) or len(entry) != 1:
            raise BFCLDataError(f'{case_id}: answer {i} is not a one-key object')
        (name, params), = entry.items()
        if not isinstance(params, dict):
            raise BFCLDataError(f'{case_id}: answer {i} ({name}) has no parameter object')
        args = {}
        for p, opts in params.items():
            present, v = _first_option(opts, f'{case_id}: {name}.{p}')
            if present:
                args[p] = v
        calls.append({'name': name, 'arguments': args})
    return calls


def tool_spec(fn: dict, case_id: str) -> dict:
    """A BFCL function doc -> ``{"type": "function", "function": {name, description, parameters}}``."""
    if not isinstance(fn, dict) or not isinstance(fn.get('name'), str) or not fn['name']:
        raise BFCLDataError(f'{case_id}: function without a name')
    params = normalize_schema(fn.get('parameters') or {'type': 'dict', 'properties': {}})
    params['type'] = 'object'
    params.setdefault('properties', {})
    return {'type': 'function', 'function': {'name': fn['name'], 'description': fn.get('description') or '',
                                             'parameters': params}}


def plan_text(calls: List[dict]) -> str:
    """The templated reference rationale: which call(s), with which arguments (JSON values)."""
    parts = []
    for c in calls:
        args = ', '.join(f'{k}={json.dumps(v, ensure_ascii=False)}' for k, v in c['arguments'].items())
        parts.append(f'{c["name"]} with {args}' if args else f'{c["name"]} with no arguments')
    return 'The request needs ' + ' and '.join(parts) + '.'


def convert_case(case: dict, answer: list) -> dict:
    """One BFCL live case + its answer key -> one row of ``data_prep/schema/row.schema.json`` (validated)."""
    cid = case.get('id', '?')
    turns = case.get('question')
    if not isinstance(turns, list) or len(turns) != 1 or not isinstance(turns[0], list):
        raise BFCLDataError(f'{cid}: expected exactly one question turn')
    messages = [{'role': m['role'], 'content': m['content']} for m in turns[0]]
    calls = gold_calls(answer, cid)
    row = {'messages': messages,
           'tools': json.dumps([tool_spec(f, cid) for f in case.get('function') or []], ensure_ascii=False),
           'ground_truth': json.dumps(calls, ensure_ascii=False),
           'reference_rationale': plan_text(calls), 'reference_answer': '',
           'source': SOURCE, 'dialogue_id': cid, 'step': 0}
    try:
        validate_row(row)
    except ValueError as exc:
        raise BFCLDataError(f'{cid}: {exc}') from None
    return row


# ---------------------------------------------------------------- the split

def case_chars(case: dict) -> int:
    """Prompt size proxy (characters of the tool docs + question), tokenizer-free so the split is reproducible."""
    return len(json.dumps(case['function'], ensure_ascii=False)) + len(json.dumps(case['question'], ensure_ascii=False))


def function_group(case_id: str) -> str:
    m = _ID_RE.match(case_id)
    if not m:
        raise BFCLDataError(f'{case_id}: not a BFCL live id (category_index-group-sub)')
    return f'{m["cat"]}:{m["group"]}'


def make_split(data_dir: Path, seed: int = 42, max_chars: int = 1300, n_heldout: int = 40,
               n_rl: int = 48) -> dict:
    """Short live_simple / live_multiple cases, split by function group into sft / rl / heldout (seeded)."""
    pool = []
    for cat in TRAIN_CATEGORIES:
        for case, answer in load_category(data_dir, cat):
            if case_chars(case) <= max_chars:
                convert_case(case, answer)  # only convertible cases enter the split
                pool.append(case['id'])
    groups: Dict[str, List[str]] = {}
    for cid in pool:
        groups.setdefault(function_group(cid), []).append(cid)
    order = sorted(groups)
    random.Random(seed).shuffle(order)
    split = {p: [] for p in PARTS}
    for g in order:  # fill heldout, then rl, then the rest to sft; a group never straddles two parts
        part = 'heldout' if len(split['heldout']) < n_heldout else 'rl' if len(split['rl']) < n_rl else 'sft'
        split[part].extend(groups[g])
    return {'about': 'BFCL live cases for the warm start (data_prep/bfcl_live.py); never evaluate a model '
                     'trained on them on BFCL live categories',
            'categories': list(TRAIN_CATEGORIES), 'eval_only_categories': list(EVAL_ONLY_CATEGORIES),
            'seed': seed, 'max_chars': max_chars, 'group_by': 'function group (id middle number)',
            **{p: sorted(split[p], key=_id_sort_key) for p in PARTS}}


def _id_sort_key(cid: str):
    m = _ID_RE.match(cid)
    return (m['cat'], int(m['idx'])) if m else (cid, 0)


def load_split(path: Path = SPLIT_FILE) -> dict:
    try:
        split = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise BFCLDataError(f'{path}: unreadable split file ({exc})') from None
    for p in PARTS:
        if not isinstance(split.get(p), list):
            raise BFCLDataError(f'{path}: no list of ids under {p!r}')
    return split


def split_rows(data_dir: Path, split: dict) -> Dict[str, List[dict]]:
    """The rows of each part, in the split file's order."""
    by_id = {}
    for cat in split.get('categories', TRAIN_CATEGORIES):
        for case, answer in load_category(data_dir, cat):
            by_id[case['id']] = (case, answer)
    out = {}
    for p in PARTS:
        missing = [cid for cid in split[p] if cid not in by_id]
        if missing:
            raise BFCLDataError(f'split part {p}: ids not in bfcl-eval\'s data: {missing[:3]}')
        out[p] = [convert_case(*by_id[cid]) for cid in split[p]]
    return out


def write_jsonl(path: Path, rows: Iterable[dict], **meta) -> int:
    """Atomic write, then the completion manifest (data_prep.manifest)."""
    remove_manifest(str(path))
    n = 0
    with atomic_writer(str(path)) as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + '\n')
            n += 1
    write_manifest(str(path), n, **meta)
    return n


def write_split(out_dir: Path, split_path: Path = SPLIT_FILE, data_dir: Optional[Path] = None) -> Dict[str, int]:
    """DIR/sft.jsonl (SFT export: prompt + ``<think>plan</think>`` + hermes call), DIR/rl.jsonl and
    DIR/heldout.jsonl (row schema). Returns rows written per file."""
    data_dir = Path(data_dir) if data_dir else bfcl_data_dir()
    rows = split_rows(data_dir, load_split(split_path))
    out_dir = Path(out_dir)
    meta = {'split': str(split_path), 'bfcl_data': str(data_dir)}
    return {'sft.jsonl': write_jsonl(out_dir / 'sft.jsonl', (sft_row(r) for r in rows['sft']), **meta),
            'rl.jsonl': write_jsonl(out_dir / 'rl.jsonl', rows['rl'], **meta),
            'heldout.jsonl': write_jsonl(out_dir / 'heldout.jsonl', rows['heldout'], **meta)}


# ---------------------------------------------------------------- CLI

def cmd_bfcl_split(args) -> int:
    data_dir = Path(args.bfcl_data) if args.bfcl_data else bfcl_data_dir()
    if args.make_split:
        split = make_split(data_dir, seed=args.seed, max_chars=args.max_chars)
        with atomic_writer(str(args.split)) as f:
            json.dump(split, f, indent=1)
            f.write('\n')
        print(f'split written to {args.split}: ' + ', '.join(f'{p} {len(split[p])}' for p in PARTS))
        if not args.out:
            return 0
    if not args.out:
        raise ValueError('bfcl-split: give --out DIR (or --make-split)')
    counts = write_split(Path(args.out), Path(args.split), data_dir)
    for name, n in counts.items():
        print(f'{n:5d} rows -> {Path(args.out) / name}')
    return 0


def add_parsers(sub) -> None:
    p = sub.add_parser('bfcl-split', help='BFCL live cases -> sft / rl / heldout files (warm start; offline)')
    p.add_argument('--out', type=Path, default=None, help='folder for sft.jsonl, rl.jsonl, heldout.jsonl')
    p.add_argument('--split', type=Path, default=SPLIT_FILE, help='split file (default: %(default)s)')
    p.add_argument('--bfcl-data', default=None, help="bfcl-eval's data folder (default: found via .venv-eval)")
    p.add_argument('--make-split', action='store_true', help='re-draw the split file from the data (seeded)')
    p.add_argument('--seed', type=int, default=42)
    p.add_argument('--max-chars', type=int, default=1300, help='longest case kept (tool docs + question)')
    p.set_defaults(func=cmd_bfcl_split)
