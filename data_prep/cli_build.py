"""`build`, `convert` and `demo` sub-commands."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from .manifest import atomic_writer, remove_manifest, write_manifest
from .pipeline import Stats, convert_source, keep_fitting, write_rows
from .sources import SOURCES, fixture_path, hub_plan, load_hub, read_local

DEMO_SEED = 0


def parse_sources(spec: str) -> list[tuple[str, int | None]]:
    """'toolace:2000,hammer:1000,xlam' -> [('toolace', 2000), ('hammer', 1000), ('xlam', None)] (None = all)."""
    out = []
    for part in filter(None, (p.strip() for p in spec.split(','))):
        name, _, count = part.partition(':')
        if name not in SOURCES:
            raise argparse.ArgumentTypeError(f'unknown source {name!r} (known: {", ".join(SOURCES)})')
        if any(name == seen for seen, _ in out):
            # two samples of one source would overlap (same seed, same rows): refused, not merged
            raise argparse.ArgumentTypeError(f'--sources {spec!r}: source {name!r} is given twice; '
                                             'give it once with the total count')
        if count in ('', 'all'):
            out.append((name, None))
        elif count.isdigit():
            out.append((name, int(count)))
        else:
            raise argparse.ArgumentTypeError(f'bad count {count!r} for source {name!r}')
    return out


def parse_inputs(items: list[str]) -> dict[str, list[str]]:
    """['xlam=a.json', 'hammer=b.json', 'hammer=c.json'] -> {'xlam': ['a.json'], 'hammer': ['b.json', 'c.json']}."""
    out: dict[str, list[str]] = {}
    for item in items or []:
        name, sep, path = item.partition('=')
        if not sep or name not in SOURCES:
            raise argparse.ArgumentTypeError(f'--input wants SOURCE=PATH with SOURCE in {list(SOURCES)}, got {item!r}')
        out.setdefault(name, []).append(path)
    return out


def read_inputs(paths: list[str] | str) -> list:
    """The raw rows of one source's local file(s), in order, with ids unique per source.

    Several files (`--input hammer=xlam60k.json --input hammer=irrelevance.json`): every row's id becomes
    `<file stem>:<its id, or its position in the file>`, as the hub path prefixes the irrelevance rows.
    One file mixing rows with and without `id` (a hand-made merge): the id-less rows get `noid-<position>`,
    so they cannot collide with the others' ids. A file whose rows all lack an id keeps positions as ids."""
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    rows: list = []
    for path in paths:
        part = read_local(path)
        objects = [r for r in part if isinstance(r, dict)]
        mixed = any('id' in r for r in objects) and not all('id' in r for r in objects)
        for i, row in enumerate(part):
            if not isinstance(row, dict):
                rows.append(row)
                continue
            rid = row['id'] if 'id' in row else (f'noid-{i}' if mixed else i)
            if len(paths) > 1:
                rid = f'{Path(path).stem}:{rid}'
            rows.append(row if rid is row.get('id') else {**row, 'id': rid})
    return rows


def build_plan(args) -> list[tuple[str, int | None, str, object]]:
    """Per requested source: (name, count, 'local'|'hub', path or list of HubLoad). No I/O."""
    inputs = parse_inputs(args.input)
    plan = []
    for name, count in parse_sources(args.sources):
        if name in inputs:
            plan.append((name, count, 'local', inputs[name]))
        else:
            plan.append((name, count, 'hub', hub_plan(name, args.hub)))
    return plan


