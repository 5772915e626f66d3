#!/usr/bin/env bash
# The whole AWPO pipeline on a CPU, offline, in minutes (the README's main command):
#   bash shells/demo.sh [--dry-run] [--quick] [--llm-judge]
# 1 model   the warm start: SmolLM2-135M-Instruct SFT'd on BFCL live cases so that it writes tool calls
#           (python -m cpu_model.warm_start: built once if missing, a few minutes on an idle 2-core machine)
# 2 data    the RL split of those cases (python -m data_prep bfcl-split): rows whose groups have outcome spread
# 3 train   a few AWPO steps: swift rlhf --rlhf_type grpo --external_plugins plugin/awpo.py, rewards
#           awpo_outcome + awpo_judge (offline rubric judge, or the endpoint in AWPO_JUDGE_BASE_URL), then
#           python -m eval.check_awpo_active: did a step open the gate, mix the judge in and tighten the clip?
# 4 eval    BFCL smoke subset (simple_python, multi_turn_base) and the API-Bank sample, for the warm start
#           and the trained model
# 5 tables  python -m eval.tables (our rows beside the paper's)
# 6 plots   python -m eval.plots (rewards, AWPO gate, clip radius over the steps)
# Settings: DEMO_STEPS (AWPO steps, default 6; --quick 4), DEMO_EVAL_LIMIT (cases per BFCL category /
# API-Bank level, default 2; --quick 1), DEMO_BASELINE (1: also evaluate the untrained model; --quick 0),
# DEMO_DIR (default runs/demo; everything the demo writes goes there), DEMO_COMPLETION (new tokens per
# rollout, default 160: a plan + one call). A finished step is not redone (delete DEMO_DIR, or FORCE=1).
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
  STEPS=${DEMO_STEPS:-4}; LIMIT=${DEMO_EVAL_LIMIT:-1}; BASELINE=${DEMO_BASELINE:-0}
else
  STEPS=${DEMO_STEPS:-6}; LIMIT=${DEMO_EVAL_LIMIT:-2}; BASELINE=${DEMO_BASELINE:-1}
fi
DEMO_DIR=${DEMO_DIR:-runs/demo}
DATA=$DEMO_DIR/data/rl.jsonl
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
say "AWPO demo: $STEPS training steps, eval $LIMIT cases per subset, judge: $JUDGE; outputs in $DEMO_DIR/"

# The project's environment must be active (README set-up): ms-swift, this package, the evaluators.
if [ "$DRY_RUN" != 1 ] && ! python -c 'import swift, plugin.advantage' 2>/dev/null; then
  die "python ($(command -v python)) cannot import ms-swift and this project: run 'bash shells/setup_cpu.sh' and 'source .venv/bin/activate' first"
fi

say "[1/6] model: the SmolLM2-135M warm start (SFT on BFCL live cases; built once if missing)"
if [ "$DRY_RUN" = 1 ]; then
  run python -m cpu_model.warm_start
  MODEL_DIR=$(python -c "from cpu_model.smollm2 import warm_start_dir; print(warm_start_dir())")
else
  MODEL_DIR=$(python -m cpu_model.warm_start | tail -n 1)
  say "      $MODEL_DIR"
fi
# shells/train.sh's smollm2 backbone is the folder AWPO_SMOLLM2_DIR names: the warm start.
export AWPO_SMOLLM2_DIR=$MODEL_DIR

say "[2/6] data: the rl split of the BFCL live cases -> $DATA"
if [ "${FORCE:-0}" != 1 ] && python -m data_prep check-manifest --quiet "$DATA" 2>/dev/null; then
  say "      exists: kept"
else
  run python -m data_prep bfcl-split --out "$(dirname "$DATA")"
fi

say "[3/6] train: AWPO, $STEPS steps from the warm start -> $TRAIN_OUT"
CPU_STEPS=$STEPS CPU_DATA=$DATA bash "$REPO_ROOT/shells/train.sh" "${DRY[@]}" awpo smollm2 -- \
  --max_completion_length "$COMPLETION"
CKPT=$(cat "$TRAIN_OUT/FINAL" 2>/dev/null || echo "$TRAIN_OUT/last-checkpoint")
# Did AWPO act? (a step with gate_open_frac > 0, w_mix_mean > 0, clip_eps < eps_max); CI makes this fatal.
if [ "$DRY_RUN" = 1 ]; then
  run python -m eval.check_awpo_active "$TRAIN_OUT"
else
  python -m eval.check_awpo_active "$TRAIN_OUT" >&2 || say "      AWPO did not act in these steps (see above)"
fi

say "[4/6] eval: BFCL smoke subset + API-Bank sample"
EVAL=(--only 'bfcl,apibank' --bfcl-categories 'simple_python,multi_turn_base' --apibank-levels '1,2,3'
      --apibank-sample --limit "$LIMIT")
if [ "$BASELINE" = 1 ]; then
  bash "$REPO_ROOT/shells/eval.sh" "${DRY[@]}" "${EVAL[@]}" "$MODEL_DIR" smollm2-warmstart -- --smollm2
fi
bash "$REPO_ROOT/shells/eval.sh" "${DRY[@]}" "${EVAL[@]}" "$CKPT" smollm2-awpo -- --smollm2

say "[5/6] tables -> $RESULTS_DIR/tables.md"
run python -m eval.tables --runs "$RESULTS_DIR/" --out "$RESULTS_DIR/tables.md"
[ "$DRY_RUN" = 1 ] || cat "$RESULTS_DIR/tables.md"

say "[6/6] plots -> $RESULTS_DIR/plots/"
run python -m eval.plots --train-log "$TRAIN_OUT" --out "$RESULTS_DIR/plots/"

if [ "$DRY_RUN" != 1 ]; then
  say "demo finished in $(elapsed). Outputs:"
  say "  warm start         $MODEL_DIR"
  say "  training data      $DATA (BFCL live, rl split)"
  say "  AWPO run           $TRAIN_OUT (logging.jsonl, completions.jsonl, awpo_config.json)"
  say "  trained adapter    $CKPT"
  say "  evaluation         $RESULTS_DIR/smollm2-*/ (bfcl.json, apibank.json, per-case files)"
  say "  tables             $RESULTS_DIR/tables.md"
  say "  plots              $(find "$RESULTS_DIR/plots" -name '*.png' 2>/dev/null | sort | tr '\n' ' ')"
fi
