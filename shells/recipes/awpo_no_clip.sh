# shellcheck shell=bash disable=SC2034
# Table 5 ablation "w/o dynamic clipping": fixed clip radius eps_max (= common EPSILON 0.2) instead of Eq. 29.
# The AWPO recipe with its own config: shells/configs/awpo_no_clip.yaml is awpo.yaml + that one switch.
recipe_parent awpo
METHOD_AWPO_CONFIG=shells/configs/awpo_no_clip.yaml
METHOD_PAPER_ROW='w/o dynamic clipping'
