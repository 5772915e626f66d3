"""Where each source comes from (public hub ids per hub, bundled fixture), its licence and gating, and which
converter reads it.

Hub ids: Hugging Face ids are the datasets' own. ModelScope mirrors use other ids; only those confirmed from
a public source are listed (`MS_IDS`: ms-swift 4.6's own dataset registry, swift/dataset/dataset/llm.py,
maps `LLM-Research/xlam-function-calling-60k` to `Salesforce/xlam-function-calling-60k`, subset `dataset`).
A source without a confirmed ModelScope id is refused on `--hub modelscope` with the reason and the way
around it (`--input SOURCE=PATH` from a local copy), never loaded under a guessed id.
"""
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
    subset: str | None = None


@dataclass(frozen=True)
class Source:
    name: str
    hub_ids: tuple[tuple[str, str], ...]       # (Hugging Face dataset id, id prefix)
    fixture: str
    converter: Callable                        # (raw row, index, seed) -> Dialogue


@dataclass(frozen=True)
class HubDataset:
    """What a user must know before loading a Hugging Face dataset: its licence, whether it is gated (a
    token AND the licence accepted on the dataset page), and how many dialogues it holds."""
    licence: str
    gated: bool
    rows: str


DATASETS = {
    'Team-ACE/ToolACE': HubDataset('apache-2.0', False, '11.3k dialogues'),
    'Salesforce/xlam-function-calling-60k': HubDataset('cc-by-4.0', True, '60k single-turn rows'),
    'MadeAgents/xlam-irrelevance-7.5k': HubDataset('see its dataset card (derived from xlam-60k)', False,
                                                   '7.5k rows with no valid call'),
    'Salesforce/APIGen-MT-5k': HubDataset('cc-by-nc-4.0 (non-commercial)', True,
                                          '5,000 dialogues: xlam_mt:11000 yields at most 5,000'),
}
# ModelScope ids confirmed from a public source (see the module doc): HF id -> (ModelScope id, subset).
MS_IDS = {'Salesforce/xlam-function-calling-60k': ('LLM-Research/xlam-function-calling-60k', 'dataset')}


class HubAccessError(ValueError):
    """A hub dataset that cannot be loaded as asked (gated without access, no known id on that hub)."""


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
    """What to load for `source` from `hub`; HubAccessError for a ModelScope id nobody confirmed."""
    if hub == 'hf':
        return [HubLoad('datasets', ds, 'train', prefix) for ds, prefix in SOURCES[source].hub_ids]
    if hub != 'modelscope':
        raise HubAccessError(f'unknown hub {hub!r} (hf or modelscope)')
    unknown = [ds for ds, _ in SOURCES[source].hub_ids if ds not in MS_IDS]
    if unknown:
        raise HubAccessError(
            f'--hub modelscope: no confirmed ModelScope id for {", ".join(unknown)} (source {source!r}); ModelScope '
            'mirrors use other ids and a guessed one could load other data. Download it from Hugging Face (or '
            f'any copy) and pass --input {source}=PATH, or use --hub hf. Confirmed ModelScope ids: '
            + ', '.join(f'{hf} -> {ms}' for hf, (ms, _) in MS_IDS.items()))
    return [HubLoad('modelscope', MS_IDS[ds][0], 'train', prefix, MS_IDS[ds][1]) for ds, prefix in SOURCES[source].hub_ids]


def login_hint() -> str:
    """How to log in with the installed Hugging Face client (`hf auth login` since huggingface_hub 1.0, where
    `huggingface-cli` was removed; `huggingface-cli login` before)."""
    try:
        from importlib.metadata import version
        major = int(version('huggingface_hub').split('.')[0])
    except Exception:  # not installed / unparsable: the current command
        major = 1
    return '`hf auth login`' if major >= 1 else '`huggingface-cli login`'


def access_error(dataset_id: str, exc: BaseException) -> HubAccessError | None:
    """A clear HubAccessError when `exc` (from `datasets` / `huggingface_hub`) says the dataset is gated or the
    token is missing / refused; None for other errors. huggingface_hub raises GatedRepoError (401 without a
    token, 403 when the licence was not accepted); datasets wraps it in DatasetNotFoundError ('... is a gated
    dataset on the Hub')."""
    chain, e = [], exc
    while e is not None and len(chain) < 10:
        chain.append(e)
        e = e.__cause__ or e.__context__
    names = {type(x).__name__ for x in chain}
    text = ' '.join(str(x) for x in chain)
    if not ('GatedRepoError' in names or 'gated' in text.lower()):
        return None
    info = DATASETS.get(dataset_id)
    terms = f' (licence {info.licence})' if info else ''
    return HubAccessError(
        f'{dataset_id} is a gated dataset{terms}: open https://huggingface.co/datasets/{dataset_id}, log in and '
        f'accept its terms, then log in here with {login_hint()} (or set HF_TOKEN) and rerun. Without access: '
        f'pass a local copy with --input SOURCE=PATH. ({type(exc).__name__}: {str(exc)[:200]})')


@functools.lru_cache(maxsize=None)
def load_hub(load: HubLoad) -> list[dict]:
    """Load one hub dataset (network needed), once per run (xlam and hammer share xlam-60k).
    Rows come back as plain dicts; converters never modify them. A gated dataset without access is a
    HubAccessError saying what to do (`access_error`)."""
    try:
        if load.loader == 'datasets':
            from datasets import load_dataset
            ds = load_dataset(load.dataset_id, split=load.split)
        elif load.loader == 'modelscope':
            from modelscope import MsDataset
            ds = MsDataset.load(load.dataset_id, subset_name=load.subset or 'default', split=load.split)
        else:
            raise ValueError(f'unknown loader {load.loader!r}')
    except Exception as exc:
        err = access_error(load.dataset_id, exc)
        if err is not None:
            raise err from None
        raise
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
