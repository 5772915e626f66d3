# shellcheck shell=bash disable=SC2034
# DAPO (Yu et al. 2025), all ms-swift switches: decoupled clip (eps_low 0.2 from common.sh, eps_high 0.28),
# dynamic sampling (regroup away zero-variance groups), token-level loss ("dapo"), overlong filtering
# (truncated samples masked) and the soft overlong punishment reward (ms-swift "soft_overlong": linear
# penalty over the last soft_cache_length tokens before max_completion_length). DAPO's cache is 1/5 of
# its length budget (4096 of 20480); 1/5 of our 1024 is 205, rounded up to 256.
# Cost of dynamic sampling in ms-swift 4.6 (grpo_trainer.py, the resample loop): a step generates its batch,
# then up to max_resample_times further full batches (rollouts + rewards) until 256 completions in groups of
# non-zero reward spread are collected; if they are not, it falls back to the first batch and the extra
# rollouts are wasted. So a step costs 1 to 1 + max_resample_times batches of rollouts: capped here at 2
# resamples, i.e. at most 3x the rollouts of the other methods (ms-swift's default 3 would allow 4x).
METHOD_PLUGIN=plugin/baselines.py
METHOD_REWARDS=(awpo_format awpo_exec soft_overlong)
METHOD_ARGS=(--loss_type dapo --epsilon_high 0.28 --dynamic_sample true --max_resample_times 2
             --overlong_filter true --soft_cache_length 256)
METHOD_PAPER_ROW='DAPO'
