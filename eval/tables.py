"""The paper's Tables 1-5 with our runs beside the published numbers.

    python -m eval.tables --runs results/ --out results/tables.md [--map my-run=Qwen3-4B-2507/AWPO ...]

Published numbers: ``eval/paper_results.json`` (transcribed from the paper). Our numbers: the latest
``results/<run>/<benchmark>.json`` of every run (:func:`eval.results.load_runs`).

A run is placed under the paper row it reproduces by ``--map RUN=GROUP/METHOD`` (Table 1 has no groups:
``RUN=AWPO``), or by ``settings.paper_row`` in its result file; its line shows each cell as
``ours (Δ ours - paper)``. Rows the paper does not have but our recipes run beside its baselines
(:data:`OUR_ROWS`: GDPO in Tables 2-3, the gate-rule readings in Table 5) are placed the same way
(``GROUP/GDPO``) under a line marked ``(ours, not in the paper)``, with no Δ. Runs not mapped are listed after
the paper rows of each table. A cell whose benchmark the run has not been evaluated on reads ``not run``; a cell computed on a subset (``--limit`` or
missing categories) carries ``*``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

PAPER = Path(__file__).with_name('paper_results.json')
BENCHMARKS = ('bfcl', 'apibank', 'mmlu_pro')
NOT_RUN = 'not run'
# Methods our recipes run that are not rows of the paper (shells/recipes/*.sh METHOD_PAPER_ROW): method ->
# (the tables whose groups they join, what they are). Rendered after each group's paper rows, marked as ours.
OUR_ROWS = {
    'GDPO': (('table2', 'table3'), 'GDPO, arXiv 2601.05242: ms-swift --scale_rewards gdpo on the outcome + judge '
                                   'rewards (shells/recipes/gdpo.sh)'),
    'gate rule eq25_plus_flat': (('table5',), 'AWPO, gate Eq. 25 + the judge alone in flat-outcome groups '
                                              '(shells/configs/awpo_gate_plus_flat.yaml)'),
    'gate rule flat_only': (('table5',), 'AWPO, the judge only in flat-outcome groups '
                                         '(shells/configs/awpo_gate_flat_only.yaml)'),
}
OURS_MARK = '(ours, not in the paper)'


def load_paper(path: Path = PAPER) -> Dict[str, Any]:
    return json.loads(Path(path).read_text())


def row_key(row: Dict[str, Any]) -> str:
    return f"{row['group']}/{row['method']}" if row.get('group') else row['method']


def fmt(v: Any) -> str:
    if v is None:
        return '—'
    if isinstance(v, (int, float)):
        return f'{v:.2f}'
    return str(v)


def our_cell(run: Dict[str, Dict[str, Any]], bench: str, col: str, paper_value: Any) -> str:
    """One of our cells: value, ``*`` when partial, and the difference to the paper's value."""
    summary = run.get(bench)
    if summary is None:
        return NOT_RUN
    scores = summary.get('scores', {})
    v = scores.get(col)
    if v is None:
        return NOT_RUN
    star = '*' if col in scores.get('partial_columns', []) or summary.get('settings', {}).get('limit') else ''
    if isinstance(paper_value, (int, float)) and isinstance(v, (int, float)):
        return f'{v:.2f}{star} ({v - paper_value:+.2f})'
    return f'{fmt(v)}{star}'


def mapping(runs: Dict[str, Dict[str, Any]], maps: List[str]) -> Dict[str, List[str]]:
    """{paper row key: [run names]} from ``--map`` and the runs' own ``settings.paper_row``."""
    out: Dict[str, List[str]] = {}
    for run, benches in runs.items():
        for s in benches.values():
            row = s.get('settings', {}).get('paper_row')
            if row and run not in out.get(row, []):
                out.setdefault(row, []).append(run)
    for m in maps:
        run, sep, row = m.partition('=')
        if not sep:
            raise ValueError(f'--map {m!r}: expected RUN=GROUP/METHOD')
        if run not in runs:
            raise ValueError(f'--map {m!r}: no results for run {run!r}')
        if run not in out.get(row, []):
            out.setdefault(row, []).append(run)
    return out


