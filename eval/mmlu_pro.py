"""MMLU-Pro (Wang et al., 2024) through evalscope against the served model (paper Table 4).

    python -m eval.mmlu_pro --model-path CKPT --name my-run [--limit N]

Runs ``evalscope eval --eval-type openai_api --api-url <server>/v1 --datasets mmlu_pro`` (evalscope's
own MMLU-Pro adapter, 5-shot chain-of-thought prompts asking for "ANSWER: X"; data ``TIGER-Lab/MMLU-Pro``
from the hub, or ``--dataset-dir`` for a local copy). evalscope names its output folders after the model id,
which it derives from the served name's *basename* (``Qwen/Qwen3-8B`` -> ``reports/Qwen3-8B/``); we pass that id
ourselves (``--model-id``, :func:`model_id`), so the report is found whatever the served name.

Scores (in %), two extractions of the same replies:

* **Reported** (``Overall`` and one column per subject; Table 4 shows Math, Physics, Chemistry, Computer
  Science and Biology): TIGER-Lab's official rules, the ones the paper used (TIGER-AI-Lab/MMLU-Pro
  ``evaluate_from_api.py``): bold markers ``**`` removed, then the first ``answer is (X)`` / ``answer is X``;
  else the first line with ``Answer: X`` / ``answer: X`` (its last match); else the last standalone letter A-J
  of the reply; when nothing parses, TIGER's seeded random guess (``random.seed(12345)``, then
  ``randint(0, n_options - 1)``, reseeded for every question, so the same guess each time), counted correct
  only when it hits the answer. A closed ``<think>...</think>`` block before the answer is left out first (what
  vLLM's reasoning parser returns as the answer). :func:`tiger_extract`, :func:`tiger_correct`.
  Question-weighted: accuracy over all questions of the subjects run. The prompt stays evalscope's.
* **evalscope's own** (``evalscope`` in the summary): its "ANSWER: X" extraction with no guess, over the
  questions it scored.

Per-case failures (issue 21.3): evalscope runs with ``--ignore-errors``, so a question whose request fails
(time-out, server error after evalscope's retries) does not end the run; evalscope leaves it out of its own
accuracy and counts it in its report's execution summary; the reported (TIGER) columns count it **wrong**
(the denominator is every question requested). Re-running the same command resumes (``--use-cache`` on the
run's work folder): answered questions are reused, failed ones are asked again. Concurrency: ``--batch``,
default 64 requests in flight on a GPU server (vLLM or ``--base-url``) and 8 with ``swift deploy`` (CPU).
With ``--limit N`` (questions per subject) the numbers are flagged partial.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Tuple

# Answer budget: Qwen3-1.7B/8B are served with thinking on (as trained); a 5-shot CoT answer after a thinking
# block often passes 2048 tokens, and a cut answer has no "ANSWER: X" (scored wrong): the same bias as a short
# API-Bank cap (issue 14.6). 32768 is Qwen3's recommended output length; 5-shot prompt (~3k tokens) + 32768
# fits eval.serve's 40960-token window.
MAX_TOKENS = 32768
TABLE4_SUBJECTS = {'math': 'Math', 'physics': 'Physics', 'chemistry': 'Chemistry',
                   'computer science': 'Computer Science', 'biology': 'Biology'}
# Requests in flight: a GPU server (vLLM batches them) vs swift deploy on the CPU. 64 keeps a thinking
# checkpoint's 12k questions at ~1-2 h on one GPU (8 in flight: ~7 h).
BATCH_GPU, BATCH_CPU = 64, 8


# One request: at most TIMEOUT s, RETRIES more attempts RETRY_INTERVAL s apart (evalscope's own retry loop); the
# openai SDK's retries are off (--model-args max_retries=0), so they do not multiply evalscope's, and a hung
# request does not wait out the SDK's 600 s default several times over.
TIMEOUT, RETRIES, RETRY_INTERVAL = 1800, 2, 10


def default_batch(backend: str) -> int:
    """``--batch`` default for the backend serving the model (``url``: a server elsewhere, taken as a GPU)."""
    return BATCH_CPU if backend == 'swift' else BATCH_GPU


# ----------------------------------------------------------------------------------------- TIGER-Lab's rules
TIGER_SEED = 12345
LETTERS = 'ABCDEFGHIJ'
_THINK = re.compile(r'^\s*<think>.*?</think>', re.S)
_ANSWER_IS = re.compile(r'answer is \(?([A-J])\)?')
_ANSWER_COLON = re.compile(r'.*[aA]nswer:\s*([A-J])')
_LAST_LETTER = re.compile(r'\b[A-J]\b(?!.*\b[A-J]\b)', re.S)


def tiger_extract(text: Optional[str]) -> Optional[str]:
    """The answer letter by TIGER-Lab's official rules (module doc), or None when nothing parses."""
    if not isinstance(text, str):
        return None
    text = _THINK.sub('', text, count=1).replace('**', '')
    for rx in (_ANSWER_IS, _ANSWER_COLON):
        m = rx.search(text)
        if m:
            return m.group(1)
    m = _LAST_LETTER.search(text)
    return m.group(0) if m else None


