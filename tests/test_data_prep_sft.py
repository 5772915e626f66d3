"""`python -m data_prep sft`: bad rows are counted skips with their reason (or, with --strict, an error naming
the line), the output is written atomically with a manifest, and only the target turn carries labels when
ms-swift encodes a row (real SmolLM2 tokenizer, chatml + hermes agent template, ms-swift's dataset loader)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from data_prep.manifest import ManifestError, check_manifest
from data_prep.sft import BAD_GROUND_TRUTH, NO_RATIONALE, NOT_JSON_LINE, NOT_OBJECT, export_sft, sft_row

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope='module')
def demo_rows(tmp_path_factory) -> list[dict]:
    out = tmp_path_factory.mktemp('sft') / 'demo.jsonl'
    subprocess.run([sys.executable, '-m', 'data_prep', 'demo', '--out', str(out)], cwd=REPO, check=True,
                   capture_output=True)
    return [dict(json.loads(line), reference_rationale=f'why {i}') for i, line in enumerate(out.open())]


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text(''.join(line + '\n' for line in lines))
    return path


def _bad_lines(row: dict) -> list[str]:
    return ['{"broken',                                                       # not JSON
            '[1, 2]',                                                          # not an object
            json.dumps(dict(row, step=901, ground_truth='[{"name": "f"')),     # ground_truth not JSON
            json.dumps(dict(row, step=902, reference_rationale='')),          # no rationale
            json.dumps(dict(row, step=903, ground_truth='[{"name": "f", "arguments": {"x": NaN}}]')),
            json.dumps(dict(row, step=904, ground_truth='[' * 5000 + ']' * 5000))]  # RecursionError in json


def test_bad_rows_are_counted_skips_with_their_reason(tmp_path, demo_rows):
    good = [json.dumps(r) for r in demo_rows[:5]]
    inp = _write(tmp_path / 'in.jsonl', good[:2] + _bad_lines(demo_rows[0]) + good[2:])
    out = tmp_path / 'out.jsonl'
    s = export_sft(str(inp), str(out), progress=False)
    assert s.written == 5
    assert s.skipped[NOT_JSON_LINE] == 1 and s.skipped[NOT_OBJECT] == 1 and s.skipped[NO_RATIONALE] == 1
    assert s.skipped[BAD_GROUND_TRUTH] == 3                       # broken, NaN, 5000-deep brackets
    assert sum(s.skipped.values()) == 6
    assert 'line 3' in s.examples[NOT_JSON_LINE] and 'line 5' in s.examples[BAD_GROUND_TRUTH]
    rows = [json.loads(line) for line in out.open()]              # strict JSON: NaN would fail here
    assert [r['step'] for r in rows] == [r['step'] for r in demo_rows[:5]]
    assert check_manifest(str(out))['rows'] == 5
    text = s.text(str(out))
    assert 'ground_truth is not JSON' in text and 'without a rationale' in text


def test_strict_names_the_line_and_leaves_no_partial_output(tmp_path, demo_rows):
    inp = _write(tmp_path / 'in.jsonl', [json.dumps(r) for r in demo_rows[:3]] + _bad_lines(demo_rows[0])[2:3])
    out = tmp_path / 'out.jsonl'
    p = subprocess.run([sys.executable, '-m', 'data_prep', 'sft', '--in', str(inp), '--out', str(out), '--strict',
                        '--quiet'], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and 'line 4' in p.stderr and 'ground_truth is not JSON' in p.stderr
    assert 'Traceback' not in p.stderr
    assert not out.exists() and list(tmp_path.iterdir()) == [inp]   # no partial file, no temp file
    # An earlier finished output is not replaced by a failed strict run (and is no longer marked complete).
    p = subprocess.run([sys.executable, '-m', 'data_prep', 'sft', '--in', str(inp), '--out', str(out), '--quiet'],
                       cwd=REPO, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and 'skipped      1  ground_truth is not JSON' in p.stdout
    before = out.read_text()
    subprocess.run([sys.executable, '-m', 'data_prep', 'sft', '--in', str(inp), '--out', str(out), '--strict',
                    '--quiet'], cwd=REPO, capture_output=True, timeout=120)
    assert out.read_text() == before
    with pytest.raises(ManifestError):
        check_manifest(str(out))


def test_check_manifest_cli(tmp_path, demo_rows):
    inp = _write(tmp_path / 'in.jsonl', [json.dumps(r) for r in demo_rows[:4]])
    out = tmp_path / 'out.jsonl'
    export_sft(str(inp), str(out), progress=False)

    def check(*paths):
        return subprocess.run([sys.executable, '-m', 'data_prep', 'check-manifest', *map(str, paths)], cwd=REPO,
                              capture_output=True, text=True, timeout=120)
    p = check(out)
    assert p.returncode == 0 and 'complete, 4 rows' in p.stdout
    with out.open('a') as f:                       # a row added after the manifest: not the finished file
        f.write(json.dumps({'x': 1}) + '\n')
    p = check(out)
    assert p.returncode == 1 and '5 rows, but its manifest says 4' in p.stderr
    p = check(inp)                                 # never finished (no manifest)
    assert p.returncode == 1 and 'did not finish' in p.stderr


def test_history_actions_are_masked_in_the_row(demo_rows):
    row = max(demo_rows, key=lambda r: len(r['messages']))
    out = sft_row(row)
    hist = out['messages'][:-1]
    assert [m.get('loss') for m in hist if m['role'] in ('assistant', 'tool_call')] == \
        [False] * sum(m['role'] in ('assistant', 'tool_call') for m in row['messages'])
    assert all('loss' not in m for m in hist if m['role'] not in ('assistant', 'tool_call'))
    assert out['messages'][-1]['role'] == 'assistant' and 'loss' not in out['messages'][-1]
    assert out['messages'][-1]['content'].startswith('<think>\nwhy ')


ENCODE = r'''
import json, sys
from swift import get_processor, get_template, load_dataset
model_dir, path = sys.argv[1:3]
proc = get_processor(model_dir, model_type='llama')
tpl = get_template(proc, template_type='chatml', agent_template='hermes', max_length=8192, truncation_strategy='raise')
tpl.set_mode('train')
ds = load_dataset(path, num_proc=1)[0]      # ms-swift's own row preprocessor, as `swift sft --dataset` runs it
out = []
for row in ds:
    enc = tpl.encode(row)
    spans, cur = [], []
    for tok, lab in zip(enc['input_ids'], enc['labels']):
        if lab != -100:
            cur.append(tok)
        elif cur:
            spans.append(proc.decode(cur)); cur = []
    if cur:
        spans.append(proc.decode(cur))
    out.append(spans)
print('@@' + json.dumps(out))
'''


def _labelled_spans(rows: list[dict], tmp: Path, model_dir: Path) -> list[list[str]]:
    path = tmp / 'rows.jsonl'
    _write(path, [json.dumps(r) for r in rows])
    p = subprocess.run([sys.executable, '-c', ENCODE, str(model_dir), str(path)], cwd=REPO, capture_output=True,
                       text=True, timeout=300, env={**__import__('os').environ, 'HF_HUB_OFFLINE': '1'})
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(p.stdout.split('@@', 1)[1])


def test_only_the_target_turn_carries_labels_through_ms_swift(tmp_path, demo_rows, smollm2_dir):
    """Multi-step rows (earlier calls, an earlier text answer, tool results): only the last turn is labelled.
    The same rows without the mask label every earlier action too (what SFT did before)."""
    multi = [r for r in demo_rows if sum(m['role'] in ('assistant', 'tool_call') for m in r['messages']) >= 2][:3]
    assert multi, 'the demo data has multi-step instances'
    rows = [sft_row(r) for r in multi]
    unmasked = [dict(r, messages=[{k: v for k, v in m.items() if k != 'loss'} for m in r['messages']])
                for r in rows]
    spans = _labelled_spans(rows + unmasked, tmp_path, smollm2_dir)
    for row, got in zip(rows, spans[:len(rows)]):
        assert len(got) == 1, got
        assert got[0] == row['messages'][-1]['content'] + '<|im_end|>\n'
    for row, got in zip(rows, spans[len(rows):]):
        assert len(got) >= 2 and got[-1] == row['messages'][-1]['content'] + '<|im_end|>\n'