def _run(plan, out_path: str, seed: int, strict: bool, length=None) -> Stats:
    """Write the rows atomically (temp file + rename: a failed run leaves no partial output), then the
    manifest that marks the output complete (`data_prep.manifest`). `length`: (length_of, max_length) to
    leave out prompts RL would drop (`build --max-length`)."""
    stats = Stats()
    t0 = time.perf_counter()
    remove_manifest(out_path)
    with atomic_writer(out_path) as out:
        for name, count, kind, where in plan:
            raw = read_inputs(where) if kind == 'local' else [r for load in where for r in load_hub(load)]
            rows = convert_source(name, raw, count, seed, strict, stats)
            write_rows(keep_fitting(rows, name, *length, stats) if length else rows, out)
    written = sum(stats.written.values())
    write_manifest(out_path, written, seed=seed, sources={n: c for n, c, _, _ in plan},
                   skipped=sum(stats.skips.values()))
    dt = time.perf_counter() - t0
    print(stats.table())
    print(f'wrote {written} instances of {sum(stats.dialogues.values())} dialogues '
          f'to {out_path} (+ manifest) in {dt:.2f} s')
    return stats


def cmd_build(args) -> int:
    plan = build_plan(args)
    if args.print_plan:
        for name, count, kind, where in plan:
            loads = ', '.join(where) if kind == 'local' else ', '.join(f'{l.loader}:{l.dataset_id}[{l.split}]'
                                                                    for l in where)
            print(f'{name}\t{"all" if count is None else count}\t{kind}\t{loads}')
        return 0
    length = None
    if args.max_length:
        from .length_filter import PromptLength
        if not args.tokenizer:
            raise ValueError('--max-length needs --tokenizer (the backbone: a model folder or hub id)')
        length = (PromptLength(args.tokenizer, args.thinking == 'true', template_type=args.template,
                               model_type=args.model_type), args.max_length)
    _run(plan, args.out, args.seed, args.strict, length)
    return 0


def cmd_convert(args) -> int:
    _run([(args.source, args.limit, 'local', args.input)], args.output, args.seed, args.strict)
    return 0


def cmd_demo(args) -> int:
    """The bundled demo training set: every fixture dialogue of every source, offline, deterministic."""
    plan = [(name, None, 'local', str(fixture_path(name))) for name in SOURCES]
    _run(plan, args.out, DEMO_SEED, strict=True)
    return 0


def add_parsers(sub) -> None:
    p = sub.add_parser('build', help='sample sources (hub or local files) into one training jsonl')
    p.add_argument('--sources', required=True, help='e.g. toolace:2000,hammer:1000,xlam_mt:11000,xlam:30000')
    p.add_argument('--out', required=True)
    p.add_argument('--input', action='append', metavar='SOURCE=PATH',
                   help='read SOURCE from a local file; repeat for several files of one source (ids are then '
                        'prefixed with the file name)')
    p.add_argument('--hub', choices=['hf', 'modelscope'], default='hf', help='loader for sources without --input')
    p.add_argument('--seed', type=int, default=42)
    p.add_argument('--strict', action='store_true', help='any skipped row is an error naming the row')
    p.add_argument('--print-plan', action='store_true', help='print what would be loaded from where, and exit')
    p.add_argument('--max-length', type=int, default=None, metavar='TOKENS',
                   help="leave out instances whose prompt the backbone's template makes longer (RL drops them; "
                        'data_prep/length_filter.py)')
    p.add_argument('--tokenizer', default=None, help="with --max-length: the backbone's model folder or hub id")
    p.add_argument('--thinking', choices=['true', 'false'], default='false', help='with --max-length')
    p.add_argument('--template', default=None, help='with --max-length: ms-swift template type')
    p.add_argument('--model-type', default=None, help='with --max-length: ms-swift model type')
    p.set_defaults(func=cmd_build)

    p = sub.add_parser('convert', help='convert one local raw file of one source')
    p.add_argument('--source', required=True, choices=list(SOURCES))
    p.add_argument('--input', required=True)
    p.add_argument('--output', required=True)
    p.add_argument('--seed', type=int, default=42)
    p.add_argument('--limit', type=int, default=None, help='sample this many dialogues (seeded)')
    p.add_argument('--strict', action='store_true')
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser('demo', help='build the bundled demo training set from the fixtures (offline)')
    p.add_argument('--out', required=True)
    p.set_defaults(func=cmd_demo)


__all__ = ['add_parsers', 'build_plan', 'parse_sources']
