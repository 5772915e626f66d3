#!/usr/bin/env bash
# vLLM rollout server for server-mode training (ROLLOUT_MODE=server; the default is colocate), own node:
#   bash shells/serve_rollout.sh [--dry-run] MODEL        (MODEL: any backbone of common.sh)
# Then on the training node(s): ROLLOUT_MODE=server ROLLOUT_HOST=THIS_HOST bash shells/train.sh METHOD MODEL
# `swift rollout` serves the policy with vLLM and receives the trainer's weights after every update.
# Data parallel over the node's GPUs (ROLLOUT_GPUS, default 8): an 8B model fits one GPU, so 8 replicas
# generate 8x faster than one tensor-parallel engine. For SFT+GRPO, pass the SFT model: the rollout
# server is started from the same weights the trainer starts from (ROLLOUT_MODEL=path overrides).
# The server encodes prompts itself, so it gets the trainer's prompt budget and truncation rule
# (--max_length MAX_LENGTH, --truncation_strategy delete: the trainer drops longer prompts before sending,
# none reaches the server) and thinking mode; vLLM's window is prompt budget + completion budget, so every
# prompt the trainer accepts gets its full MAX_COMPLETION_LENGTH new tokens.
set -euo pipefail
# shellcheck source=shells/lib.sh
source "$(dirname "$0")/lib.sh"
parse_args "$@"
[ ${#POS[@]} -eq 1 ] || die "usage: serve_rollout.sh [--dry-run] MODEL"
# shellcheck source=shells/recipes/common.sh
source "$REPO_ROOT/shells/recipes/common.sh"
model_settings "${POS[0]}" || die "unknown MODEL '${POS[0]}' (one of: $MODELS)"
GPUS=${ROLLOUT_GPUS:-8}
hub_env || exit 2   # the hub the trainer downloads from (MODEL_HUB)
say "rollout server for ${ROLLOUT_MODEL:-$MODEL_ID} on port ${ROLLOUT_PORT:-8001}, $GPUS data-parallel engines"
run "${HUB_ENV[@]}" swift rollout --model "${ROLLOUT_MODEL:-$MODEL_ID}" --port "${ROLLOUT_PORT:-8001}" \
  --vllm_data_parallel_size "$GPUS" --vllm_tensor_parallel_size 1 \
  --vllm_max_model_len "$((MAX_LENGTH + MAX_COMPLETION_LENGTH))" --vllm_gpu_memory_utilization 0.9 \
  --max_length "$MAX_LENGTH" --truncation_strategy "$TRUNCATION" --enable_thinking "$THINKING"
