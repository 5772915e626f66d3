# shellcheck shell=bash disable=SC2034
# GDPO (arXiv 2601.05242, group reward-decoupled normalisation; ours, not a baseline of the paper): the same two rewards as AWPO
# and Mixed-reward GRPO (outcome + judge, weights 1 and 1), each normalised within its group separately, the
# weighted sum then whitened over the batch: ms-swift's own implementation (--scale_rewards gdpo,
# swift/rl_core/advantage.py compute_advantages), stock trainer, loss "grpo", fixed clip.
# A failed judge call (None -> NaN): ms-swift's GDPO takes the group's mean and std of the judge column over
# the scores that exist (nanmean / nanstd) and sets the missing sample's normalised judge term to 0 (its
# group's mean); a group with no judge score at all gets judge term 0 for every sample (outcome term alone).
# Unlike Mixed-reward GRPO (nansum: a missing score counts as a judge score of 0, ranked low) a missing score
# is neutral here. Its rows sit beside the baselines of Tables 2-3, marked as ours (eval/tables.py OUR_ROWS).
METHOD_PLUGIN=plugin/baselines.py
METHOD_REWARDS=(awpo_outcome awpo_judge)
METHOD_ARGS=(--loss_type grpo --scale_rewards gdpo --reward_weights 1.0 1.0)
METHOD_AWPO_CONFIG=shells/configs/awpo.yaml
METHOD_NEEDS_JUDGE=1
METHOD_PAPER_ROW='GDPO'