def tiger_guess(n_options: int) -> str:
    """TIGER-Lab's guess for an unparsed reply: seed 12345, then one randint over the options' indices."""
    rng = random.Random(TIGER_SEED)
    return LETTERS[rng.randint(0, n_options - 1)]


def tiger_correct(text: Optional[str], answer: str, n_options: int = 10) -> Tuple[bool, Optional[str], bool]:
    """(correct, extracted letter or None, guessed) for one reply."""
    pred = tiger_extract(text)
    if pred is None:
        return tiger_guess(n_options) == answer, None, True
    return pred == answer, pred, False


_LETTER_LIST = re.compile(r'is one of ([A-Z](?:,[A-Z])*)')


def n_options(prompt: Any) -> int:
    """The number of options of the question, read from evalscope's prompt ("... is one of A,B,C,D")."""
    if isinstance(prompt, list):
        prompt = '\n'.join(str(m.get('content', '')) if isinstance(m, dict) else str(m) for m in prompt)
    found = _LETTER_LIST.findall(str(prompt or ''))
    return len(found[-1].split(',')) if found else len(LETTERS)


# ----------------------------------------------------------------------------------------- evalscope
def model_id(served: str) -> str:
    """The folder evalscope names after the model: the served name's basename, as a safe file name."""
    base = re.sub(r'[^A-Za-z0-9._-]+', '_', served.rstrip('/').split('/')[-1]).strip('._')
    return base or 'model'


def evalscope_cmd(base_url: str, served: str, work_dir: Path, limit: Optional[int] = None,
                  dataset_dir: Optional[str] = None, max_tokens: int = MAX_TOKENS, batch: int = BATCH_GPU,
                  resume: bool = False, timeout: float = TIMEOUT, retries: int = RETRIES,
                  retry_interval: int = RETRY_INTERVAL) -> List[str]:
    """The ``evalscope eval`` command line for the served model (``resume``: reuse the work folder's answers)."""
    cmd = ['evalscope', 'eval', '--model', served, '--model-id', model_id(served), '--eval-type', 'openai_api',
           '--api-url', base_url, '--api-key', os.environ.get('OPENAI_API_KEY', 'EMPTY'), '--datasets', 'mmlu_pro',
           '--work-dir', str(work_dir), '--no-timestamp', '--eval-batch-size', str(batch), '--ignore-errors',
           '--model-args', 'max_retries=0',
           '--generation-config', f'max_tokens={max_tokens},temperature=0.0,timeout={timeout},retries={retries},'
                                  f'retry_interval={retry_interval}']
    if resume:
        cmd += ['--use-cache', str(work_dir)]
    if limit:
        cmd += ['--limit', str(limit)]
    if dataset_dir:
        cmd += ['--dataset-args', json.dumps({'mmlu_pro': {'local_path': dataset_dir}})]
    return cmd


def report_path(work_dir: Path, served: str) -> Path:
    return Path(work_dir) / 'reports' / model_id(served) / 'mmlu_pro.json'


def reviews_dir(work_dir: Path, served: str) -> Path:
    return Path(work_dir) / 'reviews' / model_id(served)


def parse_report(path: Path) -> Dict[str, Any]:
    """evalscope's MMLU-Pro report -> {'Overall', <subject>..., 'subjects': {name: {score, n}}, 'requested':
    {subject: questions asked}} in %, its own extraction."""
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
    ex = getattr(rep, 'execution_summary', None)
    if ex is not None:
        out['requested'] = {k: v.requested for k, v in ex.subsets.items()}
        out['errored'] = {k: v.errored for k, v in ex.subsets.items() if v.errored}
    return out


def read_reviews(folder: Path) -> Iterable[Dict[str, Any]]:
    """One case per question from evalscope's review files ``mmlu_pro_<subject>.jsonl`` (the last record of a
    question wins; a torn last line is left out): subject, index, answer, reply, n_options, evalscope's verdict."""
    from eval.jsonl import read_jsonl
    for path in sorted(Path(folder).glob('mmlu_pro_*.jsonl')):
        subject = path.stem[len('mmlu_pro_'):]
        last: Dict[Any, Dict[str, Any]] = {}
        for _, rec in read_jsonl(path)[0]:
            last[rec.get('index')] = rec
        for idx, rec in last.items():
            score = (rec.get('sample_score') or {}).get('score') or {}
            value = score.get('value') or {}
            target = rec.get('target')  # evalscope 1.14: a list (["B"]); older files: the letter
            target = target[0] if isinstance(target, list) and target else target
            prompt = [m for m in rec.get('messages') or [] if isinstance(m, dict) and m.get('role') == 'user'] \
                or rec.get('input')  # the messages sent (1.14), or the legacy 'input'
            yield {'subject': subject, 'index': idx, 'answer': target, 'reply': score.get('prediction'),
                   'n_options': n_options(prompt), 'evalscope_pred': score.get('extracted_prediction'),
                   'evalscope_correct': bool(next(iter(value.values()), 0)) if value else None}


