#!/usr/bin/env bash
# Set-up on a CPU-only machine (the README's first command; .ci/run runs the same):
#   bash shells/setup_cpu.sh   -> .venv (torch 2.13.0 CPU, ms-swift 4.6, this project, llama-cpp-python),
#                                 .venv-eval (bfcl-eval), and the SmolLM2 folder (python -m cpu_model.smollm2)
# How it stays short (issue 20; measured times in the README): `uv pip install` (parallel downloads, fast
# resolver) into venvs made by `python3 -m venv`; the two environments install side by side; llama-cpp-python
# has no wheel on the registry and compiles (the longest step: it sets the floor), and uv builds it while the
# rest downloads and installs. torch is the CPU build 2.13.0 that lies on this machine's disk: pip finds it
# (its find-links), uv does not look there, so its file is passed to uv by path (found through pip's
# configuration); without that file torch comes through pip (an unpinned torch would be a multi-GB CUDA build).
# Each step prints its elapsed time; the last lines sum them up.
# Environment: VENV (default .venv), EVAL_VENV (default .venv-eval), EXTRAS (default cpu,test,eval),
# SKIP_EVAL_VENV=1 (no .venv-eval), INSTALLER=pip (the plain-pip fallback: one step after another, as before
# uv; also taken when uv cannot be installed), UV_CACHE_DIR / PIP_CACHE_DIR (package caches),
# CMAKE_ARGS (llama.cpp build; default -DLLAVA_BUILD=OFF: the multimodal library, which nothing here loads),
# AWPO_WHEEL_CACHE (default ~/.cache/awpo/wheels; 'off' disables it): the llama-cpp-python wheel uv built is kept
# there, keyed by CMAKE_ARGS, this CPU's flags (llama.cpp compiles for the CPU it runs on) and Python, and a
# later set-up on this machine installs it instead of compiling again (uv's own cache does not reuse it).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
EVAL_VENV=${EVAL_VENV:-.venv-eval}
EXTRAS=${EXTRAS:-cpu,test,eval}
INSTALLER=${INSTALLER:-uv}
BFCL_REQS=(bfcl-eval==2026.3.23 soundfile)
UV_VERSION='uv>=0.5,<1'
export CMAKE_ARGS=${CMAKE_ARGS:--DLLAVA_BUILD=OFF}
export PIP_DISABLE_PIP_VERSION_CHECK=1
T0=$(date +%s)
STEPS=()
log() { echo "[setup +$(( $(date +%s) - T0 ))s] $*"; }
# step NAME START: record how long NAME took (from START, an epoch second) for the summary.
step() { STEPS+=("$(printf '%-44s %4d s' "$1" $(( $(date +%s) - $2 )))"); log "$1: done"; }

