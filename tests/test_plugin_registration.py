"""The ``--external_plugins`` entry files, imported the way ms-swift imports them."""
from __future__ import annotations

import importlib.util

import pytest

from testsupport import REPO


def load_as(name: str, path):
    """What ms-swift's ``import_external_file`` does: exec the file under a module name of its own."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_registration_is_idempotent_and_uses_swift_tables():
    from swift.rewards import orms
    from swift.trainers.trainer_factory import TrainerFactory
    from swift.utils.utils import import_external_file

    import_external_file(str(REPO / 'plugin' / 'awpo.py'))  # ms-swift's own importer
    first = {k: orms[k] for k in ('awpo_outcome', 'awpo_format', 'awpo_exec', 'awpo_judge')}
    load_as('_awpo_again', REPO / 'plugin' / 'awpo.py')  # a second import, e.g. in a dataloader worker
    load_as('_awpo_rewards_only', REPO / 'plugin' / 'baselines.py')
    assert {k: orms[k] for k in first} == first  # the very same classes, not re-created copies
    assert [c.__name__ for c in first.values()] == ['AWPOOutcome', 'AWPOFormat', 'AWPOExec', 'AWPOJudge']
    assert getattr(first['awpo_judge'], 'awpo_role', None) == 'judge'
    assert not any(getattr(first[k], 'awpo_role', None) == 'judge' for k in ('awpo_outcome', 'awpo_format'))
    assert TrainerFactory.TRAINER_MAPPING['grpo'] == 'plugin.trainer.AWPOGRPOTrainer'

    class Args:
        rlhf_type = 'grpo'
    from plugin.trainer import AWPOGRPOTrainer
    from swift.rlhf_trainers import GRPOTrainer
    cls = TrainerFactory.get_trainer_cls(Args())
    assert cls is AWPOGRPOTrainer and issubclass(cls, GRPOTrainer)


def test_bad_config_stops_the_plugin_at_import(monkeypatch):
    monkeypatch.setenv('AWPO_TAU_LOW', '1.9')
    with pytest.raises(ValueError, match="'tau_low'"):
        load_as('_awpo_bad_cfg', REPO / 'plugin' / 'awpo.py')


# ---------------------------------------------------------------------- ms-swift internals (plugin/trainer.py)
def test_swift_check_accepts_the_installed_grpo_trainer():
    import inspect

    from swift.rlhf_trainers import GRPOTrainer

    from plugin.trainer import SWIFT_ATTRIBUTES, SWIFT_METHODS, AWPOGRPOTrainer, check_swift_api
    check_swift_api(GRPOTrainer)  # the real class: no error
    assert [n for n in SWIFT_METHODS if n not in AWPOGRPOTrainer.__dict__] == []  # the list is what it overrides
    # every listed attribute is one ms-swift's own __init__ code assigns (so check_swift_state's list is real)
    src = ''.join(inspect.getsource(k) for k in GRPOTrainer.__mro__ if k.__module__.startswith('swift.'))
    assert [a for a in SWIFT_ATTRIBUTES if f'self.{a} =' not in src] == []


def test_swift_check_names_the_missing_method_and_versions():
    import swift
    from swift.rlhf_trainers import GRPOTrainer

    from plugin.trainer import SWIFT_METHODS, SwiftAPIError, check_swift_api
    old = type('OldGRPOTrainer', (), {n: getattr(GRPOTrainer, n) for n in SWIFT_METHODS if n != '_compute_advantages'})
    with pytest.raises(SwiftAPIError) as e:
        check_swift_api(old)
    msg = str(e.value)
    assert '_compute_advantages: missing' in msg and f'ms-swift {swift.__version__}' in msg
    from plugin.swift_version import INSTALL_HINT, SWIFT_RANGE
    assert f'supported: ms-swift {SWIFT_RANGE}' in msg and INSTALL_HINT in msg
    assert '_prepare_batch_inputs' not in msg  # only what is wrong is named

    def _prepare_batch_inputs(self, samples, mode):
        return samples
    changed = type('ChangedGRPOTrainer', (old,), {'_compute_advantages': GRPOTrainer._compute_advantages,
                                                  '_prepare_batch_inputs': _prepare_batch_inputs})
    with pytest.raises(SwiftAPIError,
                       match=r'_prepare_batch_inputs: takes \(samples, mode\), AWPO expects \(samples\)'):
        check_swift_api(changed)


def test_swift_state_check_names_a_missing_attribute():
    from collections import defaultdict
    from types import SimpleNamespace

    from plugin.trainer import SWIFT_ATTRIBUTES, SwiftAPIError, check_swift_state
    ok = {a: None for a in SWIFT_ATTRIBUTES}
    ok.update(_metrics={'train': defaultdict(list), 'eval': defaultdict(list)}, _logs={'rewards': {}})
    check_swift_state(SimpleNamespace(**ok))
    with pytest.raises(SwiftAPIError, match='attribute _logs: missing'):
        check_swift_state(SimpleNamespace(**{k: v for k, v in ok.items() if k != '_logs'}))
    with pytest.raises(SwiftAPIError, match="_metrics: expected a mapping with 'train' and 'eval'"):
        check_swift_state(SimpleNamespace(**{**ok, '_metrics': {'train': {}}}))


def test_missing_swift_method_stops_registration_and_construction(monkeypatch):
    """Start-up, not a step: registering the trainer and building it both fail before any model is touched."""
    from swift.trainers.trainer_factory import TrainerFactory

    from plugin import trainer as T
    from plugin.registry import register_trainer
    monkeypatch.setitem(T.SWIFT_METHODS, '_awpo_method_ms_swift_never_had', ())
    monkeypatch.setitem(TrainerFactory.TRAINER_MAPPING, 'grpo', 'swift.rlhf_trainers.GRPOTrainer')
    with pytest.raises(T.SwiftAPIError, match='_awpo_method_ms_swift_never_had: missing'):
        register_trainer()
    assert TrainerFactory.TRAINER_MAPPING['grpo'] == 'swift.rlhf_trainers.GRPOTrainer'  # not swapped
    with pytest.raises(T.SwiftAPIError, match='_awpo_method_ms_swift_never_had: missing'):
        T.AWPOGRPOTrainer(model=None, args=None)  # raises before GRPOTrainer.__init__ would need a model


# ---------------------------------------------------------------------- one AWPOConfig per process
def test_config_is_loaded_once_per_process(monkeypatch, tmp_path):
    import os

    from plugin import config as C
    from plugin.orm_judge import AWPOJudge
    from plugin.orm_outcome import AWPOExec, AWPOOutcome
    p = tmp_path / 'awpo.yaml'
    p.write_text('reward_name_match: set\n')
    monkeypatch.setenv('AWPO_CONFIG', str(p))
    loads = []
    real = C.AWPOConfig.load.__func__
    monkeypatch.setattr(C.AWPOConfig, 'load', classmethod(lambda cls, *a, **k: loads.append(a) or real(cls, *a, **k)))
    C.clear_config_cache()
    load_as('_awpo_once', REPO / 'plugin' / 'awpo.py')  # the entry validates it at import...
    outcome, exec_, judge = AWPOOutcome(), AWPOExec(), AWPOJudge()  # ...and the rewards reuse that load
    assert outcome.name_match == exec_.name_match == 'set' and judge.config is C.load_config().judge
    assert len(loads) == 1 and C.load_config() is C.load_config()
    monkeypatch.setenv('AWPO_EPS_MIX', '0.6')  # a changed environment is a new config, never a stale one
    assert C.load_config().eps_mix == 0.6 and len(loads) == 2
    p.write_text('reward_name_match: multiset\n')  # so is a changed file
    st = p.stat()
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert C.load_config().reward_name_match == 'multiset' and len(loads) == 3
