# shellcheck shell=bash disable=SC2034
# Table 5 ablation "w/o variance-aware gating": the advantage is computed from the mixed reward only
# (the first term of Eq. 28 removed, w_mix = 1).
# The AWPO recipe with its own config: shells/configs/awpo_no_gating.yaml is awpo.yaml + that one switch.
recipe_parent awpo
METHOD_AWPO_CONFIG=shells/configs/awpo_no_gating.yaml
METHOD_PAPER_ROW='w/o variance-aware gating'
