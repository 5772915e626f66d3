"""Thin glue: ms-swift's GRPOTrainer with AWPO's advantage (Eq. 28) and dynamic clip radius (Eq. 29).

The maths lives in :mod:`plugin.advantage`; this module only
  1. splits ms-swift's reward matrix into R_out (every non-judge column, weighted as ms-swift weights it,
     NaN-summed as ms-swift does) and the judge column (R_mix = R_out + w_judge * R_judge, Eq. 20),
  2. calls :func:`awpo_advantages`,
  3. sets ``epsilon_low`` / ``epsilon_high`` (which GRPO's loss reads at every call) for the training
     batch just produced, never during evaluation,
  4. logs ``awpo/*`` metrics into the trainer's metrics, and the radius the loss actually applied,
  5. hides the judge's latency (``judge.overlap``, issue 12): ms-swift scores the completions
     (``_score_completions``), then runs the old/ref log-prob pass (``_prepare_batch_inputs``), then the
     advantages (``_compute_advantages``). The judge reward is told to defer: its requests start when ms-swift
     calls it and return placeholders; the log-prob pass runs while they are in flight, and
     ``_compute_advantages`` waits for them and writes the judge column into the reward matrix before
     anything reads it (AWPO's rewards, ms-swift's reward metrics and completion logs). Off with more than
     one process (the matrix is gathered across ranks before the column exists) and with --dynamic_sample
     (it reads the rewards before the log-prob pass).
"""
from __future__ import annotations

import inspect
import json
import logging
import math
import time
from typing import Any, Dict, List

import swift
import torch

from plugin.swift_version import INSTALL_HINT, SWIFT_RANGE, SwiftAPIError, check_swift_version

check_swift_version()  # before the ms-swift internals below, which releases outside the range lack or changed

from swift.rlhf_trainers import GRPOTrainer  # noqa: E402

from plugin.advantage import awpo_advantages  # noqa: E402
from plugin.config import load_config  # noqa: E402
from plugin.swift_compat import SIGNATURES_BEFORE_4_4, reward_metrics  # noqa: E402

logger = logging.getLogger('awpo')

JUDGE_ROLE = 'judge'

# ---------------------------------------------------------------------- ms-swift internals AWPO relies on
# AWPOGRPOTrainer overrides PRIVATE methods of ms-swift's GRPOTrainer and writes PRIVATE attributes; none is
# ms-swift's public API. They were read from ms-swift 4.6.0 (swift/rlhf_trainers/grpo_trainer.py and
# rollout_mixin.py), where ``_generate_and_score_completions`` calls, in this order, ``_score_completions`` (the
# rewards, judge included), ``_prepare_batch_inputs`` (the old/ref log-prob pass) and ``_postprocess_batch``,
# which calls ``_compute_advantages(samples, rewards_per_func, batch_encoded_inputs)``; the loss calls
# ``_compute_loss_and_metrics`` and clips with ``epsilon_low/high``.
# If a later ms-swift renames one of them, the override is silently never called (stock GRPO advantages
# under an AWPO label) or fails deep inside a step; if it reads the reward matrix between the scoring and
# ``_compute_advantages``, it sees judge.overlap's placeholders (NaN) there. So start-up checks them
# (check_swift_api at registration and before the trainer is built, check_swift_state right after ms-swift's
# __init__) and stops with a message naming what is missing. The same methods and attributes are in ms-swift
# 4.4.x and 4.5.x; 4.3.x names the batch ``inputs`` and lacks ``swift.rl_core``, which plugin/swift_compat.py
# bridges. The release range (plugin/swift_version.py, = setup.cfg's) is checked first, at import.
SUPPORTED_SWIFT = SWIFT_RANGE
# Private methods overridden here -> the parameters ms-swift 4.4-4.6 passes them (after self).
SWIFT_METHODS = {
    '_compute_advantages': ('samples', 'rewards_per_func', 'batch_encoded_inputs'),  # Eq. 28 replaces GRPO's
    '_prepare_batch_inputs': ('samples',),                       # timed; the judge runs behind it
    '_compute_loss_and_metrics': ('model', 'model_inputs', 'grpo_batch'),  # logs the radius the loss applied
}
# Attributes ms-swift sets in __init__ that this class reads or writes (private ones first).
SWIFT_ATTRIBUTES = ('_metrics', '_logs', 'reward_funcs', 'reward_func_names', 'reward_weights', 'epsilon_low',
                    'epsilon_high', 'num_generations', 'num_generations_eval', 'dynamic_num_samples',
                    'scale_rewards')


