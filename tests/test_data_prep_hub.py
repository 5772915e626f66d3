"""Issue 21.7: hub sources. ModelScope ids are the confirmed ones or refused (never the HF id passed
unchanged); a gated dataset without access is a clear error with the installed client's login command,
checked against a local server that answers like the Hugging Face Hub (the real `datasets` /
`huggingface_hub` stack, HF_ENDPOINT pointed at it)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from data_prep.__main__ import main
from data_prep.sources import MS_IDS, SOURCES, HubAccessError, hub_plan, login_hint

REPO = Path(__file__).resolve().parents[1]


def test_modelscope_gets_its_own_confirmed_ids_and_refuses_the_rest():
    (load,) = hub_plan('xlam', 'modelscope')
    assert (load.loader, load.dataset_id, load.subset) == ('modelscope', 'LLM-Research/xlam-function-calling-60k',
                                                           'dataset')
    for source in ('toolace', 'xlam_mt', 'hammer'):
        with pytest.raises(HubAccessError, match=rf'no confirmed ModelScope id .*--input {source}=PATH'):
            hub_plan(source, 'modelscope')
    # every HF id the sources use is either mapped or refused: none passes through unchanged
    for src in SOURCES.values():
        for ds, _ in src.hub_ids:
            assert ds not in {ms for ms, _ in MS_IDS.values()}
    assert [l.dataset_id for l in hub_plan('xlam_mt', 'hf')] == ['Salesforce/APIGen-MT-5k']


def test_build_refuses_an_unknown_modelscope_id_before_loading_anything(tmp_path, capsys):
    out = tmp_path / 'x.jsonl'
    rc = main(['build', '--sources', 'toolace:2', '--hub', 'modelscope', '--out', str(out)])
    assert rc == 2 and 'Team-ACE/ToolACE' in capsys.readouterr().err and not out.exists()


def test_login_hint_is_the_installed_clients_command():
    major = int(version('huggingface_hub').split('.')[0])
    hint = login_hint()
    if major >= 1:
        assert hint == '`hf auth login`'
        hf = Path(sys.executable).with_name('hf')
        exe = str(hf) if hf.exists() else shutil.which('hf')
        p = subprocess.run([exe, 'auth', 'login', '--help'], capture_output=True, text=True, timeout=60)
        assert p.returncode == 0 and 'token' in p.stdout.lower()
    else:
        assert hint == '`huggingface-cli login`'


class GatedHub:
    """Answers every request like the Hub answers a gated repo without access: 401, X-Error-Code GatedRepo."""

    def __enter__(self):
        from aiohttp import web
        from testsupport.aiohttp_thread import ThreadedApp
        self.paths = []

        async def gated(request):
            self.paths.append(request.path)
            return web.json_response(
                {'error': 'Access to dataset Salesforce/xlam-function-calling-60k is restricted. You must have '
                          'access to it and be authenticated to access it. Please log in.'},
                status=401, headers={'X-Error-Code': 'GatedRepo',
                                     'X-Error-Message': 'Access to dataset is restricted and you are not in the '
                                                        'authorized list. Visit the dataset page to ask for access.'})

        self._server = ThreadedApp(lambda app: app.router.add_route('*', '/{tail:.*}', gated)).__enter__()
        self.port = self._server.port
        return self

    def __exit__(self, *exc):
        self._server.__exit__(*exc)


def test_gated_dataset_without_access_says_what_to_do(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(('HF_', 'HUGGING', 'TRANSFORMERS_OFFLINE'))}
    with GatedHub() as hub:
        env.update(HF_ENDPOINT=f'http://127.0.0.1:{hub.port}', HF_HOME=str(tmp_path / 'hf'), HF_HUB_DISABLE_TELEMETRY='1',
                   HF_HUB_ETAG_TIMEOUT='5', HF_HUB_DOWNLOAD_TIMEOUT='5')
        p = subprocess.run([sys.executable, '-m', 'data_prep', 'build', '--sources', 'xlam:3', '--out',
                            str(tmp_path / 'x.jsonl')], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert hub.paths, 'the client never reached the local hub'
    assert p.returncode == 2, p.stderr[-2000:]
    err = p.stderr
    assert 'Salesforce/xlam-function-calling-60k is a gated dataset (licence cc-by-4.0)' in err, err[-2000:]
    assert 'https://huggingface.co/datasets/Salesforce/xlam-function-calling-60k' in err
    assert login_hint() in err and 'HF_TOKEN' in err and 'Traceback' not in err
    assert not (tmp_path / 'x.jsonl').exists()
