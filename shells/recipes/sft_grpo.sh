# shellcheck shell=bash disable=SC2034
# Sourced by shells/train.sh after common.sh. Only the switches that define this method live here.
# METHOD_KIND rl|sft; METHOD_PLUGIN the --external_plugins file; METHOD_REWARDS the --reward_funcs;
# METHOD_ARGS extra ms-swift switches; METHOD_AWPO_CONFIG the AWPO_CONFIG file (AWPO settings + judge);
# METHOD_NEEDS_JUDGE 1 if a reward calls the LLM judge; METHOD_PAPER_ROW the paper's row name (Tables 2-5,
# '' if none); METHOD_INIT base|sft (policy start point).

# SFT+GRPO (Tables 2-3): the GRPO (ToolRL rewards) recipe started from the SFT checkpoint of the same
# backbone (train.sh runs `sft` first if it is missing).
METHOD_KIND=rl
METHOD_PLUGIN=plugin/baselines.py
METHOD_REWARDS=(awpo_format awpo_exec)
METHOD_ARGS=(--loss_type grpo --scale_rewards group)
METHOD_AWPO_CONFIG=
METHOD_NEEDS_JUDGE=0
METHOD_PAPER_ROW='SFT+GRPO'
METHOD_INIT=sft
