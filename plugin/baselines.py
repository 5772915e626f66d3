"""``--external_plugins plugin/baselines.py``: the AWPO rewards only, with ms-swift's stock GRPO trainer.

For the baselines of the paper's Tables 2-5 (ToolRL/GRPO, Dr.GRPO, DAPO, "Mixed Reward GRPO") that score
with the same rewards but do not use AWPO's advantage or clip.
"""
import os
import sys

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _REPO not in sys.path:
    sys.path.insert(0, _REPO)

from plugin.registry import register_rewards  # noqa: E402

register_rewards()
