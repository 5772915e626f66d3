#!/usr/bin/env bash
# The CPU study (issue 10, part 2): stock GRPO, Mixed-reward GRPO, GDPO and AWPO from the same warm start, same rows,
# same seed, same number of steps; held-out and BFCL smoke scores before/after; curves and a table.
#   bash shells/cpu_study.sh [--ablations] [--steps N] [--dry-run] [--publish docs/results] [--report-only] [--help]
# Driver: python -m benchmarks.cpu_study (its --help lists every option). Each run goes through
# shells/train.sh METHOD smollm2 (CPU_STEPS, CPU_DATA = the rl split, AWPO_SMOLLM2_DIR = the warm start).
# Judge: offline rubric, or the OpenAI-compatible endpoint in AWPO_JUDGE_BASE_URL.
# Outputs: STUDY_DIR (default runs/cpu_study): done/<run>.json markers (a finished run is not redone, an
# unfinished one is redone from scratch), cpu_study.md / .json / .png.
set -euo pipefail
# shellcheck source=shells/lib.sh
source "$(dirname "$0")/lib.sh"

for a in "$@"; do
  case "$a" in
    -h|--help) script_help; exec python -m benchmarks.cpu_study --help ;;
    --dry-run) DRY_RUN=1 ;;
  esac
done
[ -n "${STUDY_DIR:-}" ] && STUDY_DIR=$(abspath "$STUDY_DIR") && export STUDY_DIR
# No network: never ask a model hub.
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
if [ "$DRY_RUN" != 1 ] && ! python -c 'import swift, plugin.advantage' 2>/dev/null; then
  die "python ($(command -v python)) cannot import ms-swift and this project: run 'bash shells/setup_cpu.sh' and 'source .venv/bin/activate' first"
fi
exec python -m benchmarks.cpu_study "$@"
