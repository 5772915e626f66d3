# shellcheck shell=bash disable=SC2034
# Gate-rule ablation (ours, not in the paper): AWPO with gate_rule eq25_plus_flat (Eq. 25, and the judge alone
# in groups with flat, not-maximal outcome reward). shells/configs/awpo_gate_plus_flat.yaml is awpo.yaml + that
# one switch. Its rows sit beside Table 5's ablations, marked as ours (eval/tables.py OUR_ROWS).
recipe_parent awpo
METHOD_AWPO_CONFIG=shells/configs/awpo_gate_plus_flat.yaml
METHOD_PAPER_ROW='gate rule eq25_plus_flat'
