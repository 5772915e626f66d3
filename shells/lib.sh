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

# --help of a script: its header comment (from line 2 to the first line that is not a comment), on stderr.
script_help() { awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "$0" >&2; }
usage() { script_help; exit 2; }

# parse_args "$@": the argument loop every script shares. --dry-run sets DRY_RUN=1; -h/--help prints the
# header comment; the words after `--` go to EXTRA if the script set TAKES_EXTRA=1; other words go to POS.
# Any other option goes to the script's own `script_option NAME NEXT`, which returns 1 for a name it does
# not know and sets OPT_SHIFT=2 when it took NEXT as the option's value; an unknown option is an error.
# shellcheck disable=SC2034  # POS and EXTRA are read by the scripts
parse_args() {
  POS=(); EXTRA=()
  while [ $# -gt 0 ]; do
    OPT_SHIFT=1
    case "$1" in
      --dry-run) DRY_RUN=1 ;;
      -h|--help) usage ;;
      --) [ "${TAKES_EXTRA:-0}" = 1 ] || die "unknown option '--' (--help)"
          shift; EXTRA=("$@"); break ;;
      -?*) if ! declare -F script_option > /dev/null || ! script_option "$1" "${2-}"; then
             die "unknown option '$1' (--help)"
           fi
           [ "$OPT_SHIFT" = 1 ] || [ $# -ge 2 ] || die "option '$1' needs a value (--help)" ;;
      *) POS+=("$1") ;;
    esac
    shift "$OPT_SHIFT"
  done
}

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
