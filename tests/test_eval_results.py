"""results/<name>/<benchmark>.json: never overwritten silently; suffix on request; resume from cases."""
import json

import pytest

from eval import results as R


def test_refuse_then_suffix(tmp_path):
    p1 = R.plan_run(tmp_path, 'run-a', 'bfcl')
    assert p1.summary == tmp_path / 'run-a' / 'bfcl.json'
    R.write_summary(p1, benchmark='bfcl', name='run-a', model={}, scores={'Overall': 1.0}, settings={})
    with pytest.raises(R.ResultExistsError):
        R.plan_run(tmp_path, 'run-a', 'bfcl')
    p2 = R.plan_run(tmp_path, 'run-a', 'bfcl', on_exists='suffix')
    assert p2.summary.name == 'bfcl.2.json' and p2.cases.name == 'bfcl.2.cases.jsonl'
    R.write_summary(p2, benchmark='bfcl', name='run-a', model={}, scores={'Overall': 2.0}, settings={})
    assert R.plan_run(tmp_path, 'run-a', 'bfcl', on_exists='suffix').summary.name == 'bfcl.3.json'
    with pytest.raises(FileExistsError):  # exclusive create even if a caller skips plan_run
        R.write_summary(p2, benchmark='bfcl', name='run-a', model={}, scores={}, settings={})
    runs = R.load_runs(tmp_path, ['bfcl', 'apibank'])
    assert runs['run-a']['bfcl']['scores'] == {'Overall': 2.0} and 'apibank' not in runs['run-a']
    doc = json.loads(p1.summary.read_text())
    assert {'benchmark', 'name', 'model', 'scores', 'settings', 'date', 'cases_file'} <= set(doc)


def test_interrupted_run_resumes_from_cases(tmp_path):
    p = R.plan_run(tmp_path, 'r', 'apibank')
    R.append_case(p.cases, {'case_id': 'a', 'correct': True})
    with open(p.cases, 'a') as f:
        f.write('{"case_id": "b", "corr')   # torn last line of a killed run
    assert R.plan_run(tmp_path, 'r', 'apibank').summary == p.summary
    assert [c['case_id'] for c in R.read_cases(p.cases)] == ['a']


def test_bad_names_are_refused(tmp_path):
    with pytest.raises(ValueError):
        R.plan_run(tmp_path, '../escape', 'bfcl')
    with pytest.raises(ValueError):
        R.plan_run(tmp_path, 'ok', 'bfcl', on_exists='overwrite')


def test_resume_cuts_a_torn_tail_so_appends_stay_parseable_and_refuses_a_bad_middle_line(tmp_path):
    """A torn last line is cut before appending (else the next record glues onto it and corrupts the file);
    a bad line with records after it is an error naming the line, not a silent stop that drops those records."""
    p = R.plan_run(tmp_path, 'r', 'apibank')
    R.append_case(p.cases, {'case_id': 'a'})
    with open(p.cases, 'a') as f:
        f.write('{"case_id": "b", "corr')
    assert [c['case_id'] for c in R.read_cases(p.cases)] == ['a']
    R.append_case(p.cases, {'case_id': 'b'})
    assert [c['case_id'] for c in R.read_cases(p.cases)] == ['a', 'b']
    p.cases.write_text('{"case_id": "a"}\nnot json\n{"case_id": "c"}\n')
    with pytest.raises(ValueError, match=rf'{p.cases}:2: not JSON'):
        R.read_cases(p.cases)
