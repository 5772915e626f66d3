#!/usr/bin/env bash
# One-step GPU smoke test: run it first on a new cluster or software stack (torch / vllm / ms-swift / deepspeed),
# before any paper-scale run. Every step must succeed and leave its output, or the script stops loudly.
#   bash shells/gpu_smoke.sh [--dry-run] [MODEL]            (MODEL: a backbone of common.sh, default qwen3-1.7b)
# 1. AWPO, colocate vLLM, ZeRO-3, on 2 ranks (SMOKE_GPUS, >= 2: the multi-process path the CPU cannot run),
#    one optimiser step of 1 prompt x 8 completions at the recipe's learning rate (no warm-up: one warm-up
#    step would be the whole run, at LR 0), with the real judge (AWPO_JUDGE_BASE_URL). train.sh gives the
#    launch exactly SMOKE_GPUS GPUs (CUDA_VISIBLE_DEVICES): ms-swift would take 2 ranks on 8 visible GPUs
#    for model parallel and refuse DeepSpeed and vLLM.
# 2. GRPO in server mode: `swift rollout` (serve_rollout.sh) on GPU SMOKE_ROLLOUT_GPU, trainer on GPU
#    SMOKE_TRAIN_GPU, one step (weight sync trainer -> server included).
# 3. Serve step 1's checkpoint with vLLM (eval.sh: thinking mode, --max-model-len) and score 5 BFCL cases.
# Data: the bundled demo set (data_prep demo), no paid step. Output: SMOKE_DIR (default runs-smoke/).
# Each training step prints its memory plan (shells/memory_plan.py) and stops if the card cannot hold it;
# MEM_PROFILE (80g | 40g | 24g, as for train.sh) also sets the steps' micro-batch (the rest is accumulation).
# Needs: SMOKE_GPUS GPUs (step 1; steps 2 and 3 use one or two of them), AWPO_JUDGE_BASE_URL, and bfcl-eval in
# .venv-eval (shells/setup_gpu.sh installs it).
set -euo pipefail
# shellcheck source=shells/lib.sh
source "$(dirname "$0")/lib.sh"
parse_args "$@"
[ ${#POS[@]} -le 1 ] || die "usage: gpu_smoke.sh [--dry-run] [MODEL]"
MODEL=${POS[0]:-qwen3-1.7b}
# shellcheck source=shells/recipes/common.sh
source "$REPO_ROOT/shells/recipes/common.sh"
model_settings "$MODEL" || die "unknown MODEL '$MODEL' (one of: $MODELS)"
mem_profile_args || die "unknown MEM_PROFILE '${MEM_PROFILE}' (80g, 40g or 24g)"
SMOKE_GPUS=${SMOKE_GPUS:-2}
[ "$SMOKE_GPUS" -ge 2 ] && [ $((8 % SMOKE_GPUS)) -eq 0 ] ||
  die "SMOKE_GPUS must be 2, 4 or 8 (>= 2 ranks, 8 completions split evenly), got $SMOKE_GPUS"
SMOKE_DIR=$(abspath "${SMOKE_DIR:-runs-smoke}")
export DRY_RUN
start_plan
DRY=(); [ "$DRY_RUN" = 1 ] && DRY=(--dry-run)
if [ "$DRY_RUN" != 1 ]; then
  [ -n "${AWPO_JUDGE_BASE_URL:-}" ] || die "set AWPO_JUDGE_BASE_URL (shells/serve_judge.sh): step 1 calls the judge"
  rm -rf "$SMOKE_DIR/runs" "$SMOKE_DIR/results"  # a fresh step every time (no resume, no skipped eval)
  mkdir -p "$SMOKE_DIR"
fi
# One optimiser step, 1 prompt x 8 completions: the flags after `--` override the recipe's batch (last wins).
# --warmup_ratio 0: transformers rounds any warm-up ratio up to one step, and that step's LR is 0.
ONE_STEP=(--max_steps 1 --save_steps 1 --warmup_ratio 0)
# The 8 completions of the step in micro-batches of the profile's size (MEM_PROFILE: 4 / 2 / 1 per GPU), the
# rest by accumulation: step 2 trains on one GPU, where 8 at once need ~48 GiB for the 1.7B (memory plan).
batch() {  # batch GPUS: the micro-batch and accumulation flags for 8 completions over GPUS ranks
  local mb=$((8 / $1)); [ "$mb" -le "$PER_DEVICE_BATCH" ] || mb=$PER_DEVICE_BATCH
  echo "--per_device_train_batch_size $mb --gradient_accumulation_steps $((8 / ($1 * mb)))"
}
read -r -a STEP1_BATCH <<< "$(batch "$SMOKE_GPUS")"
read -r -a STEP2_BATCH <<< "$(batch 1)"
export DATA_DIR=$SMOKE_DIR/data RUNS_DIR=$SMOKE_DIR/runs RESULTS_DIR=$SMOKE_DIR/results
fail() { die "SMOKE FAILED at $*"; }

say "versions (the pairs docs/training.md 'Versions' lists as tested)"
run python -c 'import torch, vllm, swift, transformers, deepspeed; print("torch", torch.__version__, "cuda", torch.version.cuda, "gpus", torch.cuda.device_count(), "| vllm", vllm.__version__, "| ms-swift", swift.__version__, "| transformers", transformers.__version__, "| deepspeed", deepspeed.__version__)' ||
  fail "imports"
run python -m data_prep demo --out "$DATA_DIR/awpo_train_rationales.jsonl" || fail "demo data"

# ---- 1. AWPO colocate on SMOKE_GPUS ranks
say "step 1/3: awpo, colocate, $SMOKE_GPUS ranks, 1 step"
NPROC_PER_NODE=$SMOKE_GPUS ROLLOUT_MODE=colocate bash "$REPO_ROOT/shells/train.sh" "${DRY[@]}" awpo "$MODEL" -- \
  "${ONE_STEP[@]}" "${STEP1_BATCH[@]}" || fail "step 1 (awpo colocate)"
CKPT=$RUNS_DIR/$MODEL/awpo/last-checkpoint
if [ "$DRY_RUN" != 1 ]; then
  [ -f "$CKPT/config.json" ] || fail "step 1: no checkpoint at $CKPT"
  grep -q '"awpo/' "$RUNS_DIR/$MODEL/awpo/logging.jsonl" || fail "step 1: no awpo/* metrics in logging.jsonl"
fi

# ---- 2. GRPO, server mode: rollout server on one GPU, trainer on another
PORT=${SMOKE_ROLLOUT_PORT:-8011}
say "step 2/3: grpo, server mode (rollout on GPU ${SMOKE_ROLLOUT_GPU:-1}, trainer on GPU ${SMOKE_TRAIN_GPU:-0})"
if [ "$DRY_RUN" = 1 ]; then
  ROLLOUT_GPUS=1 ROLLOUT_PORT=$PORT bash "$REPO_ROOT/shells/serve_rollout.sh" --dry-run "$MODEL"
else
  CUDA_VISIBLE_DEVICES=${SMOKE_ROLLOUT_GPU:-1} ROLLOUT_GPUS=1 ROLLOUT_PORT=$PORT setsid \
    bash "$REPO_ROOT/shells/serve_rollout.sh" "$MODEL" > "$SMOKE_DIR/rollout.log" 2>&1 &
  ROLLOUT_PID=$!
  trap 'kill -- -"$ROLLOUT_PID" 2>/dev/null || true; rm -f "${DRY_PLAN:-}"' EXIT
  for _ in $(seq 1 120); do  # up to 20 minutes for the download and the vLLM start
    python -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$PORT/health/', timeout=5)" 2>/dev/null && break
    kill -0 "$ROLLOUT_PID" 2>/dev/null || fail "step 2: swift rollout exited; see $SMOKE_DIR/rollout.log"
    sleep "${SMOKE_POLL_S:-10}"
  done
  python -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$PORT/health/', timeout=5)" ||
    fail "step 2: swift rollout not healthy after 20 min; see $SMOKE_DIR/rollout.log"
fi
CUDA_VISIBLE_DEVICES=${SMOKE_TRAIN_GPU:-0} NPROC_PER_NODE=1 ROLLOUT_MODE=server ROLLOUT_HOST=127.0.0.1 \
  ROLLOUT_PORT=$PORT bash "$REPO_ROOT/shells/train.sh" "${DRY[@]}" grpo "$MODEL" -- \
  "${ONE_STEP[@]}" "${STEP2_BATCH[@]}" || fail "step 2 (grpo server mode)"
if [ "$DRY_RUN" != 1 ]; then
  [ -f "$RUNS_DIR/$MODEL/grpo/last-checkpoint/config.json" ] || fail "step 2: no checkpoint"
  kill -- -"$ROLLOUT_PID" 2>/dev/null || true
fi

# ---- 3. serve step 1's checkpoint, 5 BFCL cases
say "step 3/3: serve $CKPT with vLLM, 5 BFCL cases"
bash "$REPO_ROOT/shells/eval.sh" "${DRY[@]}" --only bfcl --bfcl-categories simple_python --limit 5 \
  --thinking "$THINKING" "$CKPT" smoke-bfcl || fail "step 3 (serve + BFCL)"
if [ "$DRY_RUN" != 1 ]; then
  python - "$RESULTS_DIR/smoke-bfcl/bfcl.json" <<'PY' || fail "step 3: BFCL result incomplete"
import json, sys
s = json.load(open(sys.argv[1]))
n = s['scores']['categories']['simple_python']['total_count']
assert n == 5, f'{n} cases scored, expected 5'
print(f"[gpu_smoke] BFCL simple_python on 5 cases: {s['scores']['categories']['simple_python']['accuracy']} %")
PY
  say "SMOKE PASSED in $(elapsed): $SMOKE_DIR"
fi
