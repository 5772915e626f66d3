#!/usr/bin/env bash
# Reproduce one of the paper's tables end to end, skipping what is already done:
#   bash shells/reproduce.sh [--dry-run] [--models "qwen3-1.7b qwen3-4b qwen3-8b"] TABLE
# TABLE: table2 (BFCL), table3 (API-Bank), table4 (MMLU-Pro), table5 (ablations, BFCL),
#        figure1 (training curves: GRPO, DAPO, Mixed-reward GRPO, AWPO on qwen3-4b), or all.
# Steps: training data (data_prep build -> rationales -> SFT rows), every training run the table needs
# (shells/train.sh: finished runs are skipped, interrupted ones resume), every evaluation it needs
# (shells/eval.sh: existing result files are skipped), then the rendered tables (eval.tables) or plots.
# Runs on one GPU node in sequence. Judge methods need the judge server (shells/serve_judge.sh on its own
# node, AWPO_JUDGE_BASE_URL), the 8B runs the rollout server (shells/serve_rollout.sh, ROLLOUT_HOST).
# On several training nodes, run the same command on each with NNODES/NODE_RANK/MASTER_ADDR set.
set -euo pipefail
# shellcheck source=shells/lib.sh
source "$(dirname "$0")/lib.sh"
# shellcheck source=shells/recipes/common.sh
source "$REPO_ROOT/shells/recipes/common.sh"

POS=(); SEL_MODELS=$MODELS
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY_RUN=1 ;;
    --models) SEL_MODELS=$2; shift ;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
    *) POS+=("$1") ;;
  esac
  shift
done
[ ${#POS[@]} -eq 1 ] || die "usage: reproduce.sh [--dry-run] [--models LIST] TABLE (--help)"
TABLE=${POS[0]}
export DRY_RUN
start_plan
DRY=(); [ "$DRY_RUN" = 1 ] && DRY=(--dry-run)
RUNS_DIR=${RUNS_DIR:-runs}; RESULTS_DIR=${RESULTS_DIR:-results}
export RUNS_DIR RESULTS_DIR

# What each table needs: rows (methods; "base" = the untrained backbone) and benchmarks.
MAIN_ROWS="base sft sft_grpo grpo dr_grpo dapo awpo"
case "$TABLE" in
  table2)  ROWS=$MAIN_ROWS; BENCH=bfcl ;;
  table3)  ROWS=$MAIN_ROWS; BENCH=apibank ;;
  table4)  ROWS="base awpo"; BENCH=mmlu_pro ;;
  table5)  ROWS="awpo awpo_no_difficulty awpo_no_gating awpo_no_clip"; BENCH=bfcl ;;
  figure1) ROWS="grpo dapo mixed_grpo awpo"; BENCH=''; SEL_MODELS=${FIGURE1_MODEL:-qwen3-4b} ;;
  all)
    for t in table2 table3 table4 table5 figure1; do
      bash "$REPO_ROOT/shells/reproduce.sh" "${DRY[@]}" --models "$SEL_MODELS" "$t"
    done
    exit 0 ;;
  *) die "unknown TABLE '$TABLE' (table2 table3 table4 table5 figure1 all)" ;;
esac
say "$TABLE: models [$SEL_MODELS], rows [$ROWS], benchmark ${BENCH:-none (training curves)}"

# ---- 1. training data (paper Sec. 4.1), each file built once
need_data() {
  if [ -s "$1" ]; then say "data $1 exists: skipped"; return 1; fi
  ! already_planned "data $1"
}
if [ "$ROWS" != base ]; then
  if need_data "$TRAIN_DATA"; then
    run python -m data_prep build --sources "$TRAIN_SOURCES" --out "$TRAIN_DATA"
  fi
  if need_data "$RATIONALE_DATA"; then
    run python -m data_prep rationales --in "$TRAIN_DATA" --out "$RATIONALE_DATA" --model "$RATIONALE_MODEL"
  fi
  if [[ " $ROWS " == *" sft"* ]] && need_data "$SFT_DATA"; then
    run python -m data_prep sft --in "$RATIONALE_DATA" --out "$SFT_DATA"
  fi
fi

# ---- 2. training runs, 3. evaluations
for model in $SEL_MODELS; do
  model_settings "$model" || die "unknown model '$model' (one of: $MODELS)"
  for row in $ROWS; do
    if [ "$row" = base ]; then
      ckpt=$MODEL_ID; paper_row=$PAPER_GROUP/Base
    else
      METHOD_PAPER_ROW=''
      # shellcheck source=shells/recipes/awpo.sh
      source "$REPO_ROOT/shells/recipes/$row.sh"
      paper_row=${METHOD_PAPER_ROW:+$PAPER_GROUP/$METHOD_PAPER_ROW}
      bash "$REPO_ROOT/shells/train.sh" "${DRY[@]}" "$row" "$model"
      out=$RUNS_DIR/$model/$row
      ckpt=$(cat "$out/FINAL" 2>/dev/null || echo "$out/last-checkpoint")
    fi
    if [ -n "$BENCH" ]; then
      bash "$REPO_ROOT/shells/eval.sh" "${DRY[@]}" --only "$BENCH" --paper-row "$paper_row" "$ckpt" "$model-$row"
    elif [ "$row" != base ]; then
      run python -m eval.plots --train-log "$RUNS_DIR/$model/$row" --out "$RESULTS_DIR/plots/$model-$row"
    fi
  done
done

# ---- 4. the table, our rows beside the paper's
if [ -n "$BENCH" ]; then
  run python -m eval.tables --runs "$RESULTS_DIR/" --out "$RESULTS_DIR/tables.md"
  [ "$DRY_RUN" = 1 ] || say "$TABLE done in $(elapsed): $RESULTS_DIR/tables.md"
else
  [ "$DRY_RUN" = 1 ] || say "$TABLE done in $(elapsed): plots in $RESULTS_DIR/plots/"
fi
