#!/usr/bin/env bash
# Reproduce one of the paper's tables end to end, skipping what is already done:
#   bash shells/reproduce.sh [--dry-run] [--models "qwen3-1.7b qwen3-4b qwen3-8b"] TABLE
# TABLE: table2 (BFCL), table3 (API-Bank), table4 (MMLU-Pro), table5 (ablations, BFCL),
#        figure1 (training curves: GRPO, DAPO, Mixed-reward GRPO, AWPO on qwen3-4b), or all.
# Rows of ours beside the paper's (eval/tables.py OUR_ROWS, marked as ours): GDPO in tables 2-3 and figure1,
# the gate-rule readings (awpo_gate_plus_flat, awpo_gate_flat_only) in table5.
# Steps: training data (data_prep build -> rationales -> SFT rows), every training run the table needs
# (shells/train.sh: finished runs are skipped, interrupted ones resume), every evaluation it needs
# (shells/eval.sh: existing result files are skipped), then the rendered tables (eval.tables) or plots.
# Runs on one GPU node in sequence. Judge methods need the judge server (shells/serve_judge.sh on its own
# node, AWPO_JUDGE_BASE_URL); ROLLOUT_MODE=server runs need shells/serve_rollout.sh (ROLLOUT_HOST).
# A data file counts as done only when its manifest says it was finished (`python -m data_prep
# check-manifest`), not when it is merely non-empty: a killed rationales/SFT job is resumed, not trained on.
# On several training nodes, run the same command on each with NNODES/NODE_RANK/MASTER_ADDR set (RANK is
# read if NODE_RANK is not): data and evaluation run on node rank 0 only; the other nodes wait for the data
# manifests, then join each training run, and after each row wait for rank 0's evaluations of it (every node
# must enter a launch within torchrun's 600 s static rendezvous; WAIT_EVAL_S, default 24 h, WAIT_POLL_S).
# DATA_DIR and RUNS_DIR must be on a filesystem all nodes share
# (ZeRO-3 checkpoints are written by every rank, resume reads them back); RESULTS_DIR only on rank 0.
set -euo pipefail
# shellcheck source=shells/lib.sh
source "$(dirname "$0")/lib.sh"
# shellcheck source=shells/recipes/common.sh
source "$REPO_ROOT/shells/recipes/common.sh"

SEL_MODELS=$MODELS
script_option() {
  case "$1" in
    --models) SEL_MODELS=$2; OPT_SHIFT=2 ;;
    *) return 1 ;;
  esac
}
parse_args "$@"
[ ${#POS[@]} -eq 1 ] || die "usage: reproduce.sh [--dry-run] [--models LIST] TABLE (--help)"
TABLE=${POS[0]}
# Every argument is checked before the first paid or long step (the rationales cost money, a run GPU days).
case "$TABLE" in
  table2|table3|table4|table5|figure1|all) ;;
  *) die "unknown TABLE '$TABLE' (table2 table3 table4 table5 figure1 all)" ;;
esac
[ -n "${SEL_MODELS// /}" ] || die "--models is empty (one or more of: $MODELS)"
F1_MODELS=''; [ "$TABLE" = figure1 ] || [ "$TABLE" = all ] && F1_MODELS=${FIGURE1_MODEL:-qwen3-4b}
for m in $SEL_MODELS $F1_MODELS; do
  model_settings "$m" || die "unknown model '$m' in --models (one or more of: $MODELS; ROLLOUT_MODE colocate|server)"
done
if [ -n "${MEM_PROFILE:-}" ]; then mem_profile_args || die "unknown MEM_PROFILE '$MEM_PROFILE' (80g, 40g or 24g)"; fi
NNODES=${NNODES:-1}
RANK_HERE=${NODE_RANK:-${RANK:-0}}
[[ $NNODES =~ ^[1-9][0-9]*$ ]] || die "NNODES must be a positive integer, got '$NNODES'"
[[ $RANK_HERE =~ ^[0-9]+$ ]] && [ "$RANK_HERE" -lt "$NNODES" ] ||
  die "node rank '$RANK_HERE' (NODE_RANK / RANK) is not in 0..$((NNODES - 1))"
LEADER=1; [ "$RANK_HERE" = 0 ] || LEADER=0
export DRY_RUN NNODES
[ "$NNODES" -gt 1 ] && export NODE_RANK=$RANK_HERE
start_plan
DRY=(); [ "$DRY_RUN" = 1 ] && DRY=(--dry-run)
RUNS_DIR=${RUNS_DIR:-runs}; RESULTS_DIR=${RESULTS_DIR:-results}
POLL_S=${WAIT_POLL_S:-10}   # how often waiting nodes look for rank 0's data / evaluation markers
export RUNS_DIR RESULTS_DIR DATA_DIR

