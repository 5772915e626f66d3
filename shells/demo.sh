#!/usr/bin/env bash
# The whole AWPO pipeline on a CPU, offline, in minutes (the README's main command):
#   bash shells/demo.sh [--dry-run] [--quick] [--llm-judge]
# 1 model   the warm start: SmolLM2-135M-Instruct SFT'd on BFCL live cases so that it writes tool calls
#           (python -m cpu_model.warm_start: built here when missing, ~12 min on an idle 2-core machine)
# 2 data    the RL split of those cases (python -m data_prep bfcl-split): rows whose groups have outcome spread
# 3 train   a few AWPO steps: swift rlhf --rlhf_type grpo --external_plugins plugin/awpo.py, rewards
#           awpo_outcome + awpo_judge (offline rubric judge, or the endpoint in AWPO_JUDGE_BASE_URL), then
#           python -m eval.check_awpo_active: did a step open the gate, mix the judge in and tighten the clip?
# 4 eval    the warm start (before) and the trained model (after) on the same cases: BFCL simple_python
#           (bfcl-eval) and the held-out rows of the split (python -m cpu_model.heldout: format, S_exec); the
#           API-Bank sample with DEMO_APIBANK=1 (and in --quick). The serving cap comes from these cases
#           (python -m eval.demo_eval cap: the longest answer the warm start is trained to write, x 1.5), so no
#           well-formed answer is cut.
# 5 tables  python -m eval.tables (our rows beside the paper's)
# 6 plots   python -m eval.plots (rewards, AWPO gate, clip radius over the steps)
# It ends with the before/after table (python -m eval.demo_eval report: cases, accuracy, 95 % interval, and
# the answers the cap cut; --quick fails if the cap cut any).
# Settings: DEMO_STEPS (AWPO steps, default 6; --quick 4), DEMO_EVAL_LIMIT (BFCL cases per category and
# API-Bank cases per level, default 20; --quick 2), DEMO_HELDOUT (held-out rows, default 20; --quick 4),
# DEMO_BASELINE (1: also evaluate the warm start; --quick 0), DEMO_BFCL_CATEGORIES (default simple_python;
# a multi-turn category takes minutes a case on a CPU), DEMO_APIBANK (1: also the API-Bank sample, 9 cases,
# ~2 min a model; default 0: on 2026-12-04 it scored 1/8 before and after and took 3.7 of the demo's 17 min;
# --quick 1, so CI runs its path), DEMO_DIR (default runs/demo; everything the demo
# writes goes there), DEMO_COMPLETION (new tokens per rollout, default 160: a plan + one call). A finished
# step is not redone (delete DEMO_DIR, or FORCE=1).
# The warm start lives outside the repository (AWPO_WARMSTART_DIR, see cpu_model/warm_start.py).
set -euo pipefail
# shellcheck source=shells/lib.sh
source "$(dirname "$0")/lib.sh"

QUICK=0; LLM_JUDGE=0
script_option() {
  case "$1" in
    --quick) QUICK=1 ;;
    --llm-judge) LLM_JUDGE=1 ;;
    *) return 1 ;;
  esac
}
parse_args "$@"
[ ${#POS[@]} -eq 0 ] || die "unknown argument '${POS[0]}' (--help)"
export DRY_RUN
start_plan
DRY=(); [ "$DRY_RUN" = 1 ] && DRY=(--dry-run)
if [ "$QUICK" = 1 ]; then
  STEPS=${DEMO_STEPS:-4}; LIMIT=${DEMO_EVAL_LIMIT:-2}; HELDOUT=${DEMO_HELDOUT:-4}; BASELINE=${DEMO_BASELINE:-0}
  APIBANK=${DEMO_APIBANK:-1}
else
  STEPS=${DEMO_STEPS:-6}; LIMIT=${DEMO_EVAL_LIMIT:-20}; HELDOUT=${DEMO_HELDOUT:-20}; BASELINE=${DEMO_BASELINE:-1}
  APIBANK=${DEMO_APIBANK:-0}
fi
case "$APIBANK" in 0|1) ;; *) die "DEMO_APIBANK is 0 or 1, got '$APIBANK'" ;; esac
APIBANK_NOTE=''; [ "$APIBANK" = 1 ] && APIBANK_NOTE=' + API-Bank sample'
CATS=${DEMO_BFCL_CATEGORIES:-simple_python}
DEMO_DIR=${DEMO_DIR:-runs/demo}
DATA=$DEMO_DIR/data/rl.jsonl
HELDOUT_ROWS=$DEMO_DIR/data/heldout.jsonl
COMPLETION=${DEMO_COMPLETION:-160}
export RUNS_DIR=$DEMO_DIR/train RESULTS_DIR=$DEMO_DIR/results
TRAIN_OUT=$RUNS_DIR/smollm2/awpo
# No network in the demo: never ask a model hub.
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1