# The CPU torch wheel on this machine's disk (pip's find-links, e.g. /opt/wheels), for this Python; empty if none.
local_torch_wheel() {
  local tag dirs d f
  tag=$(python3 -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')
  dirs="${PIP_FIND_LINKS:-} $(python3 -m pip config get global.find-links 2>/dev/null || true) /opt/wheels"
  for d in $dirs; do
    d=${d#file://}
    for f in "$d"/torch-2.13.0+cpu-"$tag"-"$tag"-*linux*_"$(uname -m)".whl; do
      [ -f "$f" ] && { echo "$f"; return 0; }
    done
  done
  return 0
}

t=$(date +%s)
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
step "$VENV (python3 -m venv)" "$t"

UV=''
if [ "$INSTALLER" = uv ]; then
  t=$(date +%s)
  if "$VENV/bin/python" -m pip install -q "$UV_VERSION" && [ -x "$VENV/bin/uv" ]; then
    UV=$VENV/bin/uv
    step "uv ($("$UV" --version))" "$t"
  else
    log "uv could not be installed: plain pip instead (INSTALLER=pip)"
    INSTALLER=pip
  fi
fi
if [ "${SKIP_EVAL_VENV:-0}" != 1 ] && [ ! -x "$EVAL_VENV/bin/python" ]; then
  t=$(date +%s)
  if [ "$INSTALLER" = uv ]; then  # no pip needed there: uv installs into it (a second ensurepip costs ~10 s)
    "$UV" venv -q --python "$(command -v python3)" "$EVAL_VENV"
  else
    python3 -m venv "$EVAL_VENV"
  fi
  step "$EVAL_VENV ($INSTALLER venv)" "$t"
fi
TORCH_WHEEL=$(local_torch_wheel)
log "installer: $INSTALLER; torch: ${TORCH_WHEEL:-torch==2.13.0 through pip}; CMAKE_ARGS=$CMAKE_ARGS"

# The kept llama-cpp-python wheels (uv only: pip's own wheel cache already reuses what it built). The key
# changes with anything that changes the build: CMAKE_ARGS, the CPU's instruction sets, the Python.
WHEELS=''
has_kept_wheel() { compgen -G "$WHEELS/llama_cpp_python-*.whl" > /dev/null; }
if [ "$INSTALLER" = uv ] && [ "${AWPO_WHEEL_CACHE:-}" != off ]; then
  # x86 lists its instruction sets as 'flags', ARM as 'Features'
  key=$( { echo "$CMAKE_ARGS"; grep -m1 -E '^(flags|Features)' /proc/cpuinfo || uname -m; python3 -V; } |
         sha256sum | cut -c1-12)
  WHEELS=${AWPO_WHEEL_CACHE:-$HOME/.cache/awpo/wheels}/llama-cpp-python-$key
  mkdir -p "$WHEELS"
  if has_kept_wheel; then
    log "llama-cpp-python: the wheel built here before ($WHEELS): no compile"
  else
    log "llama-cpp-python: compiles (kept in $WHEELS for the next set-up)"
  fi
fi
# keep_built_wheel SINCE: copy the llama-cpp-python wheel uv built in this set-up (after SINCE, an epoch
# second) into $WHEELS; nothing to do without $WHEELS (pip, or AWPO_WHEEL_CACHE=off) or with a kept wheel.
keep_built_wheel() {
  local since=$1 cache whl
  { [ -n "$WHEELS" ] && ! has_kept_wheel; } || return 0
  cache=$("$UV" cache dir 2>/dev/null) || return 0
  whl=$(find "$cache" -path '*llama-cpp-python*' -name 'llama_cpp_python-*.whl' -newermt "@$since" 2>/dev/null |
        head -n 1)
  if [ -n "$whl" ]; then
    cp "$whl" "$WHEELS/.tmp.whl" && mv "$WHEELS/.tmp.whl" "$WHEELS/$(basename "$whl")"
    log "llama-cpp-python: kept $WHEELS/$(basename "$whl")"
  else
    log "llama-cpp-python: uv built no wheel in this set-up (installed before?): nothing kept"
  fi
}

# install_env PY REQS...: torch first (the CPU file, or pip's torch==2.13.0), then REQS, into PY's venv.
install_env() {
  local py=$1; shift
  if [ "$INSTALLER" = uv ]; then
    local links=(); [ -n "$WHEELS" ] && links=(--find-links "$WHEELS")
    if [ -n "$TORCH_WHEEL" ]; then
      "$UV" pip install -q --python "$py" "${links[@]}" "$TORCH_WHEEL" "$@"
    else
      "$py" -m pip install -q torch==2.13.0
      "$UV" pip install -q --python "$py" "${links[@]}" "$@"
    fi
  else
    "$py" -m pip install -q --upgrade pip
    "$py" -m pip install -q torch==2.13.0
    "$py" -m pip install -q "$@"
  fi
}

# bfcl-eval in its own environment: its numpy/networkx/filelock pins clash with ms-swift's, and it only talks
# HTTP to the served model (eval.bfcl finds it at .venv-eval or $AWPO_BFCL_PYTHON). With uv it installs
# alongside .venv (llama-cpp-python's compile keeps the cores busy, the downloads are network-bound).
EVAL_PID=''
if [ "${SKIP_EVAL_VENV:-0}" != 1 ]; then
  t_eval=$(date +%s)
  if [ "$INSTALLER" = uv ]; then
    rm -f "$EVAL_VENV.setup.done"
    { install_env "$EVAL_VENV/bin/python" "${BFCL_REQS[@]}" && date +%s > "$EVAL_VENV.setup.done"; } \
      > "$EVAL_VENV.setup.log" 2>&1 &
    EVAL_PID=$!
    log "$EVAL_VENV: installing in the background (log $EVAL_VENV.setup.log)"
  fi
fi

t=$(date +%s)
log "$VENV: torch, -e .[$EXTRAS] (ms-swift, llama-cpp-python: compiled, or the kept wheel, ...)"
install_env "$VENV/bin/python" -e ".[${EXTRAS}]"
step "$VENV: torch + .[$EXTRAS] (incl. llama-cpp-python)" "$t"
keep_built_wheel "$t"

# The small real chat model for CPU runs, converted once into a local HF folder outside the repository.
t=$(date +%s)
"$VENV/bin/python" -m cpu_model.smollm2
step "SmolLM2 folder (python -m cpu_model.smollm2)" "$t"

if [ "${SKIP_EVAL_VENV:-0}" != 1 ]; then
  if [ -n "$EVAL_PID" ]; then
    wait "$EVAL_PID" || { cat "$EVAL_VENV.setup.log" >&2; echo "[setup] $EVAL_VENV failed (above)" >&2; exit 1; }
    # its own duration (it ran alongside .venv), not the time until it was waited for
    STEPS+=("$(printf '%-44s %4d s' "$EVAL_VENV: torch + bfcl-eval (in the background)" \
      $(( $(cat "$EVAL_VENV.setup.done") - t_eval )))")
    rm -f "$EVAL_VENV.setup.done"
  else
    install_env "$EVAL_VENV/bin/python" "${BFCL_REQS[@]}"
    step "$EVAL_VENV: torch + bfcl-eval" "$t_eval"
  fi
  "$EVAL_VENV/bin/python" -c 'import bfcl_eval' || { echo "[setup] bfcl_eval does not import in $EVAL_VENV" >&2; exit 1; }
fi
"$VENV/bin/python" - <<'PY'
import llama_cpp, swift, torch, transformers
print(f'[setup] torch {torch.__version__}, ms-swift {swift.__version__}, transformers {transformers.__version__}, '
      f'llama-cpp-python {llama_cpp.__version__}')
PY
echo "[setup] steps ($INSTALLER):"
printf '  %s\n' "${STEPS[@]}"
echo "[setup] done in $(( $(date +%s) - T0 )) s: activate with 'source $VENV/bin/activate'"
