# shellcheck shell=bash disable=SC2034
# "Mixed Reward GRPO" (Figure 1): the same two rewards as AWPO (outcome + judge, weights 1 and 1) summed
# and fed to stock ms-swift GRPO: no gating, no difficulty weighting, fixed clip.
# A failed judge call (timeout, unparseable reply) is None -> NaN, and ms-swift sums the weighted rewards
# with nansum: that completion's reward is R_out + 0, so it ranks low in its group as if the judge had
# scored 0. AWPO instead uses the outcome reward alone for a group with a missing judge score (w_mix = 0,
# plugin/advantage.py). Kept as stock GRPO does it, since this row is the stock baseline; watch the judge's
# failure rate in the logs when comparing it with AWPO.
METHOD_PLUGIN=plugin/baselines.py
METHOD_REWARDS=(awpo_outcome awpo_judge)
METHOD_ARGS=(--loss_type grpo --scale_rewards group --reward_weights 1.0 1.0)
METHOD_AWPO_CONFIG=shells/configs/awpo.yaml
METHOD_NEEDS_JUDGE=1
