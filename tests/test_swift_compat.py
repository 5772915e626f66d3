"""The thin adapter for ms-swift 4.0-4.3 (plugin/swift_compat.py), tested on its own against ms-swift 4.6's code.
The real runs on those releases are the version matrix's (benchmarks/swift_matrix.py; CI runs the oldest)."""
from __future__ import annotations

import sys

import pytest
import torch

from plugin.swift_compat import SIGNATURES_BEFORE_4_4, reward_metrics, reward_metrics_local


def _matrix(n_prompts, k, n_funcs, seed, nan_frac=0.2):
    g = torch.Generator().manual_seed(seed)
    m = torch.rand(n_prompts * k, n_funcs, generator=g).round(decimals=1)  # ties: zero-spread groups happen
    m[torch.rand(m.shape, generator=g) < nan_frac] = float('nan')
    return m


@pytest.mark.parametrize('k', [1, 2, 4])
@pytest.mark.parametrize('scale', ['group', 'batch', 'none'])
@pytest.mark.parametrize('seed', [0, 1, 2])
def test_local_reward_metrics_equal_ms_swift_4_6(k, scale, seed):
    """Reference implementation: ms-swift's own compute_reward_metrics (4.4+), on the same inputs."""
    from swift.rl_core.advantage import compute_reward_metrics
    per_func = _matrix(6, k, 3, seed)
    weights = torch.tensor([1.0, 0.5, 2.0])
    rewards = (per_func * weights).nansum(dim=1)
    names = ['a', 'b', 'c']
    ref = compute_reward_metrics(rewards=rewards, rewards_per_func=per_func, reward_func_names=names,
                                 num_generations=k, scale_rewards=scale)
    got = reward_metrics_local(rewards, per_func, names, k, scale)
    for field in ('reward_mean', 'reward_std', 'frac_reward_zero_std'):
        assert getattr(got, field) == pytest.approx(getattr(ref, field), nan_ok=True), field
    assert got.per_func_mean == pytest.approx(ref.per_func_mean, nan_ok=True)
    assert got.per_func_std == pytest.approx(ref.per_func_std, nan_ok=True)


def test_local_reward_metrics_hand_computed():
    # 2 prompts x K=2, one column: rewards [1, 3 | 2, 2] -> group means 2, 2; group stds sqrt(2), 0
    per_func = torch.tensor([[1.0], [3.0], [2.0], [2.0]])
    m = reward_metrics_local(per_func[:, 0], per_func, ['r'], 2, 'group')
    assert m.reward_mean == 2.0
    assert m.reward_std == pytest.approx(2 ** 0.5 / 2)
    assert m.frac_reward_zero_std == 0.5
    assert m.per_func_mean == {'r': 2.0}
    assert m.per_func_std['r'] == pytest.approx(torch.tensor([1.0, 3.0, 2.0, 2.0]).std().item())


def test_reward_metrics_falls_back_where_rl_core_is_missing(monkeypatch):
    per_func = _matrix(4, 4, 2, seed=3)
    rewards = per_func.nansum(dim=1)
    with_swift = reward_metrics(rewards, per_func, ['x', 'y'], 4, 'group')
    assert type(with_swift).__module__ == 'swift.rl_core.advantage'  # ms-swift's own, where it exists
    monkeypatch.setitem(sys.modules, 'swift.rl_core.advantage', None)  # as on ms-swift 4.0-4.3: ImportError
    without = reward_metrics(rewards, per_func, ['x', 'y'], 4, 'group')
    assert type(without).__module__ == 'plugin.swift_compat'
    for field, value in vars(with_swift).items():  # float32 sums: equal up to rounding
        assert getattr(without, field) == pytest.approx(value, rel=1e-5), field


def test_api_check_accepts_the_pre_4_4_signatures_and_names_both_when_wrong():
    from plugin.trainer import SWIFT_METHODS, SwiftAPIError, check_swift_api
    assert set(SIGNATURES_BEFORE_4_4) == set(SWIFT_METHODS)

    def method(*params):  # a function whose parameters are (self, *params), as ms-swift 4.0-4.3 define them
        ns = {}
        exec(f'def f(self, {", ".join(params)}): pass', ns)
        return ns['f']
    old = type('GRPOTrainer43', (), {n: method(*p) for n, p in SIGNATURES_BEFORE_4_4.items()})
    check_swift_api(old)  # ms-swift 4.0-4.3's layout: accepted
    bad = type('GRPOTrainerX', (old,), {'_compute_loss_and_metrics': method('model', 'inputs', 'extra')})
    with pytest.raises(SwiftAPIError) as e:
        check_swift_api(bad)
    assert ('_compute_loss_and_metrics: takes (model, inputs, extra), AWPO expects (model, model_inputs, grpo_batch) '
            '(ms-swift < 4.4: (model, inputs))') in str(e.value)
    assert '_compute_advantages' not in str(e.value)
