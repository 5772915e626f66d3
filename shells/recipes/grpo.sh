# shellcheck shell=bash disable=SC2034
# GRPO with ToolRL-style rewards (Tables 2-3 "ToolRL"): format + tool-call match (R_out = S_format + S_exec,
# logged as two columns), stock ms-swift GRPO: group-std scaling, loss "grpo". No judge.
METHOD_PLUGIN=plugin/baselines.py
METHOD_REWARDS=(awpo_format awpo_exec)
METHOD_ARGS=(--loss_type grpo --scale_rewards group)
METHOD_PAPER_ROW='ToolRL'
