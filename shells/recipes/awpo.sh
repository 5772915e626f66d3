# shellcheck shell=bash disable=SC2034
# AWPO (paper Sec. 3.2, Algorithm 1): outcome reward + judge reasoning reward; the plugin replaces the
# GRPO trainer with the AWPO one (variance-aware gating Eq. 25, difficulty weighting Eq. 27, mixed
# advantage Eq. 28, dynamic clip Eq. 29). Loss: ms-swift default "grpo" (sequence mean), as GRPO/ToolRL.
METHOD_PLUGIN=plugin/awpo.py
METHOD_REWARDS=(awpo_outcome awpo_judge)
METHOD_AWPO_CONFIG=shells/configs/awpo.yaml
METHOD_NEEDS_JUDGE=1
METHOD_PAPER_ROW='AWPO'
