# shellcheck shell=bash disable=SC2034
# Sourced by shells/train.sh after common.sh. Only the switches that define this method live here.
# METHOD_KIND rl|sft; METHOD_PLUGIN the --external_plugins file; METHOD_REWARDS the --reward_funcs;
# METHOD_ARGS extra ms-swift switches; METHOD_AWPO_CONFIG the AWPO_CONFIG file (AWPO settings + judge);
# METHOD_NEEDS_JUDGE 1 if a reward calls the LLM judge; METHOD_PAPER_ROW the paper's row name (Tables 2-5,
# '' if none); METHOD_INIT base|sft (policy start point).

# SFT (Tables 2-3): token-level cross-entropy on the gold action of every instance (data_prep sft rows),
# full-parameter, settings SFT_* in common.sh.
METHOD_KIND=sft
METHOD_PLUGIN=
METHOD_REWARDS=()
METHOD_ARGS=()
METHOD_AWPO_CONFIG=
METHOD_NEEDS_JUDGE=0
METHOD_PAPER_ROW='SFT'
METHOD_INIT=base
