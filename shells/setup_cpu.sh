#!/usr/bin/env bash
# Set-up on a CPU-only machine (the README's first command):
#   bash shells/setup_cpu.sh            -> .venv with torch 2.13.0 (CPU), ms-swift 4.6 and this project
# Environment: VENV (default .venv), EXTRAS (default cpu,test,eval), EVAL_VENV (default .venv-eval;
# set SKIP_EVAL_VENV=1 to skip it).
# A GPU machine uses shells/setup_gpu.sh instead (CUDA torch, vllm, deepspeed).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
EXTRAS=${EXTRAS:-cpu,test,eval}
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
# shellcheck disable=SC1091
source "$VENV/bin/activate"
python -m pip install -q --upgrade pip
# torch first, pinned: the CPU build 2.13.0 (an unpinned torch would pull a multi-GB CUDA build).
python -m pip install -q torch==2.13.0
python -m pip install -q -e ".[${EXTRAS}]"
# bfcl-eval in its own environment: its numpy/networkx/filelock pins clash with ms-swift's, and it only
# talks HTTP to the served model. eval.bfcl finds it at .venv-eval (or $AWPO_BFCL_PYTHON). torch first,
# pinned to the CPU build, or sentence-transformers pulls a multi-GB CUDA torch.
if [ "${SKIP_EVAL_VENV:-0}" != 1 ]; then
  EVAL_VENV=${EVAL_VENV:-.venv-eval}
  [ -x "$EVAL_VENV/bin/python" ] || python3 -m venv "$EVAL_VENV"
  "$EVAL_VENV/bin/python" -m pip install -q --upgrade pip
  "$EVAL_VENV/bin/python" -m pip install -q torch==2.13.0
  "$EVAL_VENV/bin/python" -m pip install -q bfcl-eval==2026.3.23 soundfile
fi
# The small real chat model for CPU runs, converted once into a local HF folder outside the repo.
python -m cpu_model.smollm2
python - <<'PY'
import torch, swift, transformers
print(f'[setup] torch {torch.__version__}, ms-swift {swift.__version__}, transformers {transformers.__version__}')
PY
echo "[setup] done: activate with 'source $VENV/bin/activate'"
