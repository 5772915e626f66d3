"""Drop the rows RL would drop, before anyone pays for their rationales (issue 21.6).

RL runs with `--max_length MAX_LENGTH --truncation_strategy delete` (shells/recipes/common.sh): ms-swift's
GRPO strips the response and encodes each prompt with its template (`swift.rl_core.resample`); a prompt
longer than MAX_LENGTH raises MaxLengthError and the row is replaced by another. Its rationale, if paid
for, is wasted. This module measures each row exactly that way: ms-swift's own template for the backbone
(`get_processor` + `get_template`, the hermes agent template the recipes use, the backbone's thinking
mode), tools rendered into the system prompt and the whole history, then `template.encode` -> the number
of input ids. Rows over the limit are left out and reported per source (count and share).

    python -m data_prep length-filter --in data/awpo_train.jsonl --out data/awpo_train.fit.jsonl \
        --tokenizer Qwen/Qwen3-8B [--max-length 4096] [--thinking false]
    python -m data_prep rationales ... --max-length 4096 --tokenizer Qwen/Qwen3-8B   # same filter first

The default MAX_LENGTH is read from shells/recipes/common.sh. The Qwen3 backbones share one tokenizer;
thinking off renders 4 more tokens at the end of the prompt (an empty think block), so `--thinking false`
is the conservative choice for a data set shared by all three.
"""
from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from tqdm import tqdm

RECIPE = Path(__file__).resolve().parents[1] / 'shells' / 'recipes' / 'common.sh'


def recipe_max_length(path: str | Path = RECIPE) -> int:
    """MAX_LENGTH as the recipes set it (`MAX_LENGTH=4096` in shells/recipes/common.sh)."""
    m = re.search(r'^MAX_LENGTH=(\d+)\s*(#.*)?$', Path(path).read_text(encoding='utf-8'), re.M)
    if not m:
        raise ValueError(f'{path}: no MAX_LENGTH=N line')
    return int(m.group(1))


class PromptLength:
    """Prompt length in tokens as ms-swift's GRPO encodes it for the backbone `tokenizer` (a model folder or
    hub id with its tokenizer; `model_type` / `template_type` when ms-swift cannot tell them from the folder,
    e.g. 'llama' / 'chatml' for the CPU SmolLM2)."""

    def __init__(self, tokenizer: str, thinking: bool | None = None, template_type: str | None = None,
                 model_type: str | None = None, agent_template: str = 'hermes'):
        from swift import get_processor, get_template
        self.processor = get_processor(str(tokenizer), model_type=model_type)
        self.template = get_template(self.processor, template_type=template_type, agent_template=agent_template,
                                     enable_thinking=thinking, add_non_thinking_prefix=False,
                                     max_length=None, truncation_strategy='raise')
        self.template.set_mode('pt')
        self.name = f'{Path(str(tokenizer)).name} / {self.template.template_meta.template_type}'

    def __call__(self, row: dict) -> int:
        return len(self.template.encode({'messages': row['messages'], 'tools': row['tools']})['input_ids'])


@dataclass
class LengthReport:
    max_length: int
    rows: Counter = field(default_factory=Counter)      # source -> rows measured
    dropped: Counter = field(default_factory=Counter)   # source -> rows over max_length
    longest: dict = field(default_factory=dict)         # source -> longest prompt seen
    lengths: dict = field(default_factory=dict)         # source -> [lengths] (for percentiles)

    def text(self, tokenizer: str = '') -> str:
        head = f'length filter: prompts over {self.max_length} tokens' + (f' ({tokenizer})' if tokenizer else '')
        lines = [head, f'{"source":<10} {"rows":>8} {"dropped":>8} {"share":>7} {"median":>7} {"p95":>7} {"longest":>8}']
        for s in sorted(self.rows):
            lines.append(f'{s:<10} {self.rows[s]:>8} {self.dropped[s]:>8} {self.share(s):>6.1%} '
                         f'{self.pct(s, 50):>7} {self.pct(s, 95):>7} {self.longest[s]:>8}')
        n, d = sum(self.rows.values()), sum(self.dropped.values())
        lines.append(f'{"total":<10} {n:>8} {d:>8} {(d / n if n else 0):>6.1%}')
        return '\n'.join(lines)

    def share(self, source: str) -> float:
        return self.dropped[source] / self.rows[source] if self.rows[source] else 0.0

    def pct(self, source: str, q: float) -> int:
        xs = sorted(self.lengths.get(source, []))
        return xs[min(len(xs) - 1, int(q / 100 * len(xs)))] if xs else 0

    def as_dict(self) -> dict:
        return {'max_length': self.max_length,
                'sources': {s: {'rows': self.rows[s], 'dropped': self.dropped[s], 'share': round(self.share(s), 4),
                                'median': self.pct(s, 50), 'p95': self.pct(s, 95), 'longest': self.longest[s]}
                            for s in sorted(self.rows)}}