def _swift_error(problems: List[str]) -> SwiftAPIError:
    return SwiftAPIError(
        f'AWPO cannot run on the installed ms-swift {swift.__version__}: its GRPOTrainer lacks or changed '
        f'internals that AWPO overrides or reads (supported: ms-swift {SUPPORTED_SWIFT}):\n  - '
        + '\n  - '.join(problems)
        + f'\nInstall a supported release ({INSTALL_HINT}) or port plugin/trainer.py '
        '(see its "ms-swift internals" block).')


def check_swift_api(base: type = GRPOTrainer) -> None:
    """Start-up check: the installed ms-swift release is in :data:`SUPPORTED_SWIFT` (else
    :class:`~plugin.swift_version.SwiftVersionError`), and every private method in :data:`SWIFT_METHODS` exists on
    ``base`` with the parameters AWPO's override expects (else :class:`SwiftAPIError` naming each one)."""
    check_swift_version()
    problems = []
    for name, params in SWIFT_METHODS.items():
        fn = getattr(base, name, None)
        if not callable(fn):
            problems.append(f'{name}: missing')
            continue
        try:
            got = tuple(inspect.signature(fn).parameters)[1:]  # drop self
        except (TypeError, ValueError):
            continue  # a builtin/C method: cannot be read, trust it
        old = SIGNATURES_BEFORE_4_4.get(name)
        if got != params and got != old:
            problems.append(f'{name}: takes ({", ".join(got)}), AWPO expects ({", ".join(params)})'
                            + (f' (ms-swift < 4.4: ({", ".join(old)}))' if old else ''))
    if problems:
        raise _swift_error(problems)


def check_swift_state(trainer: Any) -> None:
    """After ms-swift's __init__: the attributes in :data:`SWIFT_ATTRIBUTES` exist, and the metric/log
    stores have the layout this class writes into. Raises :class:`SwiftAPIError`."""
    problems = [f'attribute {a}: missing' for a in SWIFT_ATTRIBUTES if not hasattr(trainer, a)]
    metrics, logs = getattr(trainer, '_metrics', None), getattr(trainer, '_logs', None)
    if metrics is not None and not all(k in metrics for k in ('train', 'eval')):
        problems.append("attribute _metrics: expected a mapping with 'train' and 'eval'")
    if logs is not None and 'rewards' not in logs:
        problems.append("attribute _logs: expected a mapping with 'rewards'")
    if problems:
        raise _swift_error(problems)


def check_compatible(args) -> List[str]:
    """Start-up check of ms-swift arguments against AWPO. Raises ValueError where AWPO cannot work;
    returns warnings for settings AWPO overrides."""
    errors, warnings = [], []
    if getattr(args, 'use_liger_kernel', False):
        errors.append('--use_liger_kernel true: the Liger GRPO loss bakes the clip epsilon in at start-up, so '
                      "AWPO's per-batch radius (Eq. 29) cannot reach it. Drop --use_liger_kernel.")
    if getattr(args, 'advantage_estimator', 'grpo') != 'grpo':
        errors.append(f'--advantage_estimator {args.advantage_estimator}: AWPO replaces the advantage estimator '
                      'itself (Eqs. 26-28); leave it at the default grpo.')
    if getattr(args, 'kl_in_reward', False):
        errors.append('--kl_in_reward true: AWPO gates on the raw reward dispersion (Eqs. 22-25); a KL penalty '
                      'folded into the rewards would change the gate. Use the loss-side KL (--beta) instead.')
    if getattr(args, 'scale_rewards', 'group') not in ('group', None):
        warnings.append(f'--scale_rewards {args.scale_rewards} is ignored: AWPO normalises each view by its own '
                        'group std (Eq. 26).')
    eps_high = getattr(args, 'epsilon_high', None)
    if eps_high is not None and eps_high != getattr(args, 'epsilon', None):
        warnings.append(f'--epsilon_high {eps_high} is overridden: AWPO sets a symmetric radius per batch (Eq. 29).')
    if errors:
        raise ValueError('AWPO cannot run with these ms-swift arguments:\n  - ' + '\n  - '.join(errors))
    return warnings


