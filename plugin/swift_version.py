"""Which ms-swift releases AWPO runs on: one range, the single source of truth.

``setup.cfg`` requires exactly :data:`SWIFT_REQUIREMENT` (tests/test_swift_versions.py fails if the two drift
apart), and the plugin refuses to start on any other release (:func:`check_swift_version`, called when the
plugin registers and when plugin/trainer.py is imported, before it imports ms-swift's internals).

Why this range: AWPOGRPOTrainer (plugin/trainer.py) overrides private GRPOTrainer methods whose signatures
are the same from ms-swift 4.4.0 to 4.6.x (``_compute_advantages(samples, rewards_per_func,
batch_encoded_inputs)``, ``_prepare_batch_inputs(samples)``, ``_compute_loss_and_metrics(model, model_inputs,
grpo_batch)``, ``swift.rl_core.advantage``); 4.3.x names the batch ``inputs`` and has no ``swift.rl_core``,
which plugin/swift_compat.py bridges (the matrix ran 4.3.2 end to end through it, 2026-12-04). 4.0-4.2 would
take the same adapter, but their GRPOTrainer cannot be imported without vllm (``swift.rollout.multi_turn``
imports the vLLM engine unconditionally), so no CPU run can check them: refused. 3.12 has another package
layout and other CLI flags: refused. The releases run end to end are listed in docs/training.md ("Versions"),
made by ``python -m benchmarks.swift_matrix``.

Only the standard library and ``packaging`` here: this module must import on any ms-swift.
"""
from __future__ import annotations

from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

SWIFT_RANGE = '>=4.3,<4.7'
SWIFT_REQUIREMENT = f'ms-swift{SWIFT_RANGE}'  # the install_requires line in setup.cfg, verbatim
INSTALL_HINT = f"pip install '{SWIFT_REQUIREMENT}'"


class SwiftAPIError(RuntimeError):
    """The installed ms-swift lacks (or changed) an internal that AWPO's trainer overrides or reads."""


class SwiftVersionError(SwiftAPIError):
    """The installed ms-swift release is outside :data:`SWIFT_RANGE`."""


def installed_swift_version() -> str:
    import swift
    version = getattr(swift, '__version__', None)
    if version is None:  # not expected, but never fail on the check itself
        from importlib.metadata import version as dist_version
        version = dist_version('ms-swift')
    return str(version)


def is_supported(version: str, swift_range: str = SWIFT_RANGE) -> bool:
    """``version`` lies in ``swift_range`` (default :data:`SWIFT_RANGE`; a pre-release or dev build of a supported
    release counts)."""
    try:
        return SpecifierSet(swift_range).contains(Version(version), prereleases=True)
    except InvalidVersion:
        return False


def check_swift_version(version: str | None = None) -> str:
    """Start-up check: the installed ms-swift (or ``version``) is in :data:`SWIFT_RANGE`; returns it.
    Raises :class:`SwiftVersionError` naming the installed version, the range and the command to install one."""
    version = installed_swift_version() if version is None else version
    if not is_supported(version):
        raise SwiftVersionError(
            f'AWPO cannot run on the installed ms-swift {version}: it supports ms-swift {SWIFT_RANGE}, the '
            "releases whose GRPOTrainer internals plugin/trainer.py overrides (tested ones: docs/training.md, "
            f'"Versions"). Install one with: {INSTALL_HINT}')
    return version
