"""The file named in ``swift rlhf --rlhf_type grpo --external_plugins plugin/awpo.py``.

Registers the AWPO rewards (``awpo_outcome``, ``awpo_format``, ``awpo_exec``, ``awpo_judge``) and replaces
GRPO's trainer with :class:`plugin.trainer.AWPOGRPOTrainer` (AWPO advantage, Eq. 28; dynamic clip, Eq. 29).
AWPO's own settings come from ``AWPO_CONFIG`` (a YAML/JSON file) and ``AWPO_<FIELD>`` variables: they are
loaded and validated here, at import, so a bad value stops the run before any model is loaded.
For baselines that need the rewards but stock GRPO, load ``plugin/baselines.py`` instead.
"""
import os
import sys

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _REPO not in sys.path:  # works from a clone without `pip install -e .`
    sys.path.insert(0, _REPO)

from plugin.config import load_config  # noqa: E402
from plugin.registry import register_rewards, register_trainer  # noqa: E402

load_config()  # fail fast on a bad config (ValueError naming the field); the trainer and rewards reuse it
register_rewards()
register_trainer()
