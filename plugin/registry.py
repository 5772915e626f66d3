"""Registration of AWPO's rewards and trainer into ms-swift's tables (idempotent: ms-swift imports the
``--external_plugins`` file in the main process and again in dataloader workers)."""
from __future__ import annotations

import logging

logger = logging.getLogger('awpo')

REWARDS = {
    'awpo_outcome': ('plugin.orm_outcome', 'AWPOOutcome'),  # R_out = S_format + S_exec (Eqs. 14-19)
    'awpo_format': ('plugin.orm_outcome', 'AWPOFormat'),    # S_format (Eq. 15)
    'awpo_exec': ('plugin.orm_outcome', 'AWPOExec'),        # S_exec (Eqs. 16-19)
    'awpo_judge': ('plugin.orm_judge', 'AWPOJudge'),      # R_reasoning, LLM-as-a-judge (appendix B)
}
TRAINER = 'plugin.trainer.AWPOGRPOTrainer'
_announced = set()


def register_rewards() -> dict:
    """``orms[name] = cls`` for every AWPO reward. Returns the registry slice it wrote. Refuses an ms-swift
    release outside the supported range first (``SwiftVersionError``), before importing its tables."""
    import importlib

    from plugin.swift_version import check_swift_version
    check_swift_version()
    from swift.rewards import orms
    for name, (module, cls) in REWARDS.items():
        orms[name] = getattr(importlib.import_module(module), cls)
    if 'rewards' not in _announced:
        _announced.add('rewards')
        logger.info('[AWPO] rewards registered: %s', ', '.join(REWARDS))
    return {k: orms[k] for k in REWARDS}


def register_trainer() -> None:
    """Make ``--rlhf_type grpo`` build :class:`plugin.trainer.AWPOGRPOTrainer`, after checking that the
    installed ms-swift has the private methods that trainer overrides (``SwiftAPIError`` otherwise)."""
    from swift.trainers.trainer_factory import TrainerFactory

    from plugin.trainer import check_swift_api
    check_swift_api()
    TrainerFactory.TRAINER_MAPPING['grpo'] = TRAINER
    if 'trainer' not in _announced:
        _announced.add('trainer')
        logger.info('[AWPO] GRPO trainer replaced by %s', TRAINER)
