"""SFT export for the SFT and SFT+GRPO baselines: the same instances, target appended as an assistant turn.

target = `<think>{reference_rationale}</think>\n` + the calls in native hermes format
(`plugin.toolcall_format.render_tool_calls`, the same text the outcome reward parses), or the text answer.
For a backbone that runs with thinking off (`thinking=False`, `--thinking false`: Qwen3-4B-Instruct-2507,
served without a reasoning parser) there is no `<think>` block: the rationale is plain text before the
calls (where the outcome reward and the judge read a non-thinking model's reasoning), and a text answer is
the answer alone (a rationale in front of it would become part of the answer).

Only the target is trained: every earlier action of the dialogue (a `tool_call` or `assistant` message in
the prompt) carries `"loss": false`, which ms-swift keeps through its row preprocessor and the merge of
`tool_call` messages into assistant turns (`swift/template/base.py`) and reads in its loss scale
(`swift/loss_scale/base.py`: an explicit `loss` beats the strategy). Without it, SFT's default loss trains
every assistant turn, so step 1 of a k-step dialogue would be trained k times, without a rationale.

`export_sft` never leaves a partial output: rows go to a temporary file renamed over `--out` at the end,
then a manifest (`data_prep.manifest`) marks it complete. A row that cannot be exported is a counted skip
with its reason (or, with `strict`, an error naming the input line).
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field

from plugin.toolcall_format import parse_completion, parse_ground_truth, render_tool_calls

from .dialogue import row_key
from .manifest import atomic_writer, remove_manifest, write_manifest

# Skip reasons of the export (one label per kind of defect, counted in the summary).
NOT_JSON_LINE = 'input line is not JSON'
NOT_OBJECT = 'row is not a JSON object'
MISSING_FIELD = 'missing or malformed field'
NO_RATIONALE = 'without a rationale'
BAD_GROUND_TRUTH = 'ground_truth is not JSON'
BAD_CALLS = 'ground_truth is not a list of calls'
NO_ANSWER = 'direct answer without reference_answer'
UNREADABLE_TARGET = 'target does not read back as its ground truth'
HISTORY_ROLES = ('assistant', 'tool_call')


class SFTRowError(ValueError):
    """A row that cannot become an SFT row; `reason` is one of the labels above."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f'{reason}: {detail}')
        self.reason = reason


def _key(row: dict) -> str:
    try:
        return str(row_key(row))
    except (KeyError, TypeError, ValueError):
        return '(no source/dialogue_id/step)'


def _no_constant(name: str):
    raise ValueError(f'{name} is not JSON')


def sft_target(row: dict, thinking: bool = True) -> str:
    rationale = row.get('reference_rationale')
    if not isinstance(rationale, str) or not rationale.strip():
        raise SFTRowError(NO_RATIONALE, f'row {_key(row)}: empty reference_rationale (run `rationales` first)')
    gt = row.get('ground_truth')
    try:  # strict JSON: NaN / Infinity would end up in the target text, which is then not JSON either
        calls = json.loads(gt, parse_constant=_no_constant) if isinstance(gt, str) else gt
        json.dumps(calls, allow_nan=False)
    except (ValueError, TypeError, RecursionError) as exc:
        raise SFTRowError(BAD_GROUND_TRUTH, f'row {_key(row)}: {str(exc)[:80]}') from None
    if not isinstance(calls, list):
        raise SFTRowError(BAD_CALLS, f'row {_key(row)}: ground_truth is {type(calls).__name__}')
    if calls:
        try:
            action = render_tool_calls(calls)
        except (ValueError, TypeError, AttributeError, RecursionError) as exc:
            raise SFTRowError(BAD_CALLS, f'row {_key(row)}: {str(exc)[:80]}') from None
    else:
        action = row.get('reference_answer') or ''
        if not isinstance(action, str) or not action:
            raise SFTRowError(NO_ANSWER, f'row {_key(row)}: direct-answer instance without reference_answer')
    if thinking:
        return f'<think>\n{rationale.strip()}\n</think>\n\n{action}'
    return f'{rationale.strip()}\n\n{action}' if calls else action