class AWPOGRPOTrainer(GRPOTrainer):
    """GRPOTrainer whose advantages and clip radius are AWPO's (paper Algorithm 1).

    Overrides ms-swift's private ``_compute_advantages``, ``_prepare_batch_inputs`` and
    ``_compute_loss_and_metrics`` and writes its private ``_metrics`` / ``_logs``: see the "ms-swift internals"
    block above (read from ms-swift 4.6.0; checked at start-up by :func:`check_swift_api` / :func:`check_swift_state`).
    """

    def __init__(self, *args, **kwargs):
        check_swift_api(GRPOTrainer)  # before the model is touched
        targs = kwargs.get('args')
        for w in check_compatible(targs) if targs is not None else []:
            logger.warning('[AWPO] %s', w)
        self.awpo_config = load_config()
        super().__init__(*args, **kwargs)
        check_swift_state(self)
        funcs = list(self.reward_funcs)
        mask = [getattr(f, 'awpo_role', None) == JUDGE_ROLE for f in funcs]
        mask += [False] * (len(self.reward_func_names) - len(mask))  # e.g. a gym_reward column
        self._awpo_judge_mask = torch.tensor(mask, dtype=torch.bool, device=self.reward_weights.device)
        names = [n for n, m in zip(self.reward_func_names, mask) if m]
        self._awpo_has_judge = bool(names)
        cfg = self.awpo_config
        logger.warning('[AWPO] config in force: %s', json.dumps(cfg.to_dict(), sort_keys=True))
        logger.warning('[AWPO] outcome columns: %s; judge columns: %s',
                       [n for n, m in zip(self.reward_func_names, mask) if not m], names or 'none')
        if not self._awpo_has_judge:
            logger.warning('[AWPO] no judge reward among --reward_funcs: w_mix = 0 for every group, i.e. AWPO '
                           'reduces to outcome-only GRPO with difficulty weighting and radius eps_max.')
        elif cfg.gate_rule != 'eq25':  # plugin/advantage.py GATE_RULES, read by awpo_advantages from cfg
            logger.warning('[AWPO] gate_rule %s (not Eq. 25 as written): the judge alone ranks groups whose outcome '
                           'reward is flat and not maximal (w_mix = 1 there)%s.', cfg.gate_rule,
                           '; nowhere else' if cfg.gate_rule == 'flat_only' else ', Eq. 25 elsewhere')
        if self.accelerator.is_main_process and self.args.output_dir:
            path = cfg.save(self.args.output_dir)
            logger.warning('[AWPO] config written to %s', path)
        self.epsilon_low = self.epsilon_high = cfg.eps_max  # until the first batch sets Eq. 29's radius
        self._awpo_deferred = self._awpo_setup_overlap(funcs, mask)

    # ------------------------------------------------------------------ judge latency behind the step
    def _awpo_setup_overlap(self, funcs, mask) -> List[tuple]:
        """[(column, judge reward)] whose scores arrive after the log-prob pass (see the module docstring)."""
        judges = [(j, f) for j, (f, m) in enumerate(zip(funcs, mask)) if m and hasattr(f, 'collect')]
        if not judges or not self.awpo_config.judge.overlap:
            return []
        why = None
        if self.accelerator.num_processes > 1:
            why = 'more than one process (the reward matrix is gathered across ranks before the judge column exists)'
        elif getattr(self.args, 'dynamic_sample', False):
            why = '--dynamic_sample reads the rewards before the log-prob pass'
        if why:
            logger.warning('[AWPO] judge.overlap is off: %s; the judge is waited for inside the reward call', why)
            return []
        for _, f in judges:
            f.defer = True
        logger.warning('[AWPO] judge.overlap: judge requests run during the old/ref log-prob pass; the advantage '
                       'waits for them (awpo/judge_wait_s)')
        return judges

    def _awpo_fill_judge(self, rewards_per_func: torch.Tensor, mode: str) -> None:
        """Wait for the deferred judge scores and write them into their columns (NaN = no score)."""
        if not self._awpo_deferred:
            return
        t0 = time.perf_counter()
        for j, f in self._awpo_deferred:
            scores = f.collect()
            if scores is None:
                continue
            if len(scores) != rewards_per_func.shape[0]:  # cannot be matched to rows: no judge score at all
                logger.error('[AWPO] judge column: %d scores for %d rows: judge scores dropped for this batch',
                             len(scores), rewards_per_func.shape[0])
                scores = [None] * rewards_per_func.shape[0]
            rewards_per_func[:, j] = torch.tensor([math.nan if x is None else float(x) for x in scores],
                                                  dtype=rewards_per_func.dtype, device=rewards_per_func.device)
        self._metrics[mode]['awpo/judge_wait_s'].append(time.perf_counter() - t0)

    def _prepare_batch_inputs(self, samples):
        # The old/ref log-prob pass (what the judge hides behind): timed for the step-time benchmark.
        t0 = time.perf_counter()
        out = super()._prepare_batch_inputs(samples)
        self._metrics['train' if self.model.training else 'eval']['awpo/logp_pass_s'].append(time.perf_counter() - t0)
        return out

    # ------------------------------------------------------------------ Eq. 20: split the reward matrix
    def _awpo_rewards(self, rewards_per_func: torch.Tensor):
        """Returns (r_out [N], r_mix [N] or None). r_mix is NaN where a judge score is missing."""
        weights = self.reward_weights.to(rewards_per_func.device)
        mask = self._awpo_judge_mask.to(rewards_per_func.device)
        weighted = rewards_per_func * weights.unsqueeze(0)
        outcome = weighted[:, ~mask]
        r_out = outcome.nansum(dim=1)  # ms-swift's own nansum: a sample with no outcome score counts as 0
        mode = 'train' if self.model.training else 'eval'
        self._metrics[mode]['awpo/outcome_missing_frac'].append(
            float(torch.isnan(outcome).all(dim=1).float().mean()) if outcome.numel() else 0.0)
        if not self._awpo_has_judge:
            return r_out, None
        r_judge = weighted[:, mask].sum(dim=1)  # NaN if any judge column is missing: the group falls back
        return r_out, r_out + r_judge

    def _compute_advantages(self, samples, rewards_per_func: torch.Tensor,
                            batch_encoded_inputs: List[Dict[str, Any]]) -> torch.Tensor:
        mode = 'train' if self.model.training else 'eval'
        if self.dynamic_num_samples:
            raise RuntimeError('AWPO needs num_generations completions per prompt, contiguous; this multi-turn '
                               'scheduler splits trajectories into a variable number of samples.')
        K = self.num_generations if mode == 'train' else self.num_generations_eval
        self._awpo_fill_judge(rewards_per_func, mode)
        r_out, r_mix = self._awpo_rewards(rewards_per_func)
        res = awpo_advantages(r_out, r_mix, K, self.awpo_config)
        if mode == 'train':  # the radius of the training batch just produced (Eq. 29); never set in eval
            self.epsilon_low = self.epsilon_high = res.clip_eps
        for key, value in res.metrics().items():
            self._metrics[mode][key].append(value)

        # ms-swift's own reward metrics, unchanged, so runs stay comparable with stock GRPO.
        stock = (rewards_per_func * self.reward_weights.unsqueeze(0)).nansum(dim=1)
        rm = reward_metrics(stock, rewards_per_func, self.reward_func_names, K, self.scale_rewards)
        self._metrics[mode]['reward'].append(rm.reward_mean)
        self._metrics[mode]['reward_std'].append(rm.reward_std)
        self._metrics[mode]['frac_reward_zero_std'].append(rm.frac_reward_zero_std)
        for name in rm.per_func_mean:
            self._metrics[mode][f'rewards/{name}/mean'].append(rm.per_func_mean[name])
            self._metrics[mode][f'rewards/{name}/std'].append(rm.per_func_std[name])
        for i, name in enumerate(self.reward_func_names):
            self._logs['rewards'][name].extend(rewards_per_func[:, i].tolist())
        return res.advantages.to(rewards_per_func.device)

    def _compute_loss_and_metrics(self, model, *batch):
        # Record the radius the clipped objective (Eq. 30) reads right now, next to the one AWPO computed.
        # batch: (model_inputs, grpo_batch) from ms-swift 4.4, (inputs,) before.
        if self.model.training:
            self._metrics['train']['awpo/clip_eps_applied'].append(float(self.epsilon_low))
        return super()._compute_loss_and_metrics(model, *batch)
