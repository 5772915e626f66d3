#!/usr/bin/env bash
# Serve the LLM judge (paper appendix B: Qwen3-235B-A22B) with vLLM's OpenAI-compatible server, on its
# own node, for the judge methods (awpo, its ablations, mixed_grpo):
#   bash shells/serve_judge.sh [--dry-run] [--size 235b|235b-fp8|30b|32b] [--model HF_ID] [--tp N] [--port P]
# Then, on the training nodes: export AWPO_JUDGE_BASE_URL=http://THIS_HOST:PORT/v1
# Sizes (weights in BF16 unless FP8; the node must hold the weights plus KV cache):
#   235b      Qwen/Qwen3-235B-A22B       TP 8 (~470 GB: one node of 8 x 80 GB)   <- the paper's judge
#   235b-fp8  Qwen/Qwen3-235B-A22B-FP8   TP 4 (~240 GB: 4 x 80 GB)
#   30b       Qwen/Qwen3-30B-A3B         TP 2 (cheap stand-in; not the paper's judge)
#   32b       Qwen/Qwen3-32B             TP 2 (cheap stand-in; not the paper's judge)
# The judge runs with thinking off (the rubric asks for {"score": x} directly; AWPO's judge client sends
# at most 32 new tokens, greedy, with guided JSON), prefix caching on (the 8 completions of a group share
# the rubric, tools, dialogue and reference rationale, so only the candidate's reasoning is new prefill).
# An API key, if wanted, is read by vLLM from VLLM_API_KEY (give the same value to AWPO_JUDGE_API_KEY).
# Needs vLLM >= 0.10 (--default-chat-template-kwargs, --enable-expert-parallel).
set -euo pipefail
# shellcheck source=shells/lib.sh
source "$(dirname "$0")/lib.sh"

SIZE=235b; MODEL_ID=''; TP=''; PORT=${JUDGE_PORT:-8000}
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY_RUN=1 ;;
    --size) SIZE=$2; shift ;;
    --model) MODEL_ID=$2; shift ;;
    --tp) TP=$2; shift ;;
    --port) PORT=$2; shift ;;
    -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
    *) die "unknown argument '$1' (--help)" ;;
  esac
  shift
done

case "$SIZE" in
  235b)     ID=Qwen/Qwen3-235B-A22B;     DEF_TP=8; MOE=1 ;;
  235b-fp8) ID=Qwen/Qwen3-235B-A22B-FP8; DEF_TP=4; MOE=1 ;;
  30b)      ID=Qwen/Qwen3-30B-A3B;       DEF_TP=2; MOE=1 ;;
  32b)      ID=Qwen/Qwen3-32B;           DEF_TP=2; MOE=0 ;;
  *) die "unknown --size '$SIZE' (235b, 235b-fp8, 30b, 32b)" ;;
esac
MODEL_ID=${MODEL_ID:-$ID}; TP=${TP:-$DEF_TP}

CMD=(vllm serve "$MODEL_ID" --served-model-name "$MODEL_ID" --host 0.0.0.0 --port "$PORT"
     --tensor-parallel-size "$TP" --max-model-len 16384 --gpu-memory-utilization 0.9
     --max-num-seqs 512 --enable-prefix-caching
     --default-chat-template-kwargs '{"enable_thinking": false}')
[ "$MOE" = 1 ] && CMD+=(--enable-expert-parallel)

say "judge $MODEL_ID on port $PORT (tensor parallel $TP); training nodes: AWPO_JUDGE_BASE_URL=http://$(hostname):$PORT/v1 AWPO_JUDGE_MODEL=$MODEL_ID"
run "${CMD[@]}"
