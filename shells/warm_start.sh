#!/usr/bin/env bash
# The warm start (issue 10): SmolLM2-135M-Instruct SFT'd on BFCL live cases so that it writes tool calls.
#   bash shells/warm_start.sh [--force]
# Idempotent: a finished warm start (its warmstart.json marker) is reused; a killed build is redone.
# The last line printed is the model folder ($AWPO_WARMSTART_DIR or ~/.cache/awpo/SmolLM2-135M-warmstart).
# One build, short enough for CI (--quick is accepted and builds the same). Details: cpu_model/warm_start.py.
set -euo pipefail
cd "$(dirname "$0")/.."
exec python -m cpu_model.warm_start "$@"
