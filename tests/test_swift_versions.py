"""The supported ms-swift range (plugin/swift_version.py): setup.cfg, the start-up check, the matrix and the docs
say the same thing, and a release outside it is refused at start with the version, the range and the command."""
from __future__ import annotations

import re
import subprocess
import sys

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from benchmarks import swift_matrix as M
from plugin.swift_version import (INSTALL_HINT, SWIFT_RANGE, SWIFT_REQUIREMENT, SwiftAPIError, SwiftVersionError,
                                  check_swift_version, is_supported)
from testsupport import REPO


# ---------------------------------------------------------------------- one range everywhere
def test_setup_cfg_requires_exactly_the_range_the_check_accepts():
    req = Requirement(M.swift_requirement(REPO))
    assert req.name == 'ms-swift'
    assert req.specifier == SpecifierSet(SWIFT_RANGE)  # drift between setup.cfg and the check fails here
    assert M.swift_requirement(REPO) == SWIFT_REQUIREMENT  # verbatim: the line the refusal tells users to install


def test_the_installed_swift_is_in_the_range():
    import swift
    assert check_swift_version() == swift.__version__


@pytest.mark.parametrize('version,ok', [
    ('4.2.9', False), ('4.3.0', True), ('4.3.2', True), ('4.4.0', True), ('4.4.2', True), ('4.6.0', True), ('4.6.9', True), ('4.6.1.dev0', True),
    ('4.2.3', False), ('4.0.4', False), ('3.12.6', False), ('4.7.0', False), ('4.7.0rc1', False), ('5.0.0', False),
    ('not-a-version', False)])
def test_range_boundaries(version, ok):
    assert is_supported(version) is ok
    if ok:
        assert check_swift_version(version) == version
    else:
        with pytest.raises(SwiftVersionError) as e:
            check_swift_version(version)
        msg = str(e.value)
        assert f'installed ms-swift {version}' in msg and f'supports ms-swift {SWIFT_RANGE}' in msg
        assert msg.endswith(f"Install one with: pip install '{SWIFT_REQUIREMENT}'")


# ---------------------------------------------------------------------- refused at start, before ms-swift's internals
def test_unsupported_release_stops_registration_and_the_trainer_check(monkeypatch):
    import swift
    from swift.trainers.trainer_factory import TrainerFactory

    from plugin.registry import register_rewards, register_trainer
    from plugin.trainer import check_swift_api
    monkeypatch.setattr(swift, '__version__', '4.7.1')  # the methods are there, the release is not tested
    monkeypatch.setitem(TrainerFactory.TRAINER_MAPPING, 'grpo', 'swift.rlhf_trainers.GRPOTrainer')
    for start in (register_rewards, register_trainer, check_swift_api):
        with pytest.raises(SwiftVersionError, match=r'installed ms-swift 4\.7\.1: it supports ms-swift >=4\.3,<4\.7'):
            start()
    assert TrainerFactory.TRAINER_MAPPING['grpo'] == 'swift.rlhf_trainers.GRPOTrainer'  # not swapped
    assert issubclass(SwiftVersionError, SwiftAPIError)  # callers catching the API error catch this too


