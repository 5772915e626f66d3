"""MMLU-Pro (Wang et al., 2024) through evalscope against the served model (paper Table 4).

    python -m eval.mmlu_pro --model-path CKPT --name my-run [--limit N]

Runs ``evalscope eval --eval-type openai_api --api-url <server>/v1 --datasets mmlu_pro`` (evalscope's
own MMLU-Pro adapter, 5-shot chain-of-thought prompts, "ANSWER: X" extraction; data ``TIGER-Lab/MMLU-Pro``
from the hub, or ``--dataset-dir`` for a local copy) and reads the report evalscope writes to
``<work>/reports/<model>/mmlu_pro.json`` with evalscope's own ``Report`` class.

Scores (in %): ``Overall`` = the report's primary score (accuracy over all questions of the subjects run,
i.e. question-weighted), and one column per subject; Table 4 shows Math, Physics, Chemistry, Computer
Science and Biology. With ``--limit N`` (questions per subject) the numbers are flagged partial.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

# Answer budget: Qwen3-1.7B/8B are served with thinking on (as trained); a 5-shot CoT answer after a thinking
# block often passes 2048 tokens, and a cut answer has no "ANSWER: X" (scored wrong): the same bias as a short
# API-Bank cap (issue 14.6). 32768 is Qwen3's recommended output length; 5-shot prompt (~3k tokens) + 32768
# fits eval.serve's 40960-token window.
MAX_TOKENS = 32768
TABLE4_SUBJECTS = {'math': 'Math', 'physics': 'Physics', 'chemistry': 'Chemistry',
                   'computer science': 'Computer Science', 'biology': 'Biology'}


def evalscope_cmd(base_url: str, served: str, work_dir: Path, limit: Optional[int] = None,
                  dataset_dir: Optional[str] = None, max_tokens: int = MAX_TOKENS, batch: int = 8) -> List[str]:
    """The ``evalscope eval`` command line for the served model."""
    cmd = ['evalscope', 'eval', '--model', served, '--eval-type', 'openai_api', '--api-url', base_url,
           '--api-key', os.environ.get('OPENAI_API_KEY', 'EMPTY'), '--datasets', 'mmlu_pro',
           '--work-dir', str(work_dir), '--no-timestamp', '--eval-batch-size', str(batch),
           '--generation-config', f'max_tokens={max_tokens},temperature=0.0']
    if limit:
        cmd += ['--limit', str(limit)]
    if dataset_dir:
        cmd += ['--dataset-args', json.dumps({'mmlu_pro': {'local_path': dataset_dir}})]
    return cmd


def report_path(work_dir: Path, served: str) -> Path:
    return Path(work_dir) / 'reports' / served / 'mmlu_pro.json'


def parse_report(path: Path) -> Dict[str, Any]:
    """evalscope's MMLU-Pro report -> {'Overall', <subject>..., 'subjects': {name: {score, n}}} in %."""
    from evalscope.report import Report
    rep = Report.from_json(str(path))
    if not rep.metrics:
        raise ValueError(f'{path}: report has no metrics')
    metric = rep.metrics[0]
    subjects: Dict[str, Dict[str, Any]] = {}
    for cat in metric.categories:
        for sub in cat.subsets:
            if getattr(sub, 'is_aggregate', False):
                continue
            subjects[sub.name] = {'score': round(100.0 * sub.score, 2), 'n': sub.num}
    out: Dict[str, Any] = {'Overall': round(100.0 * metric.score, 2), 'n': metric.num, 'metric': metric.name,
                           'subjects': subjects}
    for key, col in TABLE4_SUBJECTS.items():
        out[col] = subjects.get(key, {}).get('score')
    return out


def main(argv: Optional[List[str]] = None) -> int:
    from eval.serve import add_server_args, server_from_args, served_model_name, ServeError
    from eval import results as R
    p = argparse.ArgumentParser(prog='python -m eval.mmlu_pro', description=__doc__.split('\n\n')[0])
    add_server_args(p)
    p.add_argument('--name', required=True, help='run name: results/<name>/mmlu_pro.json')
    p.add_argument('--limit', type=int, default=None, help='questions per subject')
    p.add_argument('--dataset-dir', default=None, help='local copy of TIGER-Lab/MMLU-Pro')
    p.add_argument('--max-tokens', type=int, default=MAX_TOKENS, help='answer budget (default %(default)s)')
    p.add_argument('--batch', type=int, default=8, help='concurrent requests')
    p.add_argument('--paper-row', default=None, help='paper row this run reproduces, e.g. Qwen3-8B/AWPO')
    p.add_argument('--results-dir', default='results')
    p.add_argument('--on-exists', default='refuse', choices=R.ON_EXISTS)
    args = p.parse_args(argv)
    paths = R.plan_run(args.results_dir, args.name, 'mmlu_pro', args.on_exists)
    work = paths.workdir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    try:
        with server_from_args(args, log_path=str(work / 'server.log')) as url:
            served = served_model_name(url, args.served_name if args.base_url else (args.served_name or 'awpo-eval'))
            cmd = evalscope_cmd(url, served, work, args.limit, args.dataset_dir, args.max_tokens, args.batch)
            print(f'[mmlu_pro] {" ".join(cmd)}', file=sys.stderr)
            with open(work / 'evalscope.log', 'a') as log:
                r = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT)
            if r.returncode != 0:
                print(f'[mmlu_pro] evalscope failed (exit {r.returncode}); see {work / "evalscope.log"}',
                      file=sys.stderr)
                return 1
    except ServeError as e:
        print(f'[mmlu_pro] error: {e}', file=sys.stderr)
        return 2
    scores = parse_report(report_path(work, served))
    if args.limit:
        scores['partial_columns'] = ['Overall'] + list(TABLE4_SUBJECTS.values())
    preds = sorted(work.glob('predictions/**/*.jsonl'))
    with open(paths.cases, 'a') as f:  # per-case outputs: evalscope's prediction files, listed
        for pth in preds:
            f.write(json.dumps({'predictions_file': str(pth)}) + '\n')
    summary = R.write_summary(
        paths, benchmark='mmlu_pro', name=args.name,
        model={'model_path': args.model_path, 'base_url': args.base_url, 'base_model': args.base_model},
        scores=scores,
        settings={'limit': args.limit, 'max_tokens': args.max_tokens, 'evaluator': 'evalscope mmlu_pro (openai_api)',
                  'workdir': str(work), 'paper_row': args.paper_row},
        extra={'wall_time_s': round(time.time() - t0, 1)})
    print(json.dumps({k: scores[k] for k in ['Overall', *TABLE4_SUBJECTS.values()]}))
    print(f'[mmlu_pro] wrote {summary} (evalscope outputs under {work})', file=sys.stderr)
    return 0


if __name__ == '__main__':
    sys.exit(main())
