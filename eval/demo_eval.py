"""The demo's evaluation (issue 20): a generation cap taken from the data, and a before/after table whose
numbers mean something.

    python -m eval.demo_eval cap --tokenizer MODEL_DIR --bfcl-categories simple_python --bfcl-limit 20 \
        --heldout ROWS.jsonl --heldout-limit 20 --apibank-sample --out cap.json
    python -m eval.demo_eval report --results RESULTS_DIR --cap cap.json --before NAME --after NAME \
        [--require-uncut] [--out table.md]

**Cap.** The CPU model is served with a generation cap (an uncapped 135M model can ramble for minutes on two
cores), and a cap below the answer cuts every tool call mid-JSON (a 48-token cap made the demo's table all
zeros). The cap is computed from the evaluated cases: for each case the answer the warm start is trained to
write (:func:`gold_completion`: ``<think>`` + the templated plan ``</think>`` + the hermes call, exactly the
SFT target of ``data_prep.sft``) is tokenized with the model's tokenizer (+1 for the end-of-turn token); the
cap is the longest such answer times ``CAP_FACTOR`` (room for a plan worded differently), rounded up to a
multiple of 16. A case whose answer needs more than ``--ceiling`` tokens is left out (and counted), so one
giant case cannot make every rambling answer slow.

**Report.** For each benchmark the same cases for the model before (the warm start) and after (AWPO):
cases scored, correct, accuracy and its 95 % Wilson interval (``scipy.stats.binomtest``), and the answers the
cap cut (an answer that used every token of the cap). A cut answer is left out of the accuracy and listed;
``--require-uncut`` (the demo's ``--quick`` path in CI) fails when the cap cut an answer while it wrote a tool
call (an opened ``<tool_call>`` without its end: the cap's fault, issue 20's bug); an answer that ran past
1.5 x the longest gold answer without a call in progress is the model's failure, left out and listed.
Columns: BFCL ``simple_python`` (bfcl-eval's AST checker), the held-out rows of the BFCL live split
(``cpu_model.heldout``: format = S_format, exec = S_exec; a case counts as correct for the interval when
S_exec = 1), the API-Bank sample (exact call match).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

CAP_FACTOR = 1.5
CAP_ROUND = 16
DEFAULT_CEILING = 384


# ---------------------------------------------------------------------------------------------------------
# The cap (pure)
# ---------------------------------------------------------------------------------------------------------
def gold_completion(calls: List[dict]) -> str:
    """The text the warm start is trained to write for ``calls``: ``data_prep.sft``'s SFT target with the
    templated plan of ``data_prep.bfcl_live`` as its think block."""
    from data_prep.bfcl_live import plan_text
    from data_prep.sft import sft_target
    return sft_target({'reference_rationale': plan_text(calls), 'ground_truth': json.dumps(calls)})


def cap_from_lengths(lengths: Dict[str, int], ceiling: int = DEFAULT_CEILING, factor: float = CAP_FACTOR,
                     round_to: int = CAP_ROUND) -> Dict[str, Any]:
    """{case id: tokens its answer needs} -> the cap, the cases kept and the cases left out (> ``ceiling``)."""
    if not lengths:
        raise ValueError('no cases to derive a generation cap from')
    kept = {k: n for k, n in lengths.items() if n <= ceiling}
    left_out = sorted(k for k, n in lengths.items() if n > ceiling)
    if not kept:
        raise ValueError(f'every case needs more than {ceiling} tokens: raise --ceiling')
    longest = max(kept.values())
    cap = int(math.ceil(longest * factor / round_to) * round_to)
    return {'cap': cap, 'longest': longest, 'longest_case': max(kept, key=kept.get), 'factor': factor,
            'ceiling': ceiling, 'kept': sorted(kept), 'left_out': left_out, 'lengths': lengths}


def answer_tokens(text: str, tokenizer) -> int:
    """Tokens of an answer as the model writes it: its text plus the end-of-turn token."""
    return len(tokenizer.encode(text, add_special_tokens=False)) + 1


# ---------------------------------------------------------------------------------------------------------
# Where the evaluated cases' gold calls come from
# ---------------------------------------------------------------------------------------------------------
def bfcl_gold(categories: Sequence[str], limit: Optional[int]) -> Dict[str, List[dict]]:
    """{case id: gold calls} of the first ``limit`` cases of each BFCL category (bfcl-eval's own data and
    answer keys, first accepted value of each parameter: the ids ``eval.bfcl --limit`` runs)."""
    from data_prep.bfcl_live import bfcl_data_dir, gold_calls, load_category
    data = bfcl_data_dir()
    out = {}
    for cat in categories:
        pairs = load_category(data, cat)
        for case, answer in (pairs[:limit] if limit else pairs):
            out[case['id']] = gold_calls(answer, case['id'])
    return out


def heldout_gold(rows_path: Path, limit: Optional[int]) -> Dict[str, List[dict]]:
    from cpu_model.heldout import read_rows
    return {f'heldout:{r.get("dialogue_id")}': json.loads(r['ground_truth']) for r in read_rows(rows_path, limit)}


def apibank_gold(limit: Optional[int], levels: Sequence[int] = (1, 2, 3)) -> Dict[str, List[dict]]:
    from eval.apibank import SAMPLE_DIR, load_cases
    return {f'apibank:{c.case_id}': [c.gold] for c in load_cases(list(levels), str(SAMPLE_DIR), limit)}


# ---------------------------------------------------------------------------------------------------------
# The report (pure)
# ---------------------------------------------------------------------------------------------------------
def wilson(k: int, n: int, level: float = 0.95) -> Tuple[Optional[float], Optional[float]]:
    """The Wilson score interval of k successes in n trials (scipy), (None, None) for n = 0."""
    if n == 0:
        return None, None
    from scipy.stats import binomtest
    ci = binomtest(k, n).proportion_ci(confidence_level=level, method='wilson')
    return float(ci.low), float(ci.high)


def summarize(outcomes: Dict[str, bool], cut: Iterable[str] = ()) -> Dict[str, Any]:
    """{case: correct} + the cut cases -> n scored (cut ones left out), correct, accuracy, Wilson interval."""
    cut = sorted(set(cut) & set(outcomes))
    scored = {k: v for k, v in outcomes.items() if k not in cut}
    n, k = len(scored), sum(bool(v) for v in scored.values())
    lo, hi = wilson(k, n)
    return {'n': n, 'correct': k, 'acc': (k / n if n else None), 'ci': [lo, hi], 'cut': cut}


def render_table(rows: List[Tuple[str, Dict[str, Any], Dict[str, Any]]], before: str, after: str) -> str:
    """Markdown table: benchmark, then for each model cases / accuracy [95 % CI] / cut."""
    def cell(s):
        if s is None:
            return 'not run'
        if s['acc'] is None:
            return f'0 cases (cut {len(s["cut"])})'
        lo, hi = s['ci']
        return f'{s["correct"]}/{s["n"]} = {s["acc"]:.2f} [{lo:.2f}, {hi:.2f}]' + (
            f', cut {len(s["cut"])}' if s['cut'] else '')
    lines = [f'| benchmark (same cases) | before: {before} | after: {after} |', '|---|---|---|']
    for name, b, a in rows:
        lines.append(f'| {name} | {cell(b)} | {cell(a)} |')
    return '\n'.join(lines)


def overlap_note(rows: List[Tuple[str, Dict[str, Any], Dict[str, Any]]]) -> str:
    """One sentence per benchmark: do the two 95 % intervals overlap (then the difference is noise)?"""
    notes = []
    for name, b, a in rows:
        if not b or not a or b['acc'] is None or a['acc'] is None:
            continue
        apart = b['ci'][1] < a['ci'][0] or a['ci'][1] < b['ci'][0]
        d = a['acc'] - b['acc']
        notes.append(f'{name}: {d:+.2f} ' + ('(the intervals do not overlap)' if apart else
                                                '(intervals overlap: no evidence of a change)'))
    return '; '.join(notes)


def comparison_line(rows: List[Tuple[str, Dict[str, Any], Dict[str, Any]]], before: str) -> str:
    """The table's note on differences: the overlap of each pair of intervals, or, when no benchmark has both
    models (``--quick`` evaluates only the trained one), that there is nothing to compare."""
    note = overlap_note(rows)
    if note:
        return f'With this few cases a difference is usually noise: {note}.'
    return (f'No before/after comparison: {before} was not evaluated on these cases (the default demo does; '
            f'--quick evaluates only the trained model).')


# ---------------------------------------------------------------------------------------------------------
# Reading the evaluators' files
# ---------------------------------------------------------------------------------------------------------
def _jsonl(path: Path) -> List[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def cut_inside_call(text: Any) -> bool:
    """An answer cut while it wrote a tool call: a ``<tool_call>`` opened and not closed (issue 20's bug: the
    right call, cut at ``</``). An answer that ran on without opening a call is the model's failure, not the
    cap's."""
    if not isinstance(text, str):
        return False
    return text.count('<tool_call>') > text.count('</tool_call>')


