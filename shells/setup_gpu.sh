#!/usr/bin/env bash
# Set-up on a GPU node (training, rollout or judge node):
#   bash shells/setup_gpu.sh [--dry-run]     -> VENV (default .venv) with CUDA torch 2.14.0 (what vllm 0.33 pins), ms-swift 4.6,
#                                               vLLM, DeepSpeed, evalscope and this project (setup.cfg extras gpu,eval);
#                                               EVAL_VENV (default .venv-eval) with bfcl-eval (shells/requirements-eval-venv.txt)
# Environment: VENV, EVAL_VENV, CUDA (wheel index tag of your driver's CUDA, default cu128), EXTRAS (default gpu,eval),
# TORCH_VERSION (default 2.14.0), SKIP_EVAL_VENV=1 (no .venv-eval: no BFCL on this node).
# torch is installed first from the CUDA index and pinned, so nothing later replaces it with another build.
# The package set resolves from a registry without CUDA: python -m shells.check_gpu_env (docs/training.md).
set -euo pipefail
# shellcheck source=shells/lib.sh
source "$(dirname "$0")/lib.sh"
parse_args "$@"
[ ${#POS[@]} -eq 0 ] || die "unknown argument '${POS[0]}' (--help)"
VENV=${VENV:-.venv}; CUDA=${CUDA:-cu128}; EXTRAS=${EXTRAS:-gpu,eval}; EVAL_VENV=${EVAL_VENV:-.venv-eval}
TORCH_INDEX=https://download.pytorch.org/whl
[ -x "$VENV/bin/python" ] || run python3 -m venv "$VENV"
PY=$VENV/bin/python
run "$PY" -m pip install -q --upgrade pip
run "$PY" -m pip install -q "torch==${TORCH_VERSION:-2.14.0}" --index-url "$TORCH_INDEX/$CUDA"  # the torch vllm 0.33 pins
run "$PY" -m pip install -q -e ".[$EXTRAS]"
run "$PY" -c 'import torch, swift; print("[setup] torch", torch.__version__, "cuda", torch.cuda.is_available(), "ms-swift", swift.__version__)'
# bfcl-eval in its own environment (BFCL: table 2, table 5, smoke step 3); the CPU torch build is enough there.
if [ "${SKIP_EVAL_VENV:-0}" != 1 ]; then
  [ -x "$EVAL_VENV/bin/python" ] || run python3 -m venv "$EVAL_VENV"
  run "$EVAL_VENV/bin/python" -m pip install -q --upgrade pip
  run "$EVAL_VENV/bin/python" -m pip install -q "torch==${EVAL_TORCH:-2.13.0}" --index-url "$TORCH_INDEX/cpu"
  run "$EVAL_VENV/bin/python" -m pip install -q -r shells/requirements-eval-venv.txt
  run "$EVAL_VENV/bin/python" -c 'import bfcl_eval; print("[setup] bfcl-eval in", __import__("sys").prefix)'
fi
[ "$DRY_RUN" = 1 ] || say "done: source $VENV/bin/activate"