def check_reads_back(row: dict, target: str) -> None:
    """The target must read back through the outcome reward's parser as exactly the row's ground truth, with a
    valid format: tag text in the rationale or answer (a `</think>`, a `<tool_call>` in front of the calls)
    would train a layout the reward scores below the gold (issue 19). Such a row is a counted skip."""
    parsed = parse_completion(target)
    if not parsed.format_ok or parsed.calls != parse_ground_truth(row['ground_truth']):
        raise SFTRowError(UNREADABLE_TARGET, f'row {_key(row)}: {parsed.error or "other calls"} '
                                             '(tag text in the rationale or answer)')


def mask_history(messages: list) -> list:
    """Copies of the prompt messages, earlier actions (`assistant` / `tool_call`) marked `"loss": false`."""
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get('role'), str):
            raise SFTRowError(MISSING_FIELD, f'messages[{i}] is not a {{"role", "content"}} object')
        out.append({**m, 'loss': False} if m['role'] in HISTORY_ROLES else dict(m))
    return out


def sft_row(row: dict, thinking: bool = True) -> dict:
    """ms-swift SFT row: prompt messages (history masked) + the assistant target; `tools` unchanged."""
    if not isinstance(row, dict):
        raise SFTRowError(NOT_OBJECT, f'got {type(row).__name__}')
    for name in ('messages', 'tools', 'source', 'dialogue_id', 'step'):
        if name not in row:
            raise SFTRowError(MISSING_FIELD, f'row {_key(row)}: no {name!r}')
    if not isinstance(row['messages'], list) or not row['messages']:
        raise SFTRowError(MISSING_FIELD, f'row {_key(row)}: messages is not a non-empty list')
    target = sft_target(row, thinking)
    check_reads_back(row, target)
    return {'messages': [*mask_history(row['messages']), {'role': 'assistant', 'content': target}],
            'tools': row['tools'], 'source': row['source'], 'dialogue_id': row['dialogue_id'], 'step': row['step']}


@dataclass
class ExportSummary:
    written: int = 0
    skipped: Counter = field(default_factory=Counter)
    examples: dict = field(default_factory=dict)  # reason -> first 'line N: detail'

    def text(self, out_path: str) -> str:
        lines = [f'wrote {self.written} SFT rows to {out_path} (manifest {out_path}.manifest.json); '
                 f'skipped {sum(self.skipped.values())}']
        for reason, n in sorted(self.skipped.items()):
            lines.append(f'  skipped {n:6d}  {reason}  (first: {self.examples[reason]})')
        return '\n'.join(lines)


def export_sft(inp: str, out: str, strict: bool = False, progress: bool = True, thinking: bool = True) -> ExportSummary:
    """Read rows of `inp` (JSONL), write SFT rows to `out` atomically, then its manifest.

    A bad row is skipped and counted with its reason; with `strict` it is a ValueError naming the input
    line, and `out` is left as it was (the temporary file is removed).
    """
    from tqdm import tqdm
    summary = ExportSummary()
    remove_manifest(out)
    with open(inp, encoding='utf-8') as src, atomic_writer(out) as dst:
        for n, line in enumerate(tqdm(src, desc='sft', unit='row', disable=not progress), 1):
            if not line.strip():
                continue
            try:
                try:
                    row = json.loads(line)
                except (ValueError, RecursionError) as exc:
                    raise SFTRowError(NOT_JSON_LINE, str(exc)[:80]) from None
                rec = json.dumps(sft_row(row, thinking), ensure_ascii=False, allow_nan=False)
            except SFTRowError as exc:
                if strict:
                    raise ValueError(f'sft: {inp} line {n}: {exc}') from None
                summary.skipped[exc.reason] += 1
                summary.examples.setdefault(exc.reason, f'line {n}: {exc}'[:160])
                continue
            except ValueError as exc:  # allow_nan=False: NaN / Infinity somewhere in the row
                if strict:
                    raise ValueError(f'sft: {inp} line {n}: value not representable in JSON ({exc})') from None
                summary.skipped['value not representable in JSON'] += 1
                summary.examples.setdefault('value not representable in JSON', f'line {n}')
                continue
            dst.write(rec + '\n')
            summary.written += 1
    write_manifest(out, summary.written, input=inp, skipped=dict(summary.skipped), thinking=thinking)
    return summary