# What each table needs: rows (methods; "base" = the untrained backbone) and benchmarks.
MAIN_ROWS="base sft sft_grpo grpo dr_grpo dapo gdpo awpo"
case "$TABLE" in
  table2)  ROWS=$MAIN_ROWS; BENCH=bfcl ;;
  table3)  ROWS=$MAIN_ROWS; BENCH=apibank ;;
  table4)  ROWS="base awpo"; BENCH=mmlu_pro ;;
  table5)  ROWS="awpo awpo_no_difficulty awpo_no_gating awpo_no_clip awpo_gate_plus_flat awpo_gate_flat_only"; BENCH=bfcl ;;
  figure1) ROWS="grpo dapo mixed_grpo gdpo awpo"; BENCH=''; SEL_MODELS=${FIGURE1_MODEL:-qwen3-4b} ;;
  all)
    # The tables share data and runs; each is checked before the first step of any of them.
    for t in table2 table3 table4 table5 figure1; do
      bash "$REPO_ROOT/shells/reproduce.sh" "${DRY[@]}" --models "$SEL_MODELS" "$t"
    done
    exit 0 ;;
esac
say "$TABLE: models [$SEL_MODELS], rows [$ROWS], benchmark ${BENCH:-none (training curves)}, node rank $RANK_HERE of $NNODES"

# ---- 1. training data (paper Sec. 4.1), each file built once, on node rank 0 only
finished() { python -m data_prep check-manifest --quiet "$1" 2>/dev/null; }
need_data() {
  if finished "$1"; then say "data $1 finished (manifest): skipped"; return 1; fi
  ! already_planned "data $1"
}
# After a step, its output must carry a finished manifest; otherwise stop before training on it.
require_finished() {
  [ "$DRY_RUN" = 1 ] && return 0
  python -m data_prep check-manifest "$1" >&2 || die "$1 is not finished (see above): not training on it"
}
# SFT rows: one file per thinking mode of the selected backbones (common.sh SFT_DATA_THINK / _NOTHINK).
SFT_FILES=()
if [[ " $ROWS " == *" sft"* ]]; then
  for m in $SEL_MODELS; do
    model_settings "$m"
    [[ " ${SFT_FILES[*]} " == *" $SFT_DATA "* ]] || SFT_FILES+=("$SFT_DATA")
  done
fi
DATA_FILES=()
if [ "$ROWS" != base ]; then
  DATA_FILES=("$TRAIN_DATA" "$RATIONALE_DATA" "${SFT_FILES[@]}")
