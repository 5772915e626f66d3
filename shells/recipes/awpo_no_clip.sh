# shellcheck shell=bash disable=SC2034
# Sourced by shells/train.sh after common.sh. Only the switches that define this method live here.
# METHOD_KIND rl|sft; METHOD_PLUGIN the --external_plugins file; METHOD_REWARDS the --reward_funcs;
# METHOD_ARGS extra ms-swift switches; METHOD_AWPO_CONFIG the AWPO_CONFIG file (AWPO settings + judge);
# METHOD_NEEDS_JUDGE 1 if a reward calls the LLM judge; METHOD_PAPER_ROW the paper's row name (Tables 2-5,
# '' if none); METHOD_INIT base|sft (policy start point).

# Table 5 ablation "w/o dynamic clipping": fixed clip radius eps_max (= common EPSILON 0.2) instead of Eq. 29.
METHOD_KIND=rl
METHOD_PLUGIN=plugin/awpo.py
METHOD_REWARDS=(awpo_outcome awpo_judge)
METHOD_ARGS=()
METHOD_AWPO_CONFIG=shells/configs/awpo_no_clip.yaml
METHOD_NEEDS_JUDGE=1
METHOD_PAPER_ROW='w/o dynamic clipping'
METHOD_INIT=base