def _numbers(x: Any) -> List[float]:
    """Every number in ``x``: bfcl-eval writes one token count (single turn) or a list per turn and step."""
    if isinstance(x, bool):
        return []
    if isinstance(x, (int, float)):
        return [x]
    if isinstance(x, list):
        return [n for item in x for n in _numbers(item)]
    return []


def bfcl_outcomes(run_dir: Path, cap: Optional[int]):
    """({case id: correct}, cut ids, ids cut inside a call) of a BFCL run: ``bfcl.cases.jsonl`` for correctness,
    bfcl-eval's result files for the tokens each answer used (``output_token_count``; a cut answer used all
    of ``cap``) and its text."""
    cases = _jsonl(run_dir / 'bfcl.cases.jsonl')
    if not cases:
        return None
    outcomes = {c['id']: bool(c['correct']) for c in cases}
    cut, in_call = [], []
    for p in sorted((run_dir / 'bfcl_work' / 'result').rglob('*_result.json')):
        for rec in _jsonl(p):
            if cap and max(_numbers(rec.get('output_token_count')), default=0) >= cap:
                cut.append(rec['id'])
                if cut_inside_call(rec.get('result')):
                    in_call.append(rec['id'])
    return outcomes, cut, in_call


def heldout_outcomes(path: Path, cap: Optional[int]):
    """({case: S_exec == 1}, cut ids, ids cut inside a call, summary) of a ``cpu_model.heldout --out`` file."""
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    outcomes, cut, in_call = {}, [], []
    for c in data['cases']:
        cid = f'heldout:{c["id"]}'
        outcomes[cid] = c.get('exec', 0.0) == 1.0
        if c.get('finish_reason') == 'length' or (cap and (c.get('completion_tokens') or 0) >= cap):
            cut.append(cid)
            if cut_inside_call(c.get('completion')):
                in_call.append(cid)
    return outcomes, cut, in_call, data['summary']


