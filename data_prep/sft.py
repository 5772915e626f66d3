"""SFT export for the SFT and SFT+GRPO baselines: the same instances, target appended as an assistant turn.

target = `<think>{reference_rationale}</think>\n` + the calls in native hermes format
(`plugin.rewards.render_tool_calls`, the same text the outcome reward parses), or the text answer.
"""
from __future__ import annotations

import json

from plugin.rewards import render_tool_calls

from .dialogue import row_key


def sft_target(row: dict) -> str:
    rationale = row.get('reference_rationale') or ''
    if not rationale.strip():
        raise ValueError(f'row {row_key(row)}: empty reference_rationale (run `rationales` first)')
    calls = json.loads(row['ground_truth'])
    action = render_tool_calls(calls) if calls else (row.get('reference_answer') or '')
    if not action:
        raise ValueError(f'row {row_key(row)}: direct-answer instance without reference_answer')
    return f'<think>\n{rationale.strip()}\n</think>\n\n{action}'


def sft_row(row: dict) -> dict:
    """ms-swift SFT row: prompt messages + the assistant target; `tools` unchanged."""
    return {'messages': [*row['messages'], {'role': 'assistant', 'content': sft_target(row)}],
            'tools': row['tools'], 'source': row['source'], 'dialogue_id': row['dialogue_id'], 'step': row['step']}
