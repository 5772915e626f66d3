"""Where each source comes from (public hub ids, bundled fixture) and which converter reads it."""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable, Iterable

from . import hammer, jsonvalue, toolace, xlam, xlam_mt
from .errors import BadRow

FIXTURES = Path(__file__).with_name('fixtures')


@dataclass(frozen=True)
class HubLoad:
    """One hub dataset to load: `datasets.load_dataset(dataset_id, split=split)` or
    `modelscope.MsDataset.load(dataset_id, split=split)`. `id_prefix` keeps row ids unique when a
    source mixes two datasets (Hammer: xLAM-60k + xlam-irrelevance-7.5k)."""
    loader: str
    dataset_id: str
    split: str = 'train'
    id_prefix: str = ''


@dataclass(frozen=True)
class Source:
    name: str
    hub_ids: tuple[tuple[str, str], ...]       # (dataset id, id prefix)
    fixture: str
    converter: Callable                        # (raw row, index, seed) -> Dialogue


SOURCES = {
    'toolace': Source('toolace', (('Team-ACE/ToolACE', ''),), 'toolace.json',
                      lambda raw, i, seed: toolace.convert(raw, i)),
    'xlam': Source('xlam', (('Salesforce/xlam-function-calling-60k', ''),), 'xlam.json',
                   lambda raw, i, seed: xlam.convert(raw, i)),
    'hammer': Source('hammer', (('Salesforce/xlam-function-calling-60k', ''),
                                ('MadeAgents/xlam-irrelevance-7.5k', 'irrelevance-')), 'hammer.json',
                     lambda raw, i, seed: hammer.convert(raw, i, seed=seed)),
    'xlam_mt': Source('xlam_mt', (('Salesforce/APIGen-MT-5k', ''),), 'xlam_mt.json',
                      lambda raw, i, seed: xlam_mt.convert(raw, i)),
}


def hub_plan(source: str, hub: str = 'hf') -> list[HubLoad]:
    loader = {'hf': 'datasets', 'modelscope': 'modelscope'}[hub]
    return [HubLoad(loader, ds, 'train', prefix) for ds, prefix in SOURCES[source].hub_ids]


@functools.lru_cache(maxsize=None)
def load_hub(load: HubLoad) -> list[dict]:
    """Load one hub dataset (network needed), once per run (xlam and hammer share xlam-60k).
    Rows come back as plain dicts; converters never modify them."""
    if load.loader == 'datasets':
        from datasets import load_dataset
        ds = load_dataset(load.dataset_id, split=load.split)
    elif load.loader == 'modelscope':
        from modelscope import MsDataset
        ds = MsDataset.load(load.dataset_id, split=load.split)
    else:
        raise ValueError(f'unknown loader {load.loader!r}')
    rows = []
    for i, row in enumerate(ds):
        row = dict(row)
        if load.id_prefix:
            row['id'] = f'{load.id_prefix}{row.get("id", i)}'
        rows.append(row)
    return rows


@dataclass(frozen=True)
class UnreadableRow:
    """A line of a JSONL input that does not parse: kept in place so the pipeline counts it as a skip."""
    reason: str
    detail: str


def read_local(path: str | Path) -> list:
    """A local raw file: a JSON list (ToolACE's data.json, xLAM's json) or JSON lines. A JSONL line that does
    not parse becomes an `UnreadableRow` (counted as a skip, named by line); a JSON file that does not parse
    is a ValueError naming the file."""
    path = Path(path)
    text = path.read_text(encoding='utf-8')
    if path.suffix == '.jsonl':
        rows: list = []
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    rows.append(jsonvalue.loads(line, f'{path} line {n}'))
                except BadRow as exc:
                    rows.append(UnreadableRow(exc.reason, exc.detail))
        return rows
    try:
        data = json.loads(text)
    except RecursionError:
        raise ValueError(f'{path}: nested too deep to parse as one JSON document; '
                         'convert it to JSON lines (one row per line) so bad rows can be skipped') from None
    except ValueError as exc:
        raise ValueError(f'{path}: not a JSON list of rows ({str(exc)[:200]}); JSON lines need a .jsonl name') from None
    if not isinstance(data, list):
        raise ValueError(f'{path}: expected a JSON list of rows, got {type(data).__name__}')
    return data


def converter(source: str, seed: int) -> Callable:
    conv = SOURCES[source].converter
    return partial(conv, seed=seed)


def fixture_path(source: str) -> Path:
    return FIXTURES / SOURCES[source].fixture


def iter_names() -> Iterable[str]:
    return SOURCES.keys()