# --llm-judge: a real (weak) LLM judge on this CPU, SmolLM2 through llama-cpp-python's server
# (shells/serve_judge.sh --cpu), started here and stopped when the demo ends. It answers one request at a time.
if [ "$LLM_JUDGE" = 1 ]; then
  JPORT=${DEMO_JUDGE_PORT:-8471}
  export AWPO_JUDGE_BASE_URL=http://127.0.0.1:$JPORT/v1 AWPO_JUDGE_MODEL=smollm2-judge AWPO_JUDGE_CONCURRENCY=1 \
    AWPO_JUDGE_TIMEOUT=120 AWPO_JUDGE_BATCH_DEADLINE=900
  if [ "$DRY_RUN" = 1 ]; then
    bash "$REPO_ROOT/shells/serve_judge.sh" --dry-run --cpu --port "$JPORT"
  else
    mkdir -p "$DEMO_DIR"
    setsid bash "$REPO_ROOT/shells/serve_judge.sh" --cpu --port "$JPORT" > "$DEMO_DIR/judge_server.log" 2>&1 &
    JUDGE_PID=$!
    trap 'kill -- -"$JUDGE_PID" 2>/dev/null || true' EXIT
    python - "$AWPO_JUDGE_BASE_URL/models" <<'PY' || die "the CPU judge did not start in 120 s: see $DEMO_DIR/judge_server.log"
import sys, time, urllib.request
for _ in range(240):
    try:
        urllib.request.urlopen(sys.argv[1], timeout=2).read()
        sys.exit(0)
    except OSError:
        time.sleep(0.5)
sys.exit(1)
PY
  fi
fi
if [ -n "${AWPO_JUDGE_BASE_URL:-}" ]; then
  JUDGE="LLM judge at $AWPO_JUDGE_BASE_URL"
else
  JUDGE="offline rubric judge (deterministic approximation of the appendix-B rubric, not an LLM)"
fi
say "AWPO demo: $STEPS training steps; eval of $([ "$BASELINE" = 1 ] && echo 'the warm start and ')the AWPO model on BFCL $CATS ($LIMIT cases), $HELDOUT held-out rows$APIBANK_NOTE; judge: $JUDGE; outputs in $DEMO_DIR/"

# The project's environment must be active (README set-up): ms-swift, this package, the evaluators.
if [ "$DRY_RUN" != 1 ] && ! python -c 'import swift, plugin.advantage' 2>/dev/null; then
  die "python ($(command -v python)) cannot import ms-swift and this project: run 'bash shells/setup_cpu.sh' and 'source .venv/bin/activate' first"
fi

