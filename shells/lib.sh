#!/usr/bin/env bash
# Helpers shared by the shells/*.sh scripts (sourced, not run).
#   run [VAR=value ...] cmd args...   runs a command, or with DRY_RUN=1 prints it (one line, shell-quoted)
#   say / die                         progress and errors on stderr (stdout of --dry-run holds commands only)
# Our own variables never start with AWPO_: the plugin rejects unknown AWPO_* variables.

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Scripts work from the repository root (relative paths in recipes and outputs); paths given by the user
# on the command line are made absolute first (abspath).
ORIG_PWD=$PWD
cd "$REPO_ROOT" || exit 2
abspath() { case "$1" in /*) printf '%s' "$1" ;; *) printf '%s' "$ORIG_PWD/$1" ;; esac; }
DRY_RUN=${DRY_RUN:-0}
SCRIPT_NAME=$(basename "$0" .sh)

say() { printf '[%s %s] %s\n' "$SCRIPT_NAME" "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { printf '[%s] error: %s\n' "$SCRIPT_NAME" "$*" >&2; exit 2; }

# Quote one word so that both bash and Python's shlex.split read it back unchanged.
quote_word() {
  local w=$1
  if [[ $w =~ ^[A-Za-z0-9_./:=,@+%-]+$ ]]; then
    printf '%s' "$w"
  else
    printf "'%s'" "${w//\'/\'\\\'\'}"
  fi
}

shell_join() {
  local out='' w
  for w in "$@"; do out+="$(quote_word "$w") "; done
  printf '%s' "${out% }"
}

# run [VAR=value ...] cmd args...: leading assignments become the command's environment.
run() {
  local line
  line=$(shell_join "$@")
  if [ "$DRY_RUN" = 1 ]; then
    printf '%s\n' "$line"
    return 0
  fi
  say "+ $line"
  env "$@"
}

# Elapsed time of the script, for the summaries.
SCRIPT_START=$(date +%s)
elapsed() { local s=$(( $(date +%s) - SCRIPT_START )); printf '%dm%02ds' $((s / 60)) $((s % 60)); }

# In a dry run nothing gets done, so "skip what is already done" cannot see earlier steps of the same
# plan. already_planned KEY: true if KEY was printed before in this dry run (shared through DRY_PLAN).
already_planned() {
  [ "$DRY_RUN" = 1 ] && [ -n "${DRY_PLAN:-}" ] || return 1
  if grep -qxF -- "$1" "$DRY_PLAN" 2>/dev/null; then return 0; fi
  printf '%s\n' "$1" >> "$DRY_PLAN"
  return 1
}
# start_plan: called once options are parsed; the outermost script of a dry run owns the plan file.
start_plan() {
  [ "$DRY_RUN" = 1 ] || return 0
  if [ -z "${DRY_PLAN:-}" ]; then
    DRY_PLAN=$(mktemp); export DRY_PLAN
    trap 'rm -f "$DRY_PLAN"' EXIT
  fi
}
