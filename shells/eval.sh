#!/usr/bin/env bash
# Evaluate one checkpoint on the paper's benchmarks (Tables 2-5):
#   bash shells/eval.sh [--dry-run] [--only bfcl,apibank,mmlu_pro] [--limit N] [--bfcl-categories C]
#                       [--apibank-levels L] [--apibank-sample] [--base-url URL] [--paper-row GROUP/METHOD]
#                       [--thinking true|false] CKPT NAME [-- EVAL_ARGS]
# CKPT: a model folder, a LoRA adapter folder, or a hub id (the base rows); NAME: the row's name in
# results/ (results/NAME/<benchmark>.json, written by the eval package). A benchmark whose result file
# already exists is skipped (FORCE=1 re-runs it; the evaluator keeps the earlier file as well).
# Defaults: all three benchmarks; BFCL non_live,live,multi_turn (Tables 2 and 5); API-Bank levels 1,2,3.
# --apibank-sample uses the API-Bank sample bundled with the eval package (offline); EVAL_ARGS go to every
# evaluator (e.g. -- --smollm2 for the CPU model's serving flags). --paper-row places the run beside the
# paper's row in eval.tables (e.g. 'Qwen3-8B/AWPO'). --thinking: serve with the thinking mode the model was
# trained with (shells/recipes/common.sh THINKING; reproduce.sh passes it). vLLM serving gets a
# --max-model-len sized for the evaluation (eval/serve.py EVAL_MAX_MODEL_LEN); BFCL sends BFCL_THREADS
# concurrent requests (default: 64 to vLLM or --base-url, 8 to swift deploy, which batches 8; eval/bfcl.py).
# Environment: RESULTS_DIR (default results), APIBANK_DATA_DIR (offline copy of API-Bank), FORCE, BFCL_THREADS,
# MODEL_HUB (hf | modelscope: where vLLM / swift deploy download a hub id; the same hub training uses).
set -euo pipefail
# shellcheck source=shells/lib.sh
source "$(dirname "$0")/lib.sh"
# shellcheck source=shells/recipes/common.sh
source "$REPO_ROOT/shells/recipes/common.sh"
hub_env || exit 2

ONLY=bfcl,apibank,mmlu_pro; LIMIT=''; CATS=non_live,live,multi_turn; LEVELS=1,2,3; BASE_URL=''
SAMPLE=0; PAPER_ROW=''; THINK=''
script_option() {
  OPT_SHIFT=2
  case "$1" in
    --only) ONLY=$2 ;;
    --limit) LIMIT=$2 ;;
    --bfcl-categories) CATS=$2 ;;
    --apibank-levels) LEVELS=$2 ;;
    --base-url) BASE_URL=$2 ;;
    --paper-row) PAPER_ROW=$2 ;;
    --thinking) THINK=$2
                [ "$THINK" = true ] || [ "$THINK" = false ] || die "--thinking takes true or false, got '$THINK'" ;;
    --apibank-sample) SAMPLE=1; OPT_SHIFT=1 ;;
    *) return 1 ;;
  esac
}
TAKES_EXTRA=1
parse_args "$@"
PASS=("${EXTRA[@]}")
[ ${#POS[@]} -eq 2 ] || die "usage: eval.sh [options] CKPT NAME (--help)"
CKPT=${POS[0]}; NAME=${POS[1]}
# A local path is made absolute (scripts run from the repository root); a hub id is kept as it is.
if [ -e "$ORIG_PWD/$CKPT" ] || [[ $CKPT == /* || $CKPT == ./* || $CKPT == ../* ]]; then CKPT=$(abspath "$CKPT"); fi
RESULTS_DIR=${RESULTS_DIR:-results}
start_plan

COMMON=(--model-path "$CKPT" --name "$NAME" --results-dir "$RESULTS_DIR")
[ "${FORCE:-0}" = 1 ] && COMMON+=(--on-exists suffix)
[ -n "$PAPER_ROW" ] && COMMON+=(--paper-row "$PAPER_ROW")
[ -n "$LIMIT" ] && COMMON+=(--limit "$LIMIT")
[ -n "$BASE_URL" ] && COMMON+=(--base-url "$BASE_URL")
[ -n "$THINK" ] && COMMON+=(--enable-thinking "$THINK")

IFS=, read -r -a BENCHES <<< "$ONLY"
for bench in "${BENCHES[@]}"; do
  case "$bench" in
    bfcl)     CMD=(python -m eval.bfcl "${COMMON[@]}" --categories "$CATS")
              [ -n "${BFCL_THREADS:-}" ] && CMD+=(--num-threads "$BFCL_THREADS") ;;
    apibank)  CMD=(python -m eval.apibank "${COMMON[@]}" --levels "$LEVELS")
              if [ "$SAMPLE" = 1 ]; then CMD+=(--sample)
              elif [ -n "${APIBANK_DATA_DIR:-}" ]; then CMD+=(--data-dir "$APIBANK_DATA_DIR"); fi ;;
    mmlu_pro) CMD=(python -m eval.mmlu_pro "${COMMON[@]}") ;;
    *) die "unknown benchmark '$bench' (bfcl, apibank, mmlu_pro)" ;;
  esac
  CMD+=("${PASS[@]}")
  if [ -f "$RESULTS_DIR/$NAME/$bench.json" ] && [ "${FORCE:-0}" != 1 ]; then
    say "$bench for $NAME already in $RESULTS_DIR/$NAME/$bench.json: skipped (FORCE=1 to re-run)"
    continue
  fi
  if already_planned "eval $NAME $bench"; then say "$bench for $NAME: planned above"; continue; fi
  say "$bench on $CKPT as '$NAME'"
  run "${HUB_ENV[@]}" "${CMD[@]}"
done
[ "$DRY_RUN" = 1 ] || say "done in $(elapsed): results in $RESULTS_DIR/$NAME/"