def tiger_scores(cases: List[Dict[str, Any]], requested: Optional[Dict[str, int]] = None) -> Dict[str, Any]:
    """TIGER-Lab accuracy (%) per subject and question-weighted Overall. ``requested`` (questions asked per
    subject, from evalscope's execution summary): questions without a reply (failed requests) count wrong."""
    by: Dict[str, List[bool]] = {}
    for c in cases:
        by.setdefault(c['subject'], []).append(c['tiger_correct'])
    subjects = {}
    for name in sorted(set(by) | set(requested or {})):
        got = by.get(name, [])
        n = max(len(got), (requested or {}).get(name, 0))
        subjects[name] = {'score': round(100.0 * sum(got) / n, 2) if n else None, 'n': n,
                          'no_reply': n - len(got), 'guessed': sum(1 for c in cases if c['subject'] == name and c['guessed'])}
    total = sum(s['n'] for s in subjects.values())
    correct = sum(sum(v) for v in by.values())
    out: Dict[str, Any] = {'Overall': round(100.0 * correct / total, 2) if total else None, 'n': total,
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
    p.add_argument('--batch', type=int, default=None,
                   help=f'requests in flight (default {BATCH_GPU} on a GPU server or --base-url, {BATCH_CPU} with swift deploy)')
    p.add_argument('--timeout', type=float, default=TIMEOUT, help='seconds per request (default %(default)s)')
    p.add_argument('--retries', type=int, default=RETRIES, help='more attempts of a failed request (evalscope)')
    p.add_argument('--paper-row', default=None, help='paper row this run reproduces, e.g. Qwen3-8B/AWPO')
    p.add_argument('--results-dir', default='results')
    p.add_argument('--on-exists', default='refuse', choices=R.ON_EXISTS)
    args = p.parse_args(argv)
    paths = R.plan_run(args.results_dir, args.name, 'mmlu_pro', args.on_exists)
    work = paths.workdir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    from eval.serve import pick_backend
    backend = 'url' if args.base_url else pick_backend(args.backend)
    batch = args.batch or default_batch(backend)
    resume = (work / 'configs' / 'task_config.yaml').is_file()  # an earlier (interrupted) run of this name
    try:
        with server_from_args(args, log_path=str(work / 'server.log')) as url:
            served = served_model_name(url, args.served_name if args.base_url else (args.served_name or 'awpo-eval'))
            cmd = evalscope_cmd(url, served, work, args.limit, args.dataset_dir, args.max_tokens, batch, resume,
                                args.timeout, args.retries)
            import shutil
            cmd[0] = shutil.which('evalscope') or str(Path(sys.executable).with_name('evalscope'))
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
    report = report_path(work, served)
    if not report.is_file():
        found = sorted(str(p) for p in work.glob('reports/*/mmlu_pro.json'))
        print(f'[mmlu_pro] evalscope wrote no report at {report} (reports found: {found or "none"}); see '
              f'{work / "evalscope.log"}', file=sys.stderr)
        return 1
    own = parse_report(report)
    cases = []
    for c in read_reviews(reviews_dir(work, served)):
        c['tiger_correct'], c['tiger_pred'], c['guessed'] = tiger_correct(c['reply'], c['answer'], c['n_options'])
        cases.append(c)
    scores = tiger_scores(cases, own.get('requested'))
    scores['evalscope'] = {k: own[k] for k in ('Overall', 'n', 'subjects', *TABLE4_SUBJECTS.values())}
    scores['errored'] = own.get('errored', {})
    scores['extraction'] = 'TIGER-Lab evaluate_from_api.py (answer is (X), Answer: X, last letter, seeded guess)'
    if args.limit:
        scores['partial_columns'] = ['Overall'] + list(TABLE4_SUBJECTS.values())
    with open(paths.cases, 'w') as f:  # per-case outputs: both extractions of every reply (rewritten each run)
        for c in cases:
            f.write(json.dumps({k: v for k, v in c.items() if k != 'reply'}) + '\n')
    summary = R.write_summary(
        paths, benchmark='mmlu_pro', name=args.name,
        model={'model_path': args.model_path, 'base_url': args.base_url, 'base_model': args.base_model},
        scores=scores,
        settings={'limit': args.limit, 'max_tokens': args.max_tokens, 'batch': batch,
                  'evaluator': 'evalscope mmlu_pro (openai_api), scored by TIGER-Lab rules',
                  'workdir': str(work), 'paper_row': args.paper_row},
        extra={'wall_time_s': round(time.time() - t0, 1)})
    print(json.dumps({k: scores[k] for k in ['Overall', *TABLE4_SUBJECTS.values()]}))
    print(f'[mmlu_pro] wrote {summary} (evalscope outputs under {work})', file=sys.stderr)
    return 0


if __name__ == '__main__':
    sys.exit(main())
