#!/usr/bin/env bash
# Train one method on one backbone with the shared recipe:
#   bash shells/train.sh [--dry-run] METHOD MODEL [-- extra ms-swift flags]
# METHOD: awpo grpo dr_grpo dapo mixed_grpo gdpo sft sft_grpo awpo_no_difficulty awpo_no_gating awpo_no_clip
#         awpo_gate_plus_flat awpo_gate_flat_only (gate_rule readings, docs/settings.md)
# MODEL:  qwen3-1.7b qwen3-4b qwen3-8b (GPU recipes) | smollm2 (CPU, the demo's small model)
# Settings: shells/recipes/common.sh (shared by all methods) + shells/recipes/METHOD.sh (the method's switches).
# Output: RUNS_DIR/MODEL/METHOD (RUNS_DIR default runs/); the trained model's folder is written to
# OUTPUT/FINAL. A finished run (OUTPUT/DONE) is skipped unless FORCE=1; an interrupted one resumes from
# its last checkpoint.
# Environment: RUNS_DIR, DATA_DIR, FORCE, MEM_PROFILE (80g|40g|24g), NPROC_PER_NODE (default 8), NNODES,
#   NODE_RANK, MASTER_ADDR, MASTER_PORT (multi-node: same command on every node), ROLLOUT_MODE=server with
#   ROLLOUT_HOST/ROLLOUT_PORT (where shells/serve_rollout.sh runs), AWPO_JUDGE_BASE_URL (judge methods),
#   CPU model only: CPU_STEPS (default 4), CPU_DATA (default the full training file).
set -euo pipefail
# shellcheck source=shells/lib.sh
source "$(dirname "$0")/lib.sh"

