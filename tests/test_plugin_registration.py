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
