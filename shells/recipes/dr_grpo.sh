# shellcheck shell=bash disable=SC2034
# Dr.GRPO (Liu et al. 2025): no std normalisation of the group advantage, and a loss normalised by a
# constant (batch x max_completion_length) instead of each sequence length. ms-swift switches.
METHOD_PLUGIN=plugin/baselines.py
METHOD_REWARDS=(awpo_format awpo_exec)
METHOD_ARGS=(--loss_type dr_grpo --scale_rewards none)
METHOD_PAPER_ROW='Dr.GRPO'