def test_old_release_is_refused_before_its_missing_modules_are_imported():
    """On ms-swift 3.12, ``swift.rewards`` and ``swift.rlhf_trainers`` are absent: the user must see the refusal,
    not an ImportError. A fresh interpreter where those modules cannot be imported and swift says 3.12.6."""
    code = ('import sys, swift; swift.__version__ = "3.12.6"\n'
            'sys.modules["swift.rlhf_trainers"] = sys.modules["swift.rewards"] = None\n'
            'from plugin.swift_version import SwiftVersionError\n'
            'for stmt in ("import plugin.trainer", "import plugin.awpo"):\n'
            '    try:\n        exec(stmt)\n    except SwiftVersionError as e:\n        print("REFUSED", e)\n'
            '    else:\n        print("IMPORTED", stmt)\n')
    p = subprocess.run([sys.executable, '-c', code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith(('REFUSED', 'IMPORTED'))]
    assert len(lines) == 2, p.stdout
    assert all(ln.startswith('REFUSED AWPO cannot run on the installed ms-swift 3.12.6') for ln in lines), p.stdout
    assert INSTALL_HINT in lines[0]


# ---------------------------------------------------------------------- the matrix script's own logic
def test_matrix_expectations_follow_the_range():
    assert M.oldest_supported() == '4.3.2'  # what CI runs besides the default release
    assert [r for r in M.RELEASES if M.expected(r) == 'works'] == ['4.6.0', '4.5.3', '4.4.2', '4.3.2']
    assert [r for r in M.RELEASES if M.expected(r) == 'refused'] == ['4.2.3', '4.1.3', '4.0.4', '3.12.6']
    assert all(M.expected(r) == ('works' if is_supported(r) else 'refused') for r in M.RELEASES)


def test_the_matrix_reads_the_range_of_the_project_it_installs(tmp_path):
    """--repo can try a candidate range: the expectation is that checkout's setup.cfg, not this one's."""
    (tmp_path / 'setup.cfg').write_text('[options]\ninstall_requires =\n    torch\n    ms-swift>=4.5,<4.6  # narrow\n')
    assert [r for r in M.RELEASES if M.expected(r, tmp_path) == 'works'] == ['4.5.3']
    assert M.oldest_supported(repo=tmp_path) == '4.5.3'


def test_matrix_reads_the_refusal_and_classifies_stages():
    with pytest.raises(SwiftVersionError) as e:
        check_swift_version('3.12.6')
    log = f'[INFO:swift] loading plugin\nplugin.swift_version.SwiftVersionError: {e.value}\n'
    assert M._refusal(log) == str(e.value)
    assert M._refusal('ValueError: remaining_argv: --tuner_type') is None
    ok = {'status': 'ok', 'message': 'fine'}
    refused = {'status': 'refused', 'message': str(e.value)}
    assert M.summarize({s: ok for s in M.STAGES}) == ('works', 'fine')
    result, detail = M.summarize({'install': ok, 'api': refused, 'register': refused, 'train': refused})
    assert result == 'refused' and detail.startswith('at api, register, train: AWPO cannot run')
    # refused by the checks but swift rlhf went on (or died elsewhere): not a clean refusal
    assert M.summarize({'install': ok, 'api': refused, 'register': refused,
                        'train': {'status': 'fails', 'message': 'rc=1: KeyError'}}) == \
        ('fails', 'at train: rc=1: KeyError')
    assert M.summarize({'install': {'status': 'fails', 'message': 'pip: ResolutionImpossible'}}) == \
        ('fails', 'at install: pip: ResolutionImpossible')
    assert M._last_error('x\nTraceback (most recent call last):\n  File "a"\nKeyError: \'y\'\nwarning: z\n') == \
        "KeyError: 'y'"


def test_matrix_refuses_a_workdir_inside_the_repo():
    with pytest.raises(SystemExit):
        M.main(['--workdir', str(REPO / 'tmp-matrix'), '--releases', '4.4.2'])
    assert not (REPO / 'tmp-matrix').exists()


# ---------------------------------------------------------------------- the docs' table agrees with the range
def test_docs_versions_table_matches_the_range():
    text = (REPO / 'docs' / 'training.md').read_text()
    section = text.split('## Versions', 1)[1].split('\n## ', 1)[0]
    assert f'`{SWIFT_REQUIREMENT}`' in section and 'python -m benchmarks.swift_matrix' in section
    rows = dict(re.findall(r'^\| (\d+\.\d+\.\d+) \| ([a-z ]+?) \|', section, flags=re.M))
    assert set(rows) == set(M.RELEASES), rows  # every release of the matrix's list has a row
    ran = {r: res for r, res in rows.items() if res in ('works', 'refused', 'fails')}
    assert {r: res for r, res in ran.items() if res != M.expected(r)} == {}  # every result as the range claims
    assert set(rows.values()) <= {'works', 'refused', 'fails', 'not finished'}, rows


def test_gpu_extra_keeps_the_recipes_tested_pair_inside_the_range():
    """The GPU recipes stay on ms-swift 4.6 + the vllm the gpu extra pins; that pin must lie in the range."""
    import configparser
    cfg = configparser.ConfigParser()
    cfg.read(REPO / 'setup.cfg')
    gpu = [Requirement(ln.strip()) for ln in cfg['options.extras_require']['gpu'].splitlines()
           if ln.strip() and not ln.strip().startswith('#')]
    (swift_pin,) = [r for r in gpu if r.name == 'ms-swift']
    assert str(swift_pin.specifier) == '==4.6.*' and any(r.name == 'vllm' for r in gpu)
    assert is_supported('4.6.0')
