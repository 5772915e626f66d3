"""Glue: sample raw rows with a fixed seed, convert + decompose + validate, count skips, write jsonl."""
from __future__ import annotations

import hashlib
import json
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterator, TextIO

from tqdm import tqdm

from .dialogue import decompose
from .errors import BAD_DIALOGUE, DUPLICATE_CONTENT, NOT_JSON, SCHEMA, UNEXPECTED, BadRow
from .schema import validate_row
from .sources import UnreadableRow, converter

DUPLICATE = 'duplicate dialogue id'
# What a converter raises on a raw shape it did not foresee (a field of the wrong type deep inside);
# at the per-row boundary it becomes a counted skip like any BadRow, never a lost run.
_UNFORESEEN = (TypeError, AttributeError, KeyError, IndexError, ValueError, RecursionError)


class StrictError(RuntimeError):
    """`--strict`: the first skipped row becomes this error, naming the row."""


class LayoutError(ValueError):
    """An input file whose rows are in a layout the source's converter does not read (raised once, before
    any row is converted, with or without `--strict`: every row would be skipped for the same reason)."""


# The keys every row of a source's raw layout has, and how to name the layout in an error.
LAYOUTS = {
    'xlam': (('query', 'answers', 'tools'), 'xLAM: {"id", "query", "answers", "tools"}'),
    'hammer': (('query', 'answers', 'tools'),
               'xLAM: {"id", "query", "answers", "tools"} (xlam-function-calling-60k / xlam-irrelevance-7.5k rows; '
               'the masking is applied here)'),
    'toolace': (('system', 'conversations'), 'ToolACE: {"system", "conversations": [{"from": user|assistant|tool}]}'),
    'xlam_mt': (('conversations',), 'APIGen-MT ShareGPT: {"system", "tools", "conversations": '
                                    '[{"from": human|gpt|function_call|observation}]}'),
}
# Layouts users are likely to hand over by mistake, named in the error.
KNOWN_LAYOUTS = (
    (('instruction', 'input', 'output'), 'instruction/input/output (Alpaca; e.g. Hammer\'s masking_sft_data.json, '
                                         'already rendered as prompts)'),
    (('query', 'answers', 'tools'), 'xLAM (query/answers/tools)'),
    (('system', 'conversations'), 'ShareGPT (system/conversations)'),
    (('conversations',), 'ShareGPT (conversations)'),
    (('messages',), 'chat messages (messages)'),
)


def check_layout(source: str, raw_rows: list, where: str = 'input') -> None:
    """Raise `LayoutError` when no object row of the input has the keys of the source's layout, naming the
    layout seen and the one expected. Inputs where some rows fit are converted row by row as usual."""
    keys, expected = LAYOUTS[source]
    objects = [r for r in raw_rows if isinstance(r, dict)]
    if not objects or any(all(k in r for k in keys) for r in objects):
        return
    seen_keys = sorted(objects[0])
    seen = next((name for need, name in KNOWN_LAYOUTS if all(k in objects[0] for k in need)),
                f'rows with keys {seen_keys[:8]}')
    raise LayoutError(f'{source}: {where} is in a layout the {source} converter does not read: {seen}; '
                      f'expected {expected} ({len(objects)} rows, none has {list(keys)})')


@dataclass
class Stats:
    read: Counter = field(default_factory=Counter)        # source -> raw rows read
    dialogues: Counter = field(default_factory=Counter)   # source -> dialogues kept
    written: Counter = field(default_factory=Counter)     # source -> instances written
    skips: Counter = field(default_factory=Counter)       # (source, reason) -> rows skipped
    examples: dict = field(default_factory=dict)          # (source, reason) -> first message
    asked: dict = field(default_factory=dict)             # source -> dialogues requested (None = all)
    too_long: Counter = field(default_factory=Counter)    # source -> instances over MAX_LENGTH (length filter)
    max_length: int | None = None

    def table(self) -> str:
        sources = list(dict.fromkeys([*self.read, *(s for s, _ in self.skips)]))
        lines = [f'{"source":<10} {"rows read":>10} {"dialogues":>10} {"instances":>10} {"skipped":>8}']
        for s in sources:
            nskip = sum(n for (src, _), n in self.skips.items() if src == s)
            lines.append(f'{s:<10} {self.read[s]:>10} {self.dialogues[s]:>10} {self.written[s]:>10} {nskip:>8}')
        lines.append(f'{"total":<10} {sum(self.read.values()):>10} {sum(self.dialogues.values()):>10} '
                     f'{sum(self.written.values()):>10} {sum(self.skips.values()):>8}')
        for s, n in self.asked.items():
            if n is not None and self.dialogues[s] < n:
                lines.append(f'note: {s}: {n} dialogues asked, only {self.dialogues[s]} usable in the input')
        for s, n in self.too_long.items():
            share = n / (n + self.written[s]) if n + self.written[s] else 0.0
            lines.append(f'length filter: {s}: {n} instances over {self.max_length} tokens left out ({share:.1%})')
        if self.skips:
            lines.append('skips by reason and source:')
            for (s, reason), n in sorted(self.skips.items()):
                lines.append(f'  {s:<10} {reason:<32} {n:>6}   e.g. {self.examples[(s, reason)][:120]}')
        return '\n'.join(lines)