def split_by_length(rows: Iterable[dict], length_of: Callable[[dict], int], max_length: int,
                    progress: bool = False) -> tuple[list[dict], list[dict], LengthReport]:
    """(kept, dropped, report): a row is dropped when `length_of(row) > max_length` (ms-swift's rule: a prompt
    of exactly max_length tokens is kept) or when encoding it fails (ms-swift would drop it too)."""
    report = LengthReport(max_length)
    kept, dropped = [], []
    rows = list(rows)
    for row in tqdm(rows, desc='lengths', unit='row', disable=not progress):
        src = row.get('source', '?')
        try:
            n = length_of(row)
        except Exception:   # ms-swift's encode would fail the same way: the row could not train
            n = max_length + 1
        report.rows[src] += 1
        report.longest[src] = max(report.longest.get(src, 0), n)
        report.lengths.setdefault(src, []).append(n)
        if n > max_length:
            report.dropped[src] += 1
            dropped.append(row)
        else:
            kept.append(row)
    return kept, dropped, report


def apply_filter(rows: list[dict], tokenizer: str | None, max_length: int, thinking: str | bool | None = None,
                 where: str = '', report: str | None = None, template_type: str | None = None,
                 model_type: str | None = None, log=print) -> list[dict]:
    """The `rationales --max-length` step: measure, print the per-source table, write the dropped rows to
    `REPORT.too_long.jsonl` and the table to `REPORT.length_filter.json` (REPORT = the output path), return
    the rows that fit."""
    if not tokenizer:
        raise ValueError('--max-length needs --tokenizer (the backbone: a model folder or hub id)')
    think = thinking if isinstance(thinking, bool) or thinking is None else str(thinking).lower() == 'true'
    measure = PromptLength(tokenizer, think, template_type=template_type, model_type=model_type)
    kept, dropped, rep = split_by_length(rows, measure, max_length, progress=True)
    log(rep.text(measure.name))
    if report:
        with open(f'{report}.too_long.jsonl', 'w', encoding='utf-8') as f:
            for row in dropped:
                f.write(json.dumps(row, ensure_ascii=False) + '\n')
        Path(f'{report}.length_filter.json').write_text(json.dumps({**rep.as_dict(), 'input': where,
                                                                    'tokenizer': str(tokenizer)}, indent=1))
        log(f'{len(dropped)} rows over {max_length} tokens left out (no request for them): {report}.too_long.jsonl')
    return kept


def cmd_length_filter(args) -> int:
    from .manifest import atomic_writer, remove_manifest, write_manifest
    from .rationales import read_input
    data = read_input(args.inp)
    max_length = args.max_length or recipe_max_length()
    remove_manifest(args.out)
    kept = apply_filter(data.rows, args.tokenizer, max_length, args.thinking, where=args.inp, report=args.out,
                        template_type=args.template, model_type=args.model_type)
    with atomic_writer(args.out) as f:
        for row in kept:
            f.write(json.dumps(row, ensure_ascii=False) + '\n')
    write_manifest(args.out, len(kept), max_length=max_length, tokenizer=str(args.tokenizer),
                   dropped=len(data.rows) - len(kept), skipped_input=len(data.bad))
    print(f'wrote {len(kept)} of {len(data.rows)} rows to {args.out} (+ manifest)')
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser('length-filter', help="drop rows whose prompt the backbone's template makes longer than "
                                             'MAX_LENGTH (RL would drop them), per-source report')
    p.add_argument('--in', dest='inp', required=True)
    p.add_argument('--out', required=True)
    p.add_argument('--tokenizer', required=True, help="the backbone's model folder or hub id")
    p.add_argument('--max-length', type=int, default=None, help='default: MAX_LENGTH of shells/recipes/common.sh')
    p.add_argument('--thinking', choices=['true', 'false'], default='false',
                   help='thinking mode of the template (false renders the longer prompt)')
    p.add_argument('--template', default=None, help='ms-swift template type, if not the model folder\'s')
    p.add_argument('--model-type', default=None, help='ms-swift model type, if not detected from the folder')
    p.set_defaults(func=cmd_length_filter)
