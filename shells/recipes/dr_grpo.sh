# shellcheck shell=bash disable=SC2034
# Sourced by shells/train.sh after common.sh. Only the switches that define this method live here.
# METHOD_KIND rl|sft; METHOD_PLUGIN the --external_plugins file; METHOD_REWARDS the --reward_funcs;
# METHOD_ARGS extra ms-swift switches; METHOD_AWPO_CONFIG the AWPO_CONFIG file (AWPO settings + judge);
# METHOD_NEEDS_JUDGE 1 if a reward calls the LLM judge; METHOD_PAPER_ROW the paper's row name (Tables 2-5,
# '' if none); METHOD_INIT base|sft (policy start point).

# Dr.GRPO (Liu et al. 2025): no std normalisation of the group advantage, and a loss normalised by a
# constant (batch x max_completion_length) instead of each sequence length. ms-swift switches.
METHOD_KIND=rl
METHOD_PLUGIN=plugin/baselines.py
METHOD_REWARDS=(awpo_format awpo_exec)
METHOD_ARGS=(--loss_type dr_grpo --scale_rewards none)
METHOD_AWPO_CONFIG=
METHOD_NEEDS_JUDGE=0
METHOD_PAPER_ROW='Dr.GRPO'
METHOD_INIT=base