def apibank_outcomes(run_dir: Path, cap: Optional[int]):
    """({case: correct}, cut ids, ids cut inside a call) of an API-Bank run (``finish_reason`` length = cut)."""
    cases = _jsonl(run_dir / 'apibank.cases.jsonl')
    if not cases:
        return None
    outcomes = {f'apibank:{c["case_id"]}': bool(c['correct']) for c in cases}
    cut = [c for c in cases
           if c.get('finish_reason') == 'length' or (cap and (c.get('completion_tokens') or 0) >= cap)]
    return (outcomes, [f'apibank:{c["case_id"]}' for c in cut],
            [f'apibank:{c["case_id"]}' for c in cut if cut_inside_call(c.get('response'))])


def report(results: Path, before: str, after: str, cap: Optional[int]) -> Dict[str, Any]:
    """The before/after rows (same cases: only the ids both runs have are compared)."""
    rows, cut_all, in_call_all, extra = [], [], [], {}
    readers = [('BFCL simple_python', lambda d: bfcl_outcomes(d, cap)),
               ('held-out rows, S_exec = 1', lambda d: (heldout_outcomes(d / 'heldout.json', cap) or [None])[:3]
                if (d / 'heldout.json').is_file() else None),
               ('API-Bank sample', lambda d: apibank_outcomes(d, cap))]
    for name, read in readers:
        b, a = read(results / before), read(results / after)
        if not b and not a:
            continue
        common = set(b[0]) & set(a[0]) if b and a else set((b or a)[0])
        sb = summarize({k: v for k, v in b[0].items() if k in common}, b[1]) if b else None
        sa = summarize({k: v for k, v in a[0].items() if k in common}, a[1]) if a else None
        rows.append((name, sb, sa))
        cut_all += [(before, c) for c in (sb or {}).get('cut', [])] + [(after, c) for c in (sa or {}).get('cut', [])]
        in_call_all += [(n, c) for n, r in ((before, b), (after, a)) if r for c in r[2] if c in common]
    for label, name in (('before', before), ('after', after)):
        h = heldout_outcomes(results / name / 'heldout.json', cap)
        if h:
            extra[label] = {k: round(h[3][k], 3) for k in ('n', 'format', 'exec', 'calls') if k in h[3]}
    return {'rows': rows, 'cut': cut_all, 'cut_in_call': in_call_all, 'heldout_means': extra}


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(prog='python -m eval.demo_eval', description=__doc__.split('\n\n')[0])
    sub = p.add_subparsers(dest='cmd', required=True)
    c = sub.add_parser('cap', help='the generation cap from the evaluated cases (JSON; the cap alone on stdout)')
    c.add_argument('--tokenizer', required=True, help='model folder whose tokenizer counts the tokens')
    c.add_argument('--bfcl-categories', default='simple_python')
    c.add_argument('--bfcl-limit', type=int, default=None)
    c.add_argument('--heldout', type=Path, default=None, help='held-out rows (data_prep bfcl-split heldout.jsonl)')
    c.add_argument('--heldout-limit', type=int, default=None)
    c.add_argument('--apibank-sample', action='store_true')
    c.add_argument('--apibank-limit', type=int, default=None, help='first N sample cases of each level')
    c.add_argument('--ceiling', type=int, default=DEFAULT_CEILING,
                   help='cases whose answer needs more tokens are left out (default %(default)s)')
    c.add_argument('--out', type=Path, required=True)
    r = sub.add_parser('report', help='the before/after table')
    r.add_argument('--results', type=Path, required=True)
    r.add_argument('--cap', type=Path, default=None, help='the cap file (cut = an answer that used all of it)')
    r.add_argument('--before', required=True)
    r.add_argument('--after', required=True)
    r.add_argument('--out', type=Path, default=None, help='also write the table (markdown) here')
    r.add_argument('--require-uncut', action='store_true',
                   help='exit 1 if the cap cut an answer while it wrote a tool call (CI); other cut answers are '
                        'left out of the accuracy and listed')
    args = p.parse_args(argv)
    if args.cmd == 'cap':
        from transformers import AutoTokenizer
        tok = AutoTokenizer.from_pretrained(args.tokenizer)
        golds: Dict[str, List[dict]] = {}
        cats = [x for x in args.bfcl_categories.split(',') if x]
        if cats:
            golds.update(bfcl_gold(cats, args.bfcl_limit))
        if args.heldout:
            golds.update(heldout_gold(args.heldout, args.heldout_limit))
        if args.apibank_sample:
            golds.update(apibank_gold(args.apibank_limit))
        lengths = {k: answer_tokens(gold_completion(v), tok) for k, v in golds.items()}
        out = cap_from_lengths(lengths, ceiling=args.ceiling)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(out, indent=1) + '\n')
        print(f'[demo_eval] cap {out["cap"]} new tokens: longest answer {out["longest"]} tokens '
              f'({out["longest_case"]}) x {CAP_FACTOR}; {len(out["kept"])} cases, {len(out["left_out"])} left out '
              f'(answer > {args.ceiling} tokens){": " + ", ".join(out["left_out"]) if out["left_out"] else ""}',
              file=sys.stderr)
        print(out['cap'])
        return 0
    cap = json.loads(args.cap.read_text())['cap'] if args.cap else None
    rep = report(args.results, args.before, args.after, cap)
    if not rep['rows']:
        print(f'[demo_eval] no results of {args.before} / {args.after} under {args.results}', file=sys.stderr)
        return 2
    table = render_table(rep['rows'], args.before, args.after)
    lines = [table, '',
             f'Each cell: correct/cases = accuracy [95 % Wilson interval]; the same cases before and after'
             + (f'; generation cap {cap} new tokens (from the data, eval.demo_eval cap)' if cap else '') + '.',
             comparison_line(rep['rows'], args.before)]
    for label, m in rep['heldout_means'].items():
        lines.append(f'Held-out means ({label}): ' + ', '.join(f'{k} {v}' for k, v in m.items()))
    if rep['cut']:
        lines.append('Cut by the cap (left out above): ' + ', '.join(f'{n}:{c}' for n, c in rep['cut']))
        lines.append('Of these, cut while writing a tool call: ' +
                     (', '.join(f'{n}:{c}' for n, c in rep['cut_in_call']) or 'none') + '.')
    else:
        lines.append('No answer was cut by the generation cap.')
    text = '\n'.join(lines)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + '\n')
    if args.require_uncut and rep['cut_in_call']:
        print(f'[demo_eval] {len(rep["cut_in_call"])} answers were cut by the generation cap {cap} while writing '
              f'a tool call: raise the cap', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
