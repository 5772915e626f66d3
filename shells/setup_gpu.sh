#!/usr/bin/env bash
# Set-up on a GPU node (training, rollout or judge node):
#   bash shells/setup_gpu.sh [--dry-run]     -> VENV (default .venv) with CUDA torch 2.14.0 (what vllm 0.33 pins), ms-swift 4.6,
#                                               vLLM, DeepSpeed, the evaluators and this project
# Environment: VENV, CUDA (wheel index tag of your driver's CUDA, default cu128), EXTRAS (default gpu,eval).
# torch is installed first from the CUDA index and pinned, so nothing later replaces it with another build.
set -euo pipefail
# shellcheck source=shells/lib.sh
source "$(dirname "$0")/lib.sh"
parse_args "$@"
[ ${#POS[@]} -eq 0 ] || die "unknown argument '${POS[0]}' (--help)"
VENV=${VENV:-.venv}; CUDA=${CUDA:-cu128}; EXTRAS=${EXTRAS:-gpu,eval}
[ -x "$VENV/bin/python" ] || run python3 -m venv "$VENV"
PY=$VENV/bin/python
run "$PY" -m pip install -q --upgrade pip
run "$PY" -m pip install -q "torch==${TORCH_VERSION:-2.14.0}" --index-url "https://download.pytorch.org/whl/$CUDA"  # the torch vllm 0.33 pins
run "$PY" -m pip install -q -e ".[$EXTRAS]"
run "$PY" -c 'import torch, swift; print("[setup] torch", torch.__version__, "cuda", torch.cuda.is_available(), "ms-swift", swift.__version__)'
[ "$DRY_RUN" = 1 ] || say "done: source $VENV/bin/activate"
