"""Evaluation of AWPO checkpoints: BFCL (``eval.bfcl``), API-Bank (``eval.apibank``), MMLU-Pro
(``eval.mmlu_pro``) against a served model (``eval.serve``), results under ``results/<name>/``
(``eval.results``), the paper's Tables 1-5 beside ours (``eval.tables``) and training plots (``eval.plots``).
"""