def sample_order(n: int, count: int | None, seed: int) -> list[int]:
    """All rows in file order when no count is asked; else a seeded permutation, consumed until `count`
    dialogues are kept (skipped rows are replaced by the next ones, so counts are met when possible)."""
    order = list(range(n))
    if count is not None:
        random.Random(seed).shuffle(order)
    return order


def convert_source(source: str, raw_rows: list[dict], count: int | None, seed: int, strict: bool,
                   stats: Stats, progress: bool = True) -> Iterator[dict]:
    """Yield validated rows of up to `count` dialogues of one source; count skips by reason.
    Duplicates are skipped and counted: by dialogue id, and by content (the raw row without its id), so a
    source without ids (ToolACE) or with repeated dialogues under new ids keeps each dialogue once."""
    check_layout(source, raw_rows)
    conv = converter(source, seed)
    stats.asked[source] = count
    seen: set[str] = set()
    seen_content: set[str] = set()
    target = len(raw_rows) if count is None else min(count, len(raw_rows))
    bar = tqdm(total=target, desc=f'{source:<8}', unit='dlg', disable=not progress, leave=False)
    for index in sample_order(len(raw_rows), count, seed):
        if stats.dialogues[source] >= target:
            break
        stats.read[source] += 1
        try:
            try:
                raw = raw_rows[index]
                if isinstance(raw, UnreadableRow):
                    raise BadRow(raw.reason, raw.detail)
                if not isinstance(raw, dict):
                    raise BadRow(BAD_DIALOGUE, f'{source} row {index}: row is {type(raw).__name__}, not an object')
                dialogue = conv(raw, index)
                if dialogue.dialogue_id in seen:
                    raise BadRow(DUPLICATE, f'{source} row {index}: id {dialogue.dialogue_id!r} seen before')
                digest = content_hash(raw)
                if digest in seen_content:
                    raise BadRow(DUPLICATE_CONTENT, f'{source} row {index}: same content as an earlier row')
                rows = decompose(dialogue)
                for row in rows:
                    try:
                        validate_row(row)
                    except ValueError as exc:
                        raise BadRow(SCHEMA, str(exc)) from None
                    try:
                        row_line(row)
                    except ValueError as exc:  # NaN/Infinity, lone surrogates: not strict UTF-8 JSON
                        raise BadRow(NOT_JSON, f'{source} row {index}: {str(exc)[:200]}') from None
            except BadRow:
                raise
            except _UNFORESEEN as exc:
                raise BadRow(UNEXPECTED, f'{type(exc).__name__}: {str(exc)[:200]}') from None
        except BadRow as exc:
            stats.skips[(source, exc.reason)] += 1
            stats.examples.setdefault(
                (source, exc.reason), exc.detail if exc.detail.startswith(source) else f'{source} row {index}: {exc.detail}')
            if strict:
                raise StrictError(f'{source} row {index}: {exc}') from None
            continue
        seen.add(dialogue.dialogue_id)
        seen_content.add(digest)
        stats.dialogues[source] += 1
        stats.written[source] += len(rows)
        bar.update(1)
        yield from rows
    bar.close()


def content_hash(raw: dict) -> str:
    """Identity of a raw dialogue regardless of its id: sha1 of its other fields as canonical JSON."""
    body = {k: v for k, v in raw.items() if k != 'id'}
    text = json.dumps(body, sort_keys=True, ensure_ascii=False, default=repr)
    return hashlib.sha1(text.encode('utf-8', 'surrogatepass')).hexdigest()


def row_line(row: dict) -> str:
    """A row as one line of strict JSON in UTF-8 (`allow_nan=False`; lone surrogates raise)."""
    line = json.dumps(row, ensure_ascii=False, allow_nan=False) + '\n'
    line.encode('utf-8')
    return line


def write_rows(rows: Iterator[dict], out: TextIO) -> int:
    n = 0
    for row in rows:
        out.write(row_line(row))
        n += 1
    return n


def keep_fitting(rows: Iterator[dict], source: str, length_of, max_length: int, stats: Stats) -> Iterator[dict]:
    """`build --max-length`: leave out the instances whose prompt RL would drop (`data_prep.length_filter`),
    counted per source in `stats` (instances written = kept ones)."""
    stats.max_length = max_length
    for row in rows:
        try:
            n = length_of(row)
        except Exception:  # ms-swift's encode would fail the same way
            n = max_length + 1
        if n > max_length:
            stats.too_long[source] += 1
            stats.written[source] -= 1
            continue
        yield row
