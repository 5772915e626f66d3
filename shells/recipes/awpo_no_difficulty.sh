# shellcheck shell=bash disable=SC2034
# Table 5 ablation "w/o difficulty-aware weighting": AWPO with alpha_g = 1 for every group (Eq. 27 off).
# The AWPO recipe with its own config: shells/configs/awpo_no_difficulty.yaml is awpo.yaml + that one switch.
recipe_parent awpo
METHOD_AWPO_CONFIG=shells/configs/awpo_no_difficulty.yaml
METHOD_PAPER_ROW='w/o difficulty-aware weighting'