# Progress: each phase says what runs and roughly how long is left on an idle 2-core machine, from the
# default demo measured on 2026-12-04 (docs/cpu.md, "Measured times"): warm start ~12 min (82 SFT steps at
# ~8 s), AWPO ~40 s a step + ~20 s start, per model ~25 s of server start + BFCL set-up, ~2.5 s a BFCL case
# (8 answered at once), ~10 s of model load + ~2.8 s a held-out row (8 at once), API-Bank ~15 s + ~10 s a
# case (one at a time, at most 9); a busy machine takes longer.
MODELS=$(( BASELINE + 1 ))
WS_READY=0
python -c 'import sys; from cpu_model.warm_start import is_complete; from cpu_model.smollm2 import warm_start_dir
sys.exit(0 if is_complete(warm_start_dir()) else 1)' 2>/dev/null && WS_READY=1
APIBANK_CASES=$(( 3 * LIMIT < 9 ? 3 * LIMIT : 9 ))
EST=(0 $(( WS_READY ? 5 : 700 )) 5 $(( 20 + STEPS * 40 ))
     $(( 10 + MODELS * (35 + LIMIT * 25 / 10 + HELDOUT * 28 / 10 + APIBANK * (15 + APIBANK_CASES * 10)) )) 5 5)
phase() {  # phase N WHAT
  local n=$1 left=0 i; shift
  for (( i = n; i < ${#EST[@]}; i++ )); do left=$(( left + EST[i] )); done
  say "[$n/6] $* -- elapsed $(elapsed), about $(( (left + 59) / 60 )) min left (idle-machine estimate)"
}

phase 1 "model: the SmolLM2-135M warm start (SFT on BFCL live cases; $([ "$WS_READY" = 1 ] && echo ready ||
  echo 'missing: building it now, ~12 min'))"
if [ "$DRY_RUN" = 1 ]; then
  run python -m cpu_model.warm_start
  MODEL_DIR=$(python -c "from cpu_model.smollm2 import warm_start_dir; print(warm_start_dir())")
else
  MODEL_DIR=$(python -m cpu_model.warm_start | tail -n 1)
  say "      $MODEL_DIR"
fi
# shells/train.sh's smollm2 backbone is the folder AWPO_SMOLLM2_DIR names: the warm start.
export AWPO_SMOLLM2_DIR=$MODEL_DIR

phase 2 "data: the rl split of the BFCL live cases -> $DATA"
if [ "${FORCE:-0}" != 1 ] && python -m data_prep check-manifest --quiet "$DATA" 2>/dev/null; then
  say "      exists: kept"
else
  run python -m data_prep bfcl-split --out "$(dirname "$DATA")"
fi

phase 3 "train: AWPO, $STEPS steps from the warm start -> $TRAIN_OUT (swift's progress bar below)"
CPU_STEPS=$STEPS CPU_DATA=$DATA bash "$REPO_ROOT/shells/train.sh" "${DRY[@]}" awpo smollm2 -- \
  --max_completion_length "$COMPLETION"
CKPT=$(cat "$TRAIN_OUT/FINAL" 2>/dev/null || echo "$TRAIN_OUT/last-checkpoint")
# Did AWPO act? (a step with gate_open_frac > 0, w_mix_mean > 0, clip_eps < eps_max); CI makes this fatal.
if [ "$DRY_RUN" = 1 ]; then
  run python -m eval.check_awpo_active "$TRAIN_OUT"
else
  python -m eval.check_awpo_active "$TRAIN_OUT" >&2 || say "      AWPO did not act in these steps (see above)"
fi

phase 4 "eval: $([ "$BASELINE" = 1 ] && echo 'the warm start (before) and ')the AWPO model (after): BFCL $CATS ($LIMIT cases), $HELDOUT held-out rows$APIBANK_NOTE"
# The generation cap from the evaluated cases' answers (eval/demo_eval.py), for the server and the held-out scorer.
CAP_FILE=$RESULTS_DIR/cap.json
CAP_CMD=(python -m eval.demo_eval cap --tokenizer "$MODEL_DIR" --bfcl-categories "$CATS" --bfcl-limit "$LIMIT"
         --heldout "$HELDOUT_ROWS" --heldout-limit "$HELDOUT" --out "$CAP_FILE")
[ "$APIBANK" = 1 ] && CAP_CMD+=(--apibank-sample --apibank-limit "$LIMIT")
if [ "$DRY_RUN" = 1 ]; then
  run "${CAP_CMD[@]}"; CAP=CAP
else
  mkdir -p "$RESULTS_DIR"
  CAP=$("${CAP_CMD[@]}" | tail -n 1)
fi
ONLY=bfcl; [ "$APIBANK" = 1 ] && ONLY=bfcl,apibank
EVAL=(--only "$ONLY" --bfcl-categories "$CATS" --limit "$LIMIT")
[ "$APIBANK" = 1 ] && EVAL+=(--apibank-levels '1,2,3' --apibank-sample)
N_EVAL=$(( MODELS * 2 )); K=0
evaluate() {  # evaluate LABEL NAME CKPT [ADAPTER]: BFCL (+ API-Bank) through swift deploy, then the held-out rows
  local label=$1 name=$2 ckpt=$3 adapter=${4:-} t
  K=$(( K + 1 )); t=$(date +%s)
  say "      eval $K/$N_EVAL: $label: BFCL $CATS$APIBANK_NOTE (swift deploy, cap $CAP new tokens)"
  bash "$REPO_ROOT/shells/eval.sh" "${DRY[@]}" "${EVAL[@]}" "$ckpt" "$name" -- --smollm2 --max-new-tokens "$CAP"
  K=$(( K + 1 ))
  say "      eval $K/$N_EVAL: $label: $HELDOUT held-out rows (ms-swift TransformersEngine, cap $CAP new tokens)"
  local out=$RESULTS_DIR/$name/heldout.json
  if [ -f "$out" ] && [ "${FORCE:-0}" != 1 ]; then
    say "      exists: $out kept"
  else
    local cmd=(python -m cpu_model.heldout --model "$MODEL_DIR" --rows "$HELDOUT_ROWS" --limit "$HELDOUT"
               --max-new-tokens "$CAP" --out "$out")
    [ -n "$adapter" ] && cmd+=(--adapter "$adapter")
    run "${cmd[@]}"
  fi
  [ "$DRY_RUN" = 1 ] || say "      $label evaluated in $(( $(date +%s) - t )) s"
}
if [ "$BASELINE" = 1 ]; then
  evaluate 'before (warm start)' smollm2-warmstart "$MODEL_DIR"
fi
evaluate 'after (AWPO)' smollm2-awpo "$CKPT" "$CKPT"

phase 5 "tables -> $RESULTS_DIR/tables.md"
run python -m eval.tables --runs "$RESULTS_DIR/" --out "$RESULTS_DIR/tables.md"

phase 6 "plots -> $RESULTS_DIR/plots/"
run python -m eval.plots --train-log "$TRAIN_OUT" --out "$RESULTS_DIR/plots/"

if [ "$DRY_RUN" != 1 ]; then
  say "demo finished in $(elapsed). Outputs:"
  say "  warm start         $MODEL_DIR"
  say "  training data      $DATA (BFCL live, rl split)"
  say "  AWPO run           $TRAIN_OUT (logging.jsonl, completions.jsonl, awpo_config.json)"
  say "  trained adapter    $CKPT"
  say "  evaluation         $RESULTS_DIR/smollm2-*/ (bfcl.json, heldout.json$([ "$APIBANK" = 1 ] && echo ', apibank.json'), per-case files); cap $CAP_FILE"
  say "  tables             $RESULTS_DIR/tables.md (paper layout), $RESULTS_DIR/before_after.md (below)"
  say "  plots              $(find "$RESULTS_DIR/plots" -name '*.png' 2>/dev/null | sort | tr '\n' ' ')"
  say "before / after (warm start -> AWPO), the same cases:"
fi
# The before/after table (same cases, 95 % intervals), last on the screen; --quick (CI) fails if the cap cut
# any answer.
REPORT=(python -m eval.demo_eval report --results "$RESULTS_DIR" --cap "$CAP_FILE" --before smollm2-warmstart
        --after smollm2-awpo --out "$RESULTS_DIR/before_after.md")
if [ "$QUICK" = 1 ]; then REPORT+=(--require-uncut); fi
run "${REPORT[@]}"
