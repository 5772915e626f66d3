# shellcheck shell=bash disable=SC2034
# SFT (Tables 2-3): token-level cross-entropy on the gold action of every instance (data_prep sft rows),
# full-parameter, settings SFT_* in common.sh.
METHOD_KIND=sft
METHOD_PAPER_ROW='SFT'