fi
if [ ${#DATA_FILES[@]} -gt 0 ] && [ "$LEADER" = 1 ]; then
  if [ "$DRY_RUN" != 1 ] && [ -z "${OPENAI_API_KEY:-}" ] && ! finished "$RATIONALE_DATA"; then
    die "the rationales step calls $RATIONALE_MODEL: set OPENAI_API_KEY (or build $RATIONALE_DATA elsewhere)"
  fi
  if need_data "$TRAIN_DATA"; then
    run python -m data_prep build --sources "$TRAIN_SOURCES" --out "$TRAIN_DATA"
  fi
  require_finished "$TRAIN_DATA"
  if need_data "$RATIONALE_DATA"; then
    # Rows RL would drop (prompt over MAX_LENGTH with the backbones' Qwen3 tokenizer) get no paid rationale.
    run python -m data_prep rationales --in "$TRAIN_DATA" --out "$RATIONALE_DATA" --model "$RATIONALE_MODEL" \
      --max-length "$MAX_LENGTH" --tokenizer "${RATIONALE_TOKENIZER:-Qwen/Qwen3-8B}" --model-type qwen3 --template qwen3
  fi
  require_finished "$RATIONALE_DATA"
  for f in "${SFT_FILES[@]}"; do
    think=true; [ "$f" = "$SFT_DATA_THINK" ] || think=false
    if need_data "$f"; then
      run python -m data_prep sft --in "$RATIONALE_DATA" --out "$f" --thinking "$think"
    fi
    require_finished "$f"
  done
elif [ ${#DATA_FILES[@]} -gt 0 ]; then
  # Other nodes: the manifests rank 0 writes last are the marker. Without a shared DATA_DIR they never
  # appear here: stop after WAIT_DATA_S (default 48 h, the rationales may take long) naming the cause.
  say "node rank $RANK_HERE: waiting for rank 0's data (${DATA_FILES[*]})"
  if [ "$DRY_RUN" != 1 ]; then
    waited=0
    for f in "${DATA_FILES[@]}"; do
      until finished "$f"; do
        [ "$waited" -lt "${WAIT_DATA_S:-172800}" ] ||
          die "$f not finished after ${waited}s: is DATA_DIR ($DATA_DIR) shared with node rank 0?"
        sleep "$POLL_S"; waited=$((waited + POLL_S))
      done
    done
  fi
fi

# ---- 2. training runs, 3. evaluations
# Several nodes: ms-swift starts torchrun with the static rendezvous (600 s), so every node must enter each
# training launch within that window of the others. Rank 0 evaluates between two launches (BFCL: tens of
# minutes), so the other nodes wait, after each row, for rank 0's marker RUNS_DIR/.sync/TABLE/MODEL-ROW.evaluated
# (written once that row's evaluations or plots are done; rank 0 clears the table's markers when it starts).
# After deleting results to re-evaluate them on several nodes, delete RUNS_DIR/.sync as well.
SYNC_DIR=$RUNS_DIR/.sync/$TABLE
if [ "$NNODES" -gt 1 ] && [ "$LEADER" = 1 ] && [ "$DRY_RUN" != 1 ]; then
  rm -rf "$SYNC_DIR"; mkdir -p "$SYNC_DIR"
  # rank 0 stopping with an error tells the waiting nodes, which stop too instead of waiting WAIT_EVAL_S
  rank0_exit() { local rc=$?; [ "$rc" = 0 ] || echo "exit $rc at $(date -u +%FT%TZ)" > "$SYNC_DIR/rank0.failed"; }
  trap rank0_exit EXIT
fi
row_evaluated() {  # rank 0: this row's evaluations are done
  [ "$NNODES" -gt 1 ] && [ "$DRY_RUN" != 1 ] || return 0
  date -u +%FT%TZ > "$SYNC_DIR/$1.evaluated"
}
wait_for_rank0() {  # other ranks: before the next launch, until rank 0 has evaluated this row
  say "node rank $RANK_HERE: waiting for node rank 0 to evaluate $1 (the next launch needs every node)"
  [ "$DRY_RUN" != 1 ] || return 0
  local waited=0
  until [ -f "$SYNC_DIR/$1.evaluated" ]; do
    [ ! -f "$SYNC_DIR/rank0.failed" ] || die "node rank 0 stopped ($(cat "$SYNC_DIR/rank0.failed")): see its output (a marker of an earlier attempt? start node rank 0 first: it clears $SYNC_DIR)"
    [ "$waited" -lt "${WAIT_EVAL_S:-86400}" ] ||
      die "node rank 0 has not evaluated $1 after ${waited}s (no $SYNC_DIR/$1.evaluated): is RUNS_DIR shared with it, is it still running?"
    sleep "$POLL_S"; waited=$((waited + POLL_S))
  done
}
for model in $SEL_MODELS; do
  model_settings "$model" || die "unknown model '$model' (one of: $MODELS)"
  for row in $ROWS; do
    if [ "$row" = base ]; then
      ckpt=$MODEL_ID; paper_row=$PAPER_GROUP/Base
    else
      load_recipe "$row"
      paper_row=${METHOD_PAPER_ROW:+$PAPER_GROUP/$METHOD_PAPER_ROW}
      bash "$REPO_ROOT/shells/train.sh" "${DRY[@]}" "$row" "$model"
      out=$RUNS_DIR/$model/$row
      ckpt=$(cat "$out/FINAL" 2>/dev/null || echo "$out/last-checkpoint")
    fi
    if [ "$LEADER" != 1 ]; then
      wait_for_rank0 "$model-$row"  # evaluation and plots: node rank 0 only
      continue
    elif [ -n "$BENCH" ]; then
      bash "$REPO_ROOT/shells/eval.sh" "${DRY[@]}" --only "$BENCH" --paper-row "$paper_row" --thinking "$THINKING" \
        "$ckpt" "$model-$row"
    elif [ "$row" != base ]; then
      run python -m eval.plots --train-log "$RUNS_DIR/$model/$row" --out "$RESULTS_DIR/plots/$model-$row"
    fi
    row_evaluated "$model-$row"
  done
done

# ---- 4. the table, our rows beside the paper's
if [ "$LEADER" != 1 ]; then
  say "node rank $RANK_HERE: training done; node rank 0 evaluates and writes the table"
elif [ -n "$BENCH" ]; then
  run python -m eval.tables --runs "$RESULTS_DIR/" --out "$RESULTS_DIR/tables.md"
  [ "$DRY_RUN" = 1 ] || say "$TABLE done in $(elapsed): $RESULTS_DIR/tables.md"
else
  [ "$DRY_RUN" = 1 ] || say "$TABLE done in $(elapsed): plots in $RESULTS_DIR/plots/"
fi