TAKES_EXTRA=1
parse_args "$@"
[ ${#POS[@]} -eq 2 ] || usage
METHOD=${POS[0]}; MODEL=${POS[1]}
export DRY_RUN
start_plan

# shellcheck source=shells/recipes/common.sh
source "$REPO_ROOT/shells/recipes/common.sh"
load_recipe "$METHOD" || exit 2

# visible_gpus: VISIBLE = the first GPUS_PER_NODE of the GPUs this node shows (CUDA_VISIBLE_DEVICES, else
# nvidia-smi's list), '' if neither says; 1 if there are fewer than GPUS_PER_NODE.
visible_gpus() {
  local ids
  if [ -n "${CUDA_VISIBLE_DEVICES:-}" ]; then IFS=, read -r -a ids <<< "$CUDA_VISIBLE_DEVICES"
  elif command -v nvidia-smi > /dev/null; then mapfile -t ids < <(nvidia-smi --query-gpu=index --format=csv,noheader)
  else VISIBLE=''; return 0; fi
  [ "${#ids[@]}" -ge "$GPUS_PER_NODE" ] || return 1
  VISIBLE=$(IFS=,; echo "${ids[*]:0:$GPUS_PER_NODE}")
  [ "${#ids[@]}" = "$GPUS_PER_NODE" ] || say "NPROC_PER_NODE=$GPUS_PER_NODE of ${#ids[@]} visible GPUs: CUDA_VISIBLE_DEVICES=$VISIBLE"
}

RUNS_DIR=${RUNS_DIR:-runs}
OUT=$RUNS_DIR/$MODEL/$METHOD
MODEL_ARGS=(); INFRA_ARGS=(); LAUNCH_ENV=(); MEM_ARGS=()

if [ "$MODEL" = smollm2 ]; then
  # The CPU backbone (SmolLM2-135M-Instruct): the same recipe scaled to 2 cores. What changes, and why:
  # LoRA (far fewer weights to update and save on 2 cores) with a LoRA learning rate, G = 4 and 64 new
  # tokens (~17 s a step on an idle 2-core machine), one prompt per step, no vLLM / DeepSpeed.
  if [ "$DRY_RUN" = 1 ]; then  # where cpu_model.smollm2 puts it (a real run converts it first if needed)
    MODEL_ID=${AWPO_SMOLLM2_DIR:-$HOME/.cache/awpo/SmolLM2-135M-Instruct}
  else
    MODEL_ID=$(cd "$REPO_ROOT" && python -m cpu_model.smollm2 | tail -n 1)
  fi
  # The model's ms-swift flags have one home: cpu_model/smollm2.py TRAIN_FLAGS.
  flags=$(cd "$REPO_ROOT" && python -m cpu_model.smollm2 --print-flags) || die "python -m cpu_model.smollm2 --print-flags failed"
  read -r -a MODEL_ARGS <<< "$flags"
  TUNER_TYPE=lora; LEARNING_RATE=1e-4; SFT_LEARNING_RATE=1e-4; NUM_GENERATIONS=4; PROMPTS_PER_STEP=1
  COMPLETIONS_PER_STEP=4; PER_DEVICE_BATCH=4; MAX_STEPS=${CPU_STEPS:-4}; SAVE_STEPS=$MAX_STEPS
  MAX_LENGTH=2048; MAX_COMPLETION_LENGTH=64; WARMUP_RATIO=0.0; LR_SCHEDULER=constant
  SFT_ROWS_PER_STEP=4; SFT_PER_DEVICE_BATCH=4; SFT_EPOCHS=1
  TRAIN_DATA=${CPU_DATA:-$TRAIN_DATA}; RATIONALE_DATA=$TRAIN_DATA; SFT_DATA=${CPU_SFT_DATA:-$SFT_DATA}
  # No worker processes on a CPU; persistent workers off with them (ms-swift 4.5.x defaults it on and torch
  # then refuses num_workers 0; 4.4 and 4.6 default it off, so this changes nothing there).
  INFRA_ARGS=(--dataloader_num_workers 0 --dataloader_persistent_workers false --dataset_num_proc 1 --report_to none)
  WORLD=1
else
  model_settings "$MODEL" || die "unknown MODEL '$MODEL' (one of: $MODELS smollm2) or ROLLOUT_MODE '${ROLLOUT_MODE:-}' (colocate, server)"
  mem_profile_args || die "unknown MEM_PROFILE '${MEM_PROFILE}' (80g, 40g or 24g)"
  NNODES=${NNODES:-1}
  WORLD=$((GPUS_PER_NODE * NNODES))
  # Thinking mode stated explicitly (common.sh, THINKING): the same for rollouts, SFT and evaluation. In
  # training mode ms-swift would also put an empty <think></think> in front of every earlier assistant turn
  # (add_non_thinking_prefix), which neither the rollout nor the served prompt has: off, so the trained
  # sequence is the served prompt + the target (tests/test_thinking_templates.py).
  MODEL_ARGS=(--torch_dtype bfloat16 --enable_thinking "$THINKING" --add_non_thinking_prefix false)
  INFRA_ARGS=(--deepspeed "$DEEPSPEED" --dataloader_num_workers 4 --dataset_num_proc 8 --report_to tensorboard)
  LAUNCH_ENV=(NPROC_PER_NODE="$GPUS_PER_NODE")
  # ms-swift takes fewer processes than visible GPUs for model parallel (swift/utils/env.py is_mp: visible //
  # NPROC_PER_NODE >= 2), which it rejects with DeepSpeed and vLLM: a launch sees exactly its GPUs.
  visible_gpus || die "CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES:-} lists fewer GPUs than NPROC_PER_NODE=$GPUS_PER_NODE"
  [ -z "$VISIBLE" ] || LAUNCH_ENV+=(CUDA_VISIBLE_DEVICES="$VISIBLE")
  hub_env || exit 2
  LAUNCH_ENV+=("${HUB_ENV[@]}")
  if [ "$NNODES" -gt 1 ]; then
    LAUNCH_ENV+=(NNODES="$NNODES" NODE_RANK="${NODE_RANK:?set NODE_RANK on every node}"
                 MASTER_ADDR="${MASTER_ADDR:?set MASTER_ADDR}" MASTER_PORT="${MASTER_PORT:-29500}")
  fi
fi

# Gradient accumulation so that one optimiser step always sees COMPLETIONS_PER_STEP completions (RL) or
# SFT_ROWS_PER_STEP rows (SFT), whatever the number of GPUs.
accum() {  # accum TOTAL PER_DEVICE
  local per_step=$(($2 * WORLD))
  [ $(($1 % per_step)) -eq 0 ] || die "$1 per step is not a multiple of $2 x $WORLD GPUs; change PER_DEVICE_BATCH"
  echo $(($1 / per_step))
}

# A finished run is skipped; an interrupted one resumes.
if [ -f "$OUT/DONE" ] && [ "${FORCE:-0}" != 1 ]; then
  say "$METHOD on $MODEL already done: $(cat "$OUT/FINAL" 2>/dev/null || echo "$OUT") (FORCE=1 to retrain)"
  exit 0
fi
if already_planned "train $OUT"; then
  say "$METHOD on $MODEL: planned above"
  exit 0
fi
RESUME=()
# Resume from the newest COMPLETE checkpoint (eval/checkpoints.py and docs/training.md say what complete
# means): a newer one left incomplete by a kill mid-save is moved to OUT/incomplete/ (never deleted; a dry
# run only reports it), so ms-swift does not crash on it.
aside=(--move-aside); [ "$DRY_RUN" = 1 ] && aside=()
last_ckpt=""
if [ -d "$OUT" ]; then
  last_ckpt=$(PYTHONPATH="$REPO_ROOT${PYTHONPATH:+:$PYTHONPATH}" python -m eval.checkpoints "${aside[@]}" "$OUT") ||
    die "could not check the checkpoints in $OUT (python -m eval.checkpoints)"
fi
if [ -n "$last_ckpt" ]; then
  say "resuming from $last_ckpt"
  RESUME=(--resume_from_checkpoint "$last_ckpt")
fi

# Policy start point: the base model, or the SFT run of the same backbone (SFT+GRPO).
START=$MODEL_ID
if [ "$METHOD_INIT" = sft ]; then
  sft_out=$RUNS_DIR/$MODEL/sft
  if [ ! -f "$sft_out/DONE" ]; then
    say "SFT+GRPO needs the SFT run of $MODEL first"
    dry=(); [ "$DRY_RUN" = 1 ] && dry=(--dry-run)
    bash "$REPO_ROOT/shells/train.sh" "${dry[@]}" sft "$MODEL"
  fi
  START=$(cat "$sft_out/FINAL" 2>/dev/null || echo "$sft_out/last-checkpoint")
  [ "$TUNER_TYPE" = lora ] && [ "$MODEL" = smollm2 ] && START=$sft_out/merged
fi

# ms-swift keeps OUTPUT/last-checkpoint pointing at the newest checkpoint (its --create_checkpoint_symlink
# is not used: in 4.6 it fails at the end of a run without evaluation).
COMMON_OUT=(--output_dir "$OUT" --add_version false
            --save_steps "$SAVE_STEPS" --save_total_limit 2 --logging_steps 1 --seed "$SEED"
            --split_dataset_ratio 0 --tuner_type "$TUNER_TYPE")

if [ "$METHOD_KIND" = sft ]; then
  GAS=$(accum "$SFT_ROWS_PER_STEP" "$SFT_PER_DEVICE_BATCH")
  CMD=(swift sft --model "$START" "${MODEL_ARGS[@]}" --agent_template hermes
       --dataset "$SFT_DATA" --num_train_epochs "$SFT_EPOCHS" --learning_rate "$SFT_LEARNING_RATE"
       --per_device_train_batch_size "$SFT_PER_DEVICE_BATCH" --gradient_accumulation_steps "$GAS"
       --max_length "$((MAX_LENGTH + MAX_COMPLETION_LENGTH))" --warmup_ratio 0.03
       "${COMMON_OUT[@]}" "${INFRA_ARGS[@]}")
  [ "$MODEL" = smollm2 ] && CMD+=(--max_steps "$MAX_STEPS")
  RUN_ENV=("${LAUNCH_ENV[@]}")
else
  GAS=$(accum "$COMPLETIONS_PER_STEP" "$PER_DEVICE_BATCH")
  CMD=(swift rlhf --rlhf_type grpo --model "$START" "${MODEL_ARGS[@]}" --agent_template hermes
       --external_plugins "$METHOD_PLUGIN" --reward_funcs "${METHOD_REWARDS[@]}"
       --dataset "$RATIONALE_DATA"
       --num_generations "$NUM_GENERATIONS" --per_device_train_batch_size "$PER_DEVICE_BATCH"
       --gradient_accumulation_steps "$GAS" --max_steps "$MAX_STEPS"
       --learning_rate "$LEARNING_RATE" --warmup_ratio "$WARMUP_RATIO" --lr_scheduler_type "$LR_SCHEDULER"
       --beta "$BETA" --epsilon "$EPSILON"
       --max_length "$MAX_LENGTH" --max_completion_length "$MAX_COMPLETION_LENGTH"
       --truncation_strategy "$TRUNCATION"
       --temperature "$TEMPERATURE" --top_p "$TOP_P" --log_completions true
       "${METHOD_ARGS[@]}" "${COMMON_OUT[@]}" "${INFRA_ARGS[@]}")
  if [ "$MODEL" != smollm2 ]; then
    if [ "$ROLLOUT" = colocate ]; then
      CMD+=(--use_vllm true --vllm_mode colocate --vllm_gpu_memory_utilization "$VLLM_GPU_MEM"
            --vllm_max_model_len "$((MAX_LENGTH + MAX_COMPLETION_LENGTH))" "${MEM_ARGS[@]}")
    else
      # Server mode: vLLM runs elsewhere, so --sleep_level / --offload_* have nothing to act on (ms-swift sets
      # sleep_level 0 there); the rollout server gets the same --max_length and truncation (serve_rollout.sh).
      CMD+=(--use_vllm true --vllm_mode server --vllm_server_host "${ROLLOUT_HOST:-ROLLOUT_NODE}"
            --vllm_server_port "${ROLLOUT_PORT:-8001}" --vllm_server_timeout 600)
      [ -n "${ROLLOUT_HOST:-}" ] || [ "$DRY_RUN" = 1 ] ||
        die "$MODEL rolls out on a vLLM server: start shells/serve_rollout.sh $MODEL on a node and set ROLLOUT_HOST"
    fi
  fi
  RUN_ENV=("${LAUNCH_ENV[@]}")
  if [ -n "$METHOD_AWPO_CONFIG" ]; then
    RUN_ENV+=(AWPO_CONFIG="$METHOD_AWPO_CONFIG")
  fi
  if [ "$METHOD_NEEDS_JUDGE" = 1 ]; then
    RUN_ENV+=(AWPO_JUDGE_CACHE_PATH="$OUT/judge_cache.jsonl")
    if [ "$MODEL" != smollm2 ]; then
      # A paper-scale run must not silently fall back to the offline rubric judge.
      if [ -z "${AWPO_JUDGE_BASE_URL:-}" ] && [ "$DRY_RUN" != 1 ]; then
        die "$METHOD calls the LLM judge: start shells/serve_judge.sh on the judge node and set AWPO_JUDGE_BASE_URL=http://HOST:$JUDGE_PORT/v1"
      fi
      RUN_ENV+=(AWPO_JUDGE_BASE_URL="${AWPO_JUDGE_BASE_URL:-http://JUDGE_NODE:$JUDGE_PORT/v1}")
    fi
  fi
fi
CMD+=("${RESUME[@]}" "${EXTRA[@]}")

# Inputs checked before anything is launched (ms-swift would load the model first, then take a missing
# dataset path for a hub id and time out after ~50 s): one line each.
check_inputs() {
  local data=$RATIONALE_DATA
  [ "$METHOD_KIND" = sft ] && data=$SFT_DATA
  [ -f "$data" ] || die "dataset $data does not exist (shells/reproduce.sh builds it; DATA_DIR or CPU_DATA say where it is)"
  [ -s "$data" ] || die "dataset $data is empty"
  if [ "$MODEL" = smollm2 ] || [ "$START" != "$MODEL_ID" ]; then
    [ -f "$START/config.json" ] || die "model folder $START has no config.json (not a finished model folder)"
  fi
  if [ "$METHOD_NEEDS_JUDGE" = 1 ] && [ -n "${AWPO_JUDGE_BASE_URL:-}" ]; then
    python - "$AWPO_JUDGE_BASE_URL" <<'PY' || die "judge server $AWPO_JUDGE_BASE_URL does not answer on /models (start shells/serve_judge.sh; the URL ends in /v1)"
import sys, urllib.request
try:
    urllib.request.urlopen(sys.argv[1].rstrip('/') + '/models', timeout=5)
except Exception:
    sys.exit(1)
PY
  fi
}
[ "$DRY_RUN" = 1 ] || check_inputs

say "$METHOD on $MODEL ($MODEL_ID, ${WORLD} process(es), accumulation $GAS) -> $OUT"
# The memory plan of this exact command on the profile's cards (shells/memory_plan.py): printed, and a launch
# that cannot fit stops here, naming the shortfall and what would fit (MEMORY_PLAN=0 skips the check).
if [ "$MODEL" != smollm2 ] && [ "${MEMORY_PLAN:-1}" != 0 ]; then
  python -m shells.memory_plan --backbone "$MODEL" --profile "${MEM_PROFILE:-80g}" --world "$WORLD" -- "${CMD[@]}" ||
    die "MEM_PROFILE=${MEM_PROFILE:-80g} does not fit $METHOD on $MODEL (memory plan above)"
fi
[ "$DRY_RUN" = 1 ] || mkdir -p "$OUT"
run "${RUN_ENV[@]}" "${CMD[@]}"

FINAL=$OUT/last-checkpoint
if [ "$TUNER_TYPE" = lora ] && [ "$METHOD_KIND" = sft ]; then
  # The evaluators serve LoRA adapters as they are; an SFT adapter is merged into the base weights
  # (ms-swift export) so that SFT+GRPO can start from a plain model folder.
  FINAL=$OUT/merged
  run swift export --adapters "$OUT/last-checkpoint" --merge_lora true --output_dir "$FINAL" --exist_ok true
fi
if [ "$DRY_RUN" != 1 ]; then
  [ -e "$FINAL" ] || die "training ended but $FINAL is missing"
  FINAL=$(readlink -f "$FINAL")
  echo "$FINAL" > "$OUT/FINAL"
  date -u +%FT%TZ > "$OUT/DONE"
  say "done in $(elapsed): model $FINAL, logs $OUT/logging.jsonl"
fi
