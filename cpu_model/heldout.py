"""Held-out tool-calling score of a model on project rows (issue 10: warm start before / after SFT).

    python -m cpu_model.heldout --model DIR [--adapter LORA_DIR] --rows heldout.jsonl [--limit N] [--max-new-tokens 160]
        [--batch 8] [--out FILE.json]

Greedy generation with ms-swift's own inference engine (``TransformersEngine``) and the training template
(``chatml`` + hermes agent template, as ``shells/train.sh smollm2`` trains), then the project's reward
functions (``plugin/outcome_reward.py``) on every completion:
* ``format``  mean S_format (Eq. 15; note a plain text answer is well-formed too);
* ``exec``    mean S_exec (Eqs. 16-19) against the row's ``ground_truth``;
* ``calls``   share of completions holding at least one well-formed ``<tool_call>`` (every block parses
              to a call object);
* ``r_out``   mean R_out = S_format + S_exec (Eq. 14).
``--out`` writes the per-case completions (with their S_format, S_exec, tokens used and finish reason) and the
summary, atomically. ``--adapter DIR`` scores a LoRA adapter (a ``swift rlhf`` checkpoint) on top of ``--model``;
``cut`` counts the answers that used every one of ``--max-new-tokens`` (finish reason ``length``).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Dict, List, Sequence

from cpu_model.smollm2 import AGENT_TEMPLATE, MODEL_TYPE, TEMPLATE, TORCH_DTYPE
from eval.jsonl import read_jsonl
from plugin.outcome_reward import outcome_scores
from plugin.toolcall_format import parse_completion

# Rows generated side by side. Measured on 20 held-out rows (~450-token prompts, cap 288, idle 2-core box,
# 2026-12-04): 71 / 66 / 79 / 72 s at 4 / 8 / 16 / 20; long prompts make larger batches compute-bound.
BATCH = 8


def has_tool_call(text: str) -> bool:
    """At least one ``<tool_call>`` block, and every block parses to a call object."""
    calls = parse_completion(text).calls
    return bool(calls)


def case_scores(completions: Sequence[str], rows: Sequence[dict]) -> List[Dict[str, float]]:
    """Per case: S_format, S_exec and whether a well-formed tool call was written."""
    if len(completions) != len(rows):
        raise ValueError(f'{len(completions)} completions for {len(rows)} rows')
    out = []
    for text, row in zip(completions, rows):
        try:
            f, e = outcome_scores(text, row['ground_truth'])
        except (KeyError, ValueError) as exc:
            raise ValueError(f'row {row.get("dialogue_id", "?")}: bad ground_truth ({exc})') from None
        out.append({'format': f, 'exec': e, 'calls': 1.0 if has_tool_call(text) else 0.0})
    return out


def score(completions: Sequence[str], rows: Sequence[dict]) -> Dict[str, float]:
    """Means over the cases of S_format, S_exec, R_out and the share of well-formed tool calls."""
    per = case_scores(completions, rows)
    if not per:
        raise ValueError('no rows to score')
    n = len(per)
    fmt, exe, calls = (sum(c[k] for c in per) for k in ('format', 'exec', 'calls'))
    return {'n': n, 'format': fmt / n, 'exec': exe / n, 'calls': calls / n, 'r_out': (fmt + exe) / n}


def read_rows(path: Path, limit: int | None = None) -> List[dict]:
    """Project rows (data_prep schema) from a finished JSONL file: any line that is not JSON is an error naming it."""
    rows = []
    for n, row in read_jsonl(path, torn_tail=False)[0]:
        for key in ('messages', 'tools', 'ground_truth'):
            if not isinstance(row, dict) or key not in row:
                raise ValueError(f'{path}:{n}: no {key!r} column (expected project rows, data_prep schema)')
        rows.append(row)
        if limit and len(rows) >= limit:
            break
    return rows


def generate_full(model_dir: str, rows: Sequence[dict], max_new_tokens: int = 160, batch: int = BATCH,
                  adapter: str | None = None) -> List[Dict[str, object]]:
    """Greedy completions with ms-swift's TransformersEngine and the training template: per row the text,
    the tokens it used and the finish reason (``length`` = cut by ``max_new_tokens``). ``adapter``: a LoRA
    adapter folder (peft format, as ``swift rlhf`` saves it) applied on top of ``model_dir``."""
    import torch
    from swift.infer_engine import InferRequest, RequestConfig, TransformersEngine
    from swift.model import get_model_processor
    from swift.template import get_template
    model, processor = get_model_processor(str(model_dir), model_type=MODEL_TYPE,
                                           torch_dtype=getattr(torch, TORCH_DTYPE))
    if adapter:
        from peft import PeftModel
        model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    template = get_template(processor, template_type=TEMPLATE, agent_template=AGENT_TEMPLATE)
    engine = TransformersEngine(model, template=template, max_batch_size=batch)
    requests = [InferRequest(messages=r['messages'], tools=r['tools']) for r in rows]
    out = engine.infer(requests, RequestConfig(max_tokens=max_new_tokens, temperature=0.0), use_tqdm=True)
    return [{'text': r.choices[0].message.content or '', 'finish_reason': r.choices[0].finish_reason,
             'completion_tokens': getattr(r.usage, 'completion_tokens', None)} for r in out]


def generate(model_dir: str, rows: Sequence[dict], max_new_tokens: int = 160, batch: int = BATCH,
             adapter: str | None = None) -> List[str]:
    """Greedy completions (texts only), see :func:`generate_full`."""
    return [g['text'] for g in generate_full(model_dir, rows, max_new_tokens, batch, adapter)]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog='python -m cpu_model.heldout', description=__doc__.split('\n\n')[0])
    p.add_argument('--model', required=True, help='HF model folder (base SmolLM2 or the warm start)')
    p.add_argument('--adapter', default=None, help='LoRA adapter folder applied on top of --model')
    p.add_argument('--rows', required=True, type=Path, help='project rows, e.g. heldout.jsonl of data_prep bfcl-split')
    p.add_argument('--limit', type=int, default=None)
    p.add_argument('--max-new-tokens', type=int, default=160)
    p.add_argument('--batch', type=int, default=BATCH, help=f'rows generated together (default {BATCH})')
    p.add_argument('--out', type=Path, default=None, help='write completions + summary here (JSON)')
    args = p.parse_args(argv)
    try:
        rows = read_rows(args.rows, args.limit)
    except (OSError, ValueError) as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 2
    t0 = time.time()
    gens = generate_full(args.model, rows, args.max_new_tokens, batch=args.batch, adapter=args.adapter)
    texts = [g['text'] for g in gens]
    cut = sum(g['finish_reason'] == 'length' for g in gens)
    summary = {**score(texts, rows), 'cut': cut, 'model': str(args.model), 'adapter': args.adapter,
               'rows': str(args.rows), 'max_new_tokens': args.max_new_tokens, 'wall_s': round(time.time() - t0, 1)}
    if args.out:
        from data_prep.manifest import atomic_writer
        cases = [{'id': r.get('dialogue_id'), 'completion': g['text'], 'ground_truth': r['ground_truth'], **s,
                  'finish_reason': g['finish_reason'], 'completion_tokens': g['completion_tokens']}
                 for r, g, s in zip(rows, gens, case_scores(texts, rows))]
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with atomic_writer(str(args.out)) as f:
            json.dump({'summary': summary, 'cases': cases}, f, indent=1, ensure_ascii=False)
    print(f'heldout {summary["n"]} rows  format {summary["format"]:.3f}  exec {summary["exec"]:.3f}  '
          f'tool_call {summary["calls"]:.3f}  r_out {summary["r_out"]:.3f}  cut {cut}  ({summary["wall_s"]} s)  '
          f'model {args.model}' + (f' + {args.adapter}' if args.adapter else '') + (f'  -> {args.out}' if args.out else ''))
    return 0


if __name__ == '__main__':
    sys.exit(main())
