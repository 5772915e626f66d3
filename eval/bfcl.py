"""BFCL (Berkeley Function-Calling Leaderboard) through the ``bfcl-eval`` package (paper Tables 1, 2, 5).

    python -m eval.bfcl --model-path CKPT --name my-run [--categories non_live,live,multi_turn] [--limit N]

bfcl-eval's own data, handlers, multi-turn executor and checkers do all the work; this module only serves
the checkpoint, registers it with bfcl-eval at run time (:mod:`eval.bfcl_entry`: bfcl-eval's
``OpenAICompletionsHandler`` in FC mode against the server, which speaks the model's hermes / Qwen3-FC
``<tool_call>`` format), runs ``bfcl generate`` and ``bfcl evaluate`` and reads the score files they write.

bfcl-eval pins numpy/networkx/filelock versions that ms-swift's environment should not take, so it runs
from its own interpreter: ``$AWPO_BFCL_PYTHON``, else ``.venv-eval/bin/python`` beside the repository or
``/work/venv-eval/bin/python``, else the current one if it imports ``bfcl_eval`` (eval/SETUP_NOTES.md).

Columns (from bfcl-eval's ``score/data_*.csv``, i.e. the package's own aggregation):
* multi-turn OA = unweighted mean of Base, Miss Func, Miss Param, Long Context;
* NL = "Non-Live Overall Acc" (unweighted mean of simple [mean of python/java/js], multiple, parallel,
  parallel_multiple; = v3's "Non-Live AST Acc"); bfcl-eval 2026's "Live Overall Acc" (case-weighted mean of
  live simple/multiple/parallel/parallel_multiple) is read as ``L_ast``;
* single-turn OA (Table 1) = (NL + L) / 2, as the paper's Table 1 rows compute it;
* Overall (Tables 2, 5) and L: BFCL v3's official ``total_overall_accuracy`` and "Live Acc", computed from
  the per-category scores by :mod:`eval.bfcl_overall` (v3's non-live and live overalls include the
  irrelevance / relevance categories, so Overall is not (NL + L + MT) / 3; that mean and the AST-only live
  column of bfcl-eval 2026 are kept as ``Overall_mean3`` / ``L_ast``). bfcl-eval 2026's own v4 Overall
  (weights 10/10/10/30/40 over non-live, live, irrelevance, multi-turn, agentic) is kept as
  ``overall_v4_official`` but is not the paper's number (it needs the agentic categories).
With ``--limit`` or a subset of categories, a column whose categories were not all run in full is flagged
in ``scores['partial_columns']``: bfcl-eval counts a missing category as 0 in its means.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

from eval.bfcl_overall import official_scores

REGISTRY_NAME = 'awpo-local-FC'
ENTRY = Path(__file__).with_name('bfcl_entry.py')
REPO = Path(__file__).resolve().parents[1]

# Test categories behind each paper column (bfcl-eval names).
NON_LIVE = ['simple_python', 'simple_java', 'simple_javascript', 'multiple', 'parallel', 'parallel_multiple']
LIVE = ['live_simple', 'live_multiple', 'live_parallel', 'live_parallel_multiple']
MULTI_TURN = {'Base': 'multi_turn_base', 'MissFunc': 'multi_turn_miss_func',
              'MissParam': 'multi_turn_miss_param', 'LongContext': 'multi_turn_long_context'}
COLLECTIONS = {'non_live': NON_LIVE + ['irrelevance'],
               'live': LIVE + ['live_irrelevance', 'live_relevance'],
               'multi_turn': list(MULTI_TURN.values())}


class BFCLError(RuntimeError):
    pass


def find_bfcl_python() -> str:
    """The interpreter that has bfcl-eval (see module doc)."""
    env = os.environ.get('AWPO_BFCL_PYTHON')
    if env:
        if not Path(env).exists():
            raise BFCLError(f'AWPO_BFCL_PYTHON={env} does not exist')
        return env
    for cand in (REPO / '.venv-eval' / 'bin' / 'python', Path('/work/venv-eval/bin/python')):
        if cand.exists():
            return str(cand)
    import importlib.util
    if importlib.util.find_spec('bfcl_eval'):
        return sys.executable
    raise BFCLError('bfcl-eval not found: create its environment (eval/SETUP_NOTES.md) or set AWPO_BFCL_PYTHON')


def expand_categories(spec: str) -> List[str]:
    """``non_live,live,multi_turn`` (collections) or single categories -> the categories run."""
    out: List[str] = []
    for item in [s.strip() for s in spec.split(',') if s.strip()]:
        for cat in COLLECTIONS.get(item, [item]):
            if cat not in out:
                out.append(cat)
    return out


# ---------------------------------------------------------------------------------------------------------
# Reading bfcl-eval's score files (pure)
# ---------------------------------------------------------------------------------------------------------
def _pct(cell: Optional[str]) -> Optional[float]:
    """``'12.50%'`` -> 12.5; ``'N/A'`` / missing -> None."""
    if cell is None:
        return None
    cell = cell.strip()
    if not cell.endswith('%'):
        return None
    return round(float(cell[:-1]), 2)


def read_csv_row(path: Path, model_display: str) -> Dict[str, str]:
    if not path.is_file():
        return {}
    with open(path, newline='') as f:
        for row in csv.DictReader(f):
            if row.get('Model') == model_display:
                return row
    return {}


def category_scores(score_dir: Path) -> Dict[str, Dict[str, Any]]:
    """{category: {accuracy (%), correct_count, total_count}} from the header line of every
    ``BFCL_v4_<category>_score.json`` under ``score_dir`` (one model's folder)."""
    out = {}
    for p in sorted(score_dir.rglob('*_score.json')):
        cat = p.name.split('_', 2)[2].rsplit('_score.json', 1)[0]
        with open(p) as f:
            head = json.loads(f.readline())
        out[cat] = {'accuracy': round(100.0 * head['accuracy'], 2), 'correct_count': head['correct_count'],
                    'total_count': head['total_count']}
    return out


def paper_columns(score_root: Path, model_display: str, ran: List[str], full: bool) -> Dict[str, Any]:
    """The paper's BFCL columns from bfcl-eval's CSVs (``score_root/data_*.csv``), formulas in module doc.

    ``ran``: categories that were run; ``full``: whether each was run on all its cases (no --limit).
    """
    nl = read_csv_row(score_root / 'data_non_live.csv', model_display)
    lv = read_csv_row(score_root / 'data_live.csv', model_display)
    mt = read_csv_row(score_root / 'data_multi_turn.csv', model_display)
    ov = read_csv_row(score_root / 'data_overall.csv', model_display)
    s: Dict[str, Any] = {
        'NL': _pct(nl.get('Non-Live Overall Acc')), 'L': _pct(lv.get('Live Overall Acc')),
        'MT': _pct(mt.get('Multi Turn Overall Acc')),
        'Base': _pct(mt.get('Base')), 'MissFunc': _pct(mt.get('Miss Func')),
        'MissParam': _pct(mt.get('Miss Param')), 'LongContext': _pct(mt.get('Long Context')),
        'overall_v4_official': _pct(ov.get('Overall Acc')),
    }
    for col, cats in (('NL', NON_LIVE), ('L', LIVE), ('MT', list(MULTI_TURN.values()))):
        if not set(cats) & set(ran):
            s[col] = None  # bfcl-eval prints 0% for an overall none of whose categories ran: "not run"
    s['ST'] = round((s['NL'] + s['L']) / 2, 2) if None not in (s['NL'], s['L']) else None
    s['Overall'] = (round((s['NL'] + s['L'] + s['MT']) / 3, 2)
                    if None not in (s['NL'], s['L'], s['MT']) else None)
    needs = {'NL': NON_LIVE, 'L': LIVE, 'MT': list(MULTI_TURN.values()),
             **{k: [v] for k, v in MULTI_TURN.items()}}
    needs['ST'] = NON_LIVE + LIVE
    needs['Overall'] = NON_LIVE + LIVE + list(MULTI_TURN.values())
    s['partial_columns'] = sorted(col for col, cats in needs.items()
                                  if s.get(col) is not None and (not full or not set(cats) <= set(ran)))
    return s


def collect_cases(result_dir: Path, score_dir: Path) -> List[Dict[str, Any]]:
    """Per-case records: bfcl-eval's result lines plus ``correct`` (a case is wrong iff its id is listed
    in the category's score file, which lists only the failures after the header)."""
    wrong: Dict[str, Dict[str, Any]] = {}
    for p in score_dir.rglob('*_score.json'):
        with open(p) as f:
            f.readline()
            for line in f:
                if line.strip():
                    rec = json.loads(line)
                    wrong[rec['id']] = rec
    cases = []
    for p in sorted(result_dir.rglob('*_result.json')):
        with open(p) as f:
            for line in f:
                if line.strip():
                    rec = json.loads(line)
                    fail = wrong.get(rec['id'])
                    cases.append({'id': rec['id'], 'correct': fail is None, 'result': rec.get('result'),
                                  'error': (fail or {}).get('error'), 'error_type': (fail or {}).get('error_type')})
    return cases


# ---------------------------------------------------------------------------------------------------------
# Glue
# ---------------------------------------------------------------------------------------------------------
# ~15k requests per checkpoint (every category): one at a time leaves vLLM's continuous batching idle.
# 64 in flight keeps a vLLM engine of a <= 8B model busy (it batches up to 256 sequences) without queueing
# requests past their timeout; a multi-turn case is sequential inside, so the cases run side by side.
# swift deploy batches up to its --max_batch_size waiting requests (eval/serve.py SWIFT_MAX_BATCH): as many.
GPU_THREADS = 64


def default_threads(backend: str) -> int:
    from eval.serve import SWIFT_MAX_BATCH
    return SWIFT_MAX_BATCH if backend == 'swift' else GPU_THREADS


def run_bfcl(py: str, workdir: Path, base_url: str, served: str, bfcl_args: List[str], *,
             limit: Optional[int] = None, categories: str = '', log=None) -> None:
    env = dict(os.environ, BFCL_PROJECT_ROOT=str(workdir), OPENAI_BASE_URL=base_url,
               OPENAI_API_KEY=os.environ.get('OPENAI_API_KEY', 'EMPTY'))
    cmd = [py, str(ENTRY), '--served-name', served, '--registry-name', REGISTRY_NAME]
    if limit:
        cmd += ['--ids-categories', categories, '--limit', str(limit)]
    cmd += ['--'] + bfcl_args
    print(f'[bfcl] {" ".join(cmd)}', file=sys.stderr)
    r = subprocess.run(cmd, env=env, cwd=str(workdir), stdout=log, stderr=subprocess.STDOUT)
    if r.returncode != 0:
        raise BFCLError(f'bfcl {bfcl_args[0]} failed (exit {r.returncode}); see {getattr(log, "name", "output")}')


def main(argv: Optional[List[str]] = None) -> int:
    from eval.serve import add_server_args, server_from_args, served_model_name, ServeError
    from eval import results as R
    p = argparse.ArgumentParser(prog='python -m eval.bfcl', description=__doc__.split('\n\n')[0])
    add_server_args(p)
    p.add_argument('--name', required=True, help='run name: results/<name>/bfcl.json')
    p.add_argument('--categories', default='non_live,live,multi_turn',
                   help='bfcl-eval categories or collections, comma-separated')
    p.add_argument('--limit', type=int, default=None, help='first N cases of each category')
    p.add_argument('--num-threads', type=int, default=None,
                   help='concurrent requests of bfcl generate (default: see default_threads)')
    p.add_argument('--temperature', type=float, default=0.001, help="bfcl-eval's default")
    p.add_argument('--paper-row', default=None, help='paper row this run reproduces, e.g. Qwen3-8B/AWPO')
    p.add_argument('--results-dir', default='results')
    p.add_argument('--on-exists', default='refuse', choices=R.ON_EXISTS)
    args = p.parse_args(argv)
    cats = expand_categories(args.categories)
    if args.num_threads is None:
        from eval.serve import pick_backend
        args.num_threads = default_threads('url' if args.base_url else pick_backend(args.backend))
    py = find_bfcl_python()
    paths = R.plan_run(args.results_dir, args.name, 'bfcl', args.on_exists)
    work = paths.workdir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    with open(work / 'bfcl.log', 'a') as log:
        try:
            with server_from_args(args, log_path=str(work / 'server.log')) as url:
                served = served_model_name(url, args.served_name if args.base_url else
                                           (args.served_name or 'awpo-eval'))
                gen = ['generate', '--model', REGISTRY_NAME, '--temperature', str(args.temperature),
                       '--num-threads', str(args.num_threads)]
                gen += ['--run-ids'] if args.limit else ['--test-category', ','.join(cats)]
                run_bfcl(py, work, url, served, gen, limit=args.limit, categories=','.join(cats), log=log)
        except ServeError as e:
            print(f'[bfcl] error: {e}', file=sys.stderr)
            return 2
        run_bfcl(py, work, 'http://unused/v1', 'unused',
                 ['evaluate', '--model', REGISTRY_NAME, '--test-category', ','.join(cats), '--partial-eval'],
                 log=log)
    display = f'{REGISTRY_NAME} (FC)'  # as eval/bfcl_entry.py registers it
    model_dir = REGISTRY_NAME.replace('/', '_')
    categories = category_scores(work / 'score' / model_dir)
    scores = official_scores(paper_columns(work / 'score', display, cats, full=args.limit is None), categories)
    scores['categories'] = categories
    paths.cases.write_text('')  # rebuilt in full from bfcl-eval's files (which are what a re-run resumes from)
    for rec in collect_cases(work / 'result' / model_dir, work / 'score' / model_dir):
        R.append_case(paths.cases, rec)
    summary = R.write_summary(
        paths, benchmark='bfcl', name=args.name,
        model={'model_path': args.model_path, 'base_url': args.base_url, 'base_model': args.base_model},
        scores=scores,
        settings={'categories': cats, 'limit': args.limit, 'temperature': args.temperature,
                  'num_threads': args.num_threads,
                  'handler': 'bfcl_eval OpenAICompletionsHandler (FC) via the server\'s hermes tool parser',
                  'bfcl_python': py, 'workdir': str(work),
                  'overall_formula': 'BFCL v3 total_overall_accuracy: mean of non-live (4 AST groups + '
                                     'irrelevance), live (case-weighted, with irrelevance + relevance), '
                                     'multi-turn (eval/bfcl_overall.py); Overall_mean3 = (NL + L_ast + MT) / 3',
                  'single_turn_formula': '(NL + L) / 2',
                  'paper_row': args.paper_row},
        extra={'wall_time_s': round(time.time() - t0, 1)})
    show = {k: scores[k] for k in ('Overall', 'MT', 'Base', 'MissFunc', 'MissParam', 'LongContext', 'ST', 'NL',
                                   'L')}
    print(json.dumps({'columns': show, 'categories': scores['categories']}))
    print(f'[bfcl] wrote {summary}, {paths.cases} and bfcl-eval files under {work}', file=sys.stderr)
    return 0


if __name__ == '__main__':
    sys.exit(main())
