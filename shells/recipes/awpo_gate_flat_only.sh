# shellcheck shell=bash disable=SC2034
# Gate-rule ablation (ours, not in the paper): AWPO with gate_rule flat_only (the judge only in groups with
# flat, not-maximal outcome reward; never blended elsewhere). shells/configs/awpo_gate_flat_only.yaml is
# awpo.yaml + that one switch. Its rows sit beside Table 5's ablations, marked as ours (eval/tables.py OUR_ROWS).
recipe_parent awpo
METHOD_AWPO_CONFIG=shells/configs/awpo_gate_flat_only.yaml
METHOD_PAPER_ROW='gate rule flat_only'