def render_table(tid: str, table: Dict[str, Any], runs: Dict[str, Dict[str, Any]],
                 placed: Dict[str, List[str]]) -> str:
    cols, heads, bench = table['columns'], table['headers'], table['benchmark']
    lines = [f'### {tid.replace("table", "Table ")}', '', table['title'], '',
             '| Method | ' + ' | '.join(heads) + ' |', '|' + '---|' * (len(cols) + 1)]
    used = set()
    extra = [m for m, (tids, _) in OUR_ROWS.items() if tid in tids]

    def our_rows(group):  # rows of ours (OUR_ROWS) in this group that have runs placed
        for method in extra:
            key = f'{group}/{method}' if group else method
            if placed.get(key):
                lines.append(f'| {method} {OURS_MARK} |' + ' — |' * len(cols))
            for run in placed.get(key, []):
                used.add(run)
                cells = ['—' if c == 'Params' else our_cell(runs[run], bench, c, None) for c in cols]
                lines.append(f'| ↳ ours: `{run}` | ' + ' | '.join(cells) + ' |')

    group = object()
    for row in table['rows']:
        if row.get('group') != group:
            if isinstance(group, str):
                our_rows(group)
            group = row.get('group')
            if group:
                lines.append(f'| **{group}** |' + ' |' * len(cols))
        vals = row['values']
        lines.append(f"| {row['method']} (paper) | " + ' | '.join(fmt(vals.get(c)) for c in cols) + ' |')
        for run in placed.get(row_key(row), []):
            used.add(run)
            cells = [fmt(vals.get(c)) if c == 'Params' else our_cell(runs[run], bench, c, vals.get(c))
                     for c in cols]
            lines.append(f'| ↳ ours: `{run}` | ' + ' | '.join(cells) + ' |')
    if isinstance(group, str):
        our_rows(group)
    others = [r for r in runs if r not in used and bench in runs[r]]
    if others:
        lines.append('| **our other runs** |' + ' |' * len(cols))
        for run in others:
            cells = ['—' if c == 'Params' else our_cell(runs[run], bench, c, None) for c in cols]
            lines.append(f'| `{run}` | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def paper_conflicts(paper: Dict[str, Any]) -> List[str]:
    """Cells where the paper prints two values for the same row and column in two tables."""
    seen: Dict[Tuple[str, str, str], Tuple[str, Any]] = {}
    out = []
    for tid, table in paper['tables'].items():
        for row in table['rows']:
            for col, v in row['values'].items():
                key = (table['benchmark'], row_key(row), col)
                if key in seen and seen[key][1] != v:
                    out.append(f'{row_key(row)} {col}: {fmt(seen[key][1])} in {seen[key][0].replace("table", "Table ")}, '
                               f'{fmt(v)} in {tid.replace("table", "Table ")}')
                seen.setdefault(key, (tid, v))
    return out


def overall_check_note(paper: Dict[str, Any], tid: str) -> Optional[str]:
    """For a BFCL table with Overall: how the printed Overall relates to its own columns (eval.bfcl_overall)."""
    table = paper['tables'][tid]
    if table['benchmark'] != 'bfcl' or 'Overall' not in table['columns']:
        return None
    from eval.bfcl_overall import paper_check
    rows = paper_check(paper, (tid,))
    gaps = [r['gap'] for r in rows]
    irr = [r['implied_irrelevance'] for r in rows]
    return (f'Overall is BFCL v3\'s official total_overall_accuracy (eval/bfcl_overall.py): its non-live part '
            f'includes irrelevance, so it is not (NL + L + MT) / 3; the printed Overall sits {min(gaps):.2f}-'
            f'{max(gaps):.2f} below that mean, which the official formula reproduces with a non-live irrelevance '
            f'score of {min(irr):.2f}-{max(irr):.2f} % (not printed in the paper). Our runs: Overall is the '
            'official formula; the plain mean is kept in the summary as Overall_mean3.')


def render(runs: Dict[str, Dict[str, Any]], maps: List[str], paper: Optional[Dict[str, Any]] = None) -> str:
    paper = paper or load_paper()
    placed = mapping(runs, maps)
    known = {row_key(r) for t in paper['tables'].values() for r in t['rows']}
    known |= {f'{r["group"]}/{m}' for m, (tids, _) in OUR_ROWS.items() for t in tids
              for r in paper['tables'][t]['rows'] if r.get('group')}
    unknown = sorted(set(placed) - known)
    if unknown:
        raise ValueError(f'paper rows not found: {unknown} (keys look like "Qwen3-4B-2507/AWPO")')
    parts = ['# AWPO paper tables with our runs', '',
             f'Paper numbers: `{PAPER.name}`. Ours: `ours (Δ ours − paper)`; `{NOT_RUN}`: not evaluated yet; '
             '`*`: computed on a subset (--limit or missing categories); '
             f'`{OURS_MARK}`: a method of ours beside the paper\'s baselines: '
             + '; '.join(f'{m}: {what}' for m, (_, what) in OUR_ROWS.items()) + '.', '']
    conflicts = paper_conflicts(paper)
    if conflicts:
        parts += ['The paper disagrees with itself: ' + '; '.join(conflicts) + '.', '']
    for tid, table in paper['tables'].items():
        parts += [render_table(tid, table, runs, placed), '']
        for note in (paper.get('notes', {}).get(tid), overall_check_note(paper, tid)):
            if note:
                parts += [f'_Note: {note}_', '']
    return '\n'.join(parts)


def main(argv: Optional[List[str]] = None) -> int:
    from eval.results import load_runs
    p = argparse.ArgumentParser(prog='python -m eval.tables', description=__doc__.split('\n\n')[0])
    p.add_argument('--runs', default='results', help='folder of results/<run>/<benchmark>.json')
    p.add_argument('--out', default=None, help='markdown file to write (default: print)')
    p.add_argument('--map', action='append', default=[], metavar='RUN=GROUP/METHOD')
    args = p.parse_args(argv)
    if not Path(args.runs).is_dir():
        print(f'[tables] error: --runs {args.runs}: no such folder (expected results/<run>/<benchmark>.json)',
              file=sys.stderr)
        return 2
    try:
        runs = load_runs(args.runs, BENCHMARKS)
        text = render(runs, args.map)
    except ValueError as exc:  # a corrupt summary (names the file), a bad --map (names the argument)
        print(f'[tables] error: {exc}', file=sys.stderr)
        return 2
    if not runs:
        print(f'[tables] note: no result summaries under {args.runs}; every cell of ours reads "{NOT_RUN}"',
              file=sys.stderr)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
        print(f'[tables] {len(runs)} runs from {args.runs} -> {args.out}', file=sys.stderr)
    else:
        print(text)
    return 0


if __name__ == '__main__':
    sys.exit(main())
