"""Helpers shared by the tests and the benchmarks (never imported by the product: plugin/, data_prep/, eval/).

* :mod:`testsupport.swift_run`      run a real ``swift rlhf`` GRPO job on the CPU model and read its logs;
* :mod:`testsupport.judge_stub`     an OpenAI-compatible judge server on 127.0.0.1 with scripted replies;
* :mod:`testsupport.rationale_stub` an OpenAI-compatible rationale server on 127.0.0.1 (data_prep rationales);
* :mod:`testsupport.shell_run`      run the repo's shell scripts (dry runs) and parse the ``swift`` commands
  they print with ms-swift's own argument classes.
"""
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
