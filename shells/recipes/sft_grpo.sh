# shellcheck shell=bash disable=SC2034
# SFT+GRPO (Tables 2-3): the GRPO (ToolRL rewards) recipe started from the SFT checkpoint of the same
# backbone (train.sh runs `sft` first if it is missing).
recipe_parent grpo
METHOD_PAPER_ROW='SFT+GRPO'
METHOD_INIT=sft
