"""ms-swift glue for the outcome reward (Eqs. 14-19): ORM classes over ``plugin.outcome_reward``.

Registered by ``plugin/registry.py`` as ``awpo_outcome`` (R_out = S_format + S_exec, in [0, 2]),
``awpo_format`` (S_format, Eq. 15) and ``awpo_exec`` (S_exec, Eqs. 16-19).

ms-swift calls ``reward(completions, **kwargs)`` where ``completions[i]`` is ``messages[i][-1]['content']``
(the decoded response, a str) and every dataset column arrives as a batch-length list; here the
``ground_truth`` column (JSON string, a list of ``{"name", "arguments"}``). A sample whose ground truth is
missing or broken scores ``None`` (NaN in ms-swift's reward matrix), never a silent 0, and the row is
named once in a warning. The completion itself never makes a reward raise or return ``None``: what
cannot be read scores as unparseable (0), see ``plugin/toolcall_format.py``.

How tool names are compared (r_name, Eq. 16) comes from the AWPO config field ``reward_name_match``
(``AWPO_REWARD_NAME_MATCH``): ``multiset`` (default, hedge-proof) or ``set`` (paper-literal).
"""
from __future__ import annotations

import logging
from typing import Any, List, Optional

from swift.rewards import ORM

from plugin.config import load_config
from plugin.outcome_reward import exec_score
from plugin.toolcall_format import THINK_CLOSE, THINK_OPEN, parse_completion, parse_ground_truth

logger = logging.getLogger('awpo')


def completion_text(completion: Any, last_message: Optional[dict] = None) -> Optional[str]:
    """The completion as text, or None when it is not text (e.g. token ids).

    ``None`` content is an empty answer; OpenAI-style content parts are joined; a ``reasoning_content``
    split off by an inference engine's reasoning parser is put back as ``<think>...</think>``.
    """
    if completion is None:
        text = ''
    elif isinstance(completion, str):
        text = completion
    elif isinstance(completion, list) and all(isinstance(p, dict) for p in completion):
        text = ''.join(p['text'] for p in completion
                       if p.get('type', 'text') == 'text' and isinstance(p.get('text'), str))
    else:
        return None
    rc = last_message.get('reasoning_content') if isinstance(last_message, dict) else None
    if isinstance(rc, str) and rc and THINK_CLOSE not in text:
        text = f'{THINK_OPEN}\n{rc}\n{THINK_CLOSE}\n\n{text}'
    return text


class _OutcomeORM(ORM):
    """Shared loop: (S_format, S_exec) per sample, ``None`` where the sample cannot be scored."""

    needs_ground_truth = True

    def __init__(self, args=None, **kwargs):
        super().__init__(args, **kwargs)
        self._warned = set()
        self.name_match = load_config().reward_name_match

    def _warn_once(self, key, msg: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            logger.warning('[AWPO] %s: %s', type(self).__name__, msg)

    def _combine(self, s_format: float, s_exec: float) -> float:
        raise NotImplementedError

    def __call__(self, completions: List[Any], ground_truth: Optional[List[Any]] = None,
                 messages: Optional[List[list]] = None, **kwargs) -> List[Optional[float]]:
        n = len(completions)
        if ground_truth is None and self.needs_ground_truth:
            self._warn_once('no-column', 'the dataset has no "ground_truth" column: every sample scores None')
            return [None] * n
        prompt_ids = kwargs.get('prompt_id') or [None] * n
        out: List[Optional[float]] = []
        for i, completion in enumerate(completions):
            last = messages[i][-1] if messages and messages[i] else None
            text = completion_text(completion, last)
            if text is None:
                self._warn_once(('type', type(completion).__name__),
                                f'completion {i} is a {type(completion).__name__}, not text: scored None')
                out.append(None)
                continue
            gold = None
            if self.needs_ground_truth:
                gt = ground_truth[i]
                try:
                    gold = parse_ground_truth(gt)
                except ValueError as e:
                    shown = gt[:120] if isinstance(gt, str) else type(gt).__name__
                    self._warn_once(('gt', shown), f'row prompt_id={prompt_ids[i]!r} (batch index {i}) has a '
                                    f'broken ground_truth {shown!r}: {e}; scored None')
                    out.append(None)
                    continue
            try:
                parsed = parse_completion(text)
                s_format = 1.0 if parsed.format_ok else 0.0
                s_exec = exec_score(parsed.calls, gold, self.name_match) if gold is not None else 0.0
            except Exception as e:  # noqa: BLE001  a parser bug must not end a days-long run: policy's text -> 0
                self._warn_once(('bug', type(e).__name__), f'completion {i} could not be scored '
                                f'({type(e).__name__}: {str(e)[:200]}); scored as unparseable (0). Please report.')
                s_format = s_exec = 0.0
            out.append(s_format if not self.needs_ground_truth else self._combine(s_format, s_exec))
        return out


class AWPOOutcome(_OutcomeORM):
    """R_out = S_format + S_exec (Eq. 14), in [0, 2]."""

    def _combine(self, s_format, s_exec):
        return s_format + s_exec


class AWPOFormat(_OutcomeORM):
    """S_format (Eq. 15), in {0, 1}. Needs no ground truth: scores rows whose ground truth is broken too."""

    needs_ground_truth = False


class AWPOExec(_OutcomeORM):
    """S_exec (Eqs. 16-19), in [0, 1]."""

    def _combine(self, s_format, s_exec):
        return s_exec
