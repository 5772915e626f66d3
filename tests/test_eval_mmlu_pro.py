"""MMLU-Pro: evalscope's own argument parser accepts our command; the report folder is the one the installed
evalscope writes (the served name's basename); TIGER-Lab's official extraction on hand-written replies; both
extractions over hand-made evalscope review files, a failed question counted wrong."""
import argparse
import json
import random
from pathlib import Path

import pytest

from eval import mmlu_pro as M

REPO = Path(__file__).resolve().parents[1]
REPORT = Path(__file__).parent / 'fixtures' / 'eval' / 'evalscope_mmlu_pro_report.json'


def test_parse_hand_made_report(evalscope):
    s = M.parse_report(REPORT)
    assert s['Overall'] == 40.0          # question-weighted: (2+1+0+2+3+0) / 20, not the subject mean 41.67
    assert (s['Math'], s['Physics'], s['Chemistry'], s['Computer Science'], s['Biology']) == (50.0, 25.0, 0.0, 100.0, 75.0)
    assert s['subjects']['law'] == {'score': 0.0, 'n': 4} and s['n'] == 20


def parsed(cmd):
    from evalscope.arguments import add_argument
    from evalscope.config import TaskConfig
    parser = argparse.ArgumentParser()
    add_argument(parser)
    return TaskConfig.from_args(parser.parse_args(cmd[2:]))


def test_command_is_accepted_by_evalscope(evalscope):
    cmd = M.evalscope_cmd('http://127.0.0.1:9/v1', 'awpo-eval', Path('/tmp/w'), limit=5, dataset_dir='/data/mmlu')
    assert cmd[:2] == ['evalscope', 'eval']
    cfg = parsed(cmd)
    assert cfg.model == 'awpo-eval' and cfg.api_url == 'http://127.0.0.1:9/v1' and cfg.datasets == ['mmlu_pro']
    assert cfg.eval_type == 'openai_api' and cfg.limit == 5 and cfg.work_dir == '/tmp/w'
    assert cfg.dataset_args['mmlu_pro']['local_path'] == '/data/mmlu'
    assert cfg.generation_config.max_tokens == M.MAX_TOKENS == 32768 and cfg.generation_config.temperature == 0.0
    assert cfg.ignore_errors is True and cfg.eval_batch_size == 64 and cfg.use_cache is None
    # retries are evalscope's alone (the SDK's are off), a request is bounded
    assert cfg.model_args == {'max_retries': 0}
    assert (cfg.generation_config.timeout, cfg.generation_config.retries) == (1800, 2)
    resumed = parsed(M.evalscope_cmd('http://127.0.0.1:9/v1', 'awpo-eval', Path('/tmp/w'), resume=True))
    assert resumed.use_cache == '/tmp/w'
    assert M.report_path(Path('/tmp/w'), 'awpo-eval') == Path('/tmp/w/reports/awpo-eval/mmlu_pro.json')


def test_report_folder_of_a_served_name_with_a_slash(evalscope):
    """Issue 21.2: evalscope writes reports/<basename>/ (Qwen/Qwen3-8B -> reports/Qwen3-8B/); we read there,
    and pass the same id ourselves so the folder does not depend on evalscope's inference."""
    served = 'Qwen/Qwen3-8B'
    assert M.report_path(Path('/w'), served) == Path('/w/reports/Qwen3-8B/mmlu_pro.json')
    assert M.reviews_dir(Path('/w'), served) == Path('/w/reviews/Qwen3-8B')
    cmd = M.evalscope_cmd('http://h/v1', served, Path('/w'))
    assert parsed(cmd).model_id == 'Qwen3-8B'
    without = [a for i, a in enumerate(cmd) if a != '--model-id' and (i == 0 or cmd[i - 1] != '--model-id')]
    assert parsed(without).model_id == 'Qwen3-8B'  # what the installed evalscope infers on its own
    assert M.model_id('org/My Model:v2') == 'My_Model_v2'


def test_batch_defaults_and_the_docs_number():
    """Issue 21.4: 64 requests in flight on a GPU server (or --base-url), small on the CPU; the docs say so."""
    assert M.default_batch('vllm') == M.default_batch('url') == 64 and M.default_batch('swift') == 8
    docs = (REPO / 'docs' / 'eval.md').read_text()
    assert '64 requests in flight' in docs and '--batch 32' not in docs


@pytest.mark.parametrize('reply, letter', [
    ('Step by step ... so the answer is (C).', 'C'),
    ('The answer is D', 'D'),                                   # parentheses are optional
    ('the answer is **(E)**. Not A', 'E'),                       # ** removed first (else: the last letter, A)
    ('So the answer is (A). Hmm, wait: the answer is (B).', 'A'),  # the first "answer is" wins
    ('Answer: C\nmore text\nAnswer: D', 'C'),                    # first line with "Answer:" ...
    ('answer: B, so the final answer: G', 'G'),                  # ... its last match on that line
    ('...\nANSWER: F', 'F'),                                     # evalscope's format: only the last-letter rule
    ('It is option H or maybe J', 'J'),                          # the last standalone letter A-J
    ("I don't know.", 'I'),                                      # "I" is a standalone letter: TIGER reads I
    ('<think>the answer is (A)</think>\nThe answer is (B)', 'B'),  # a closed think block is left out
    ('the answer is (c)', None),                                 # lower case letters never match
    ('', None), (None, None),
])
def test_tiger_extraction_on_hand_written_replies(reply, letter):
    assert M.tiger_extract(reply) == letter


def test_tiger_guess_is_their_seeded_randint():
    def reference(n):  # TIGER-Lab evaluate_from_api.py: random.seed(12345); random.randint(0, len(options) - 1)
        random.seed(12345)
        return 'ABCDEFGHIJ'[random.randint(0, n - 1)]
    assert [M.tiger_guess(n) for n in (10, 4, 3)] == [reference(n) for n in (10, 4, 3)] == ['G', 'D', 'B']
    assert M.tiger_correct('no idea', 'G', 10) == (True, None, True)    # the guess hits
    assert M.tiger_correct('no idea', 'A', 10) == (False, None, True)
    assert M.tiger_correct('the answer is (A)', 'A', 10) == (True, 'A', False)
    assert M.n_options("... where [LETTER] is one of A,B,C,D. Think step by step") == 4
    assert M.n_options([{'role': 'user', 'content': 'is one of A,B,C,D,E,F,G,H,I,J; is one of A,B,C'}]) == 3


def review(index, target, reply, extracted, acc, letters='A,B,C,D,E,F,G,H,I,J', legacy=False):
    """A review record as evalscope 1.14 writes it (target a list, the messages sent), or the older layout
    (target a letter, the prompt as 'input')."""
    prompt = f"Answer the following ... where [LETTER] is one of {letters}. Think step by step before answering."
    rec = {'index': index, 'sample_score': {'score': {'value': {'accuracy': acc}, 'extracted_prediction': extracted,
                                                      'prediction': reply}, 'sample_id': index}}
    if legacy:
        return {**rec, 'input': prompt, 'target': target}
    return {**rec, 'target': [target], 'messages': [{'role': 'user', 'content': prompt},
                                                    {'role': 'assistant', 'content': reply}]}


def test_both_extractions_over_review_files_and_a_failed_question_counts_wrong(evalscope, tmp_path):
    from evalscope.api.evaluator.cache import ReviewResult
    d = tmp_path / 'reviews' / 'Qwen3-8B'
    d.mkdir(parents=True)
    math = [review(0, 'C', 'so the answer is (C)', 'C', 1.0),          # both right
            review(1, 'B', 'ANSWER: B', 'B', 1.0),                     # both right (TIGER: the last letter)
            review(2, 'G', 'hmm, no idea', None, 0.0),                 # TIGER's guess G hits; evalscope: wrong
            review(3, 'A', 'The answer is (D)', None, 0.0, legacy=True)]  # both wrong (an older file's layout)
    physics = [review(0, 'D', 'no idea', None, 0.0, letters='A,B,C,D'),  # 4 options: the guess is D
               review(1, 'A', 'ANSWER: A', 'A', 1.0, letters='A,B,C,D')]
    for rec in math + physics:
        ReviewResult.model_validate(rec)  # the hand-made records are evalscope's own format
    (d / 'mmlu_pro_math.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in math))
    # physics: a record written twice (a rerun) counts once, a torn last line (a kill mid-write) is left out
    (d / 'mmlu_pro_physics.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in physics + physics[-1:])
                                              + '{"index": 7, "inp')
    cases = []
    for c in M.read_reviews(d):
        c['tiger_correct'], c['tiger_pred'], c['guessed'] = M.tiger_correct(c['reply'], c['answer'], c['n_options'])
        cases.append(c)
    assert len(cases) == 6 and [c['n_options'] for c in cases] == [10] * 4 + [4] * 2
    assert [c['evalscope_correct'] for c in cases] == [True, True, False, False, False, True]
    # evalscope asked 3 physics questions; one request failed (no reply): wrong in the reported column
    s = M.tiger_scores(cases, requested={'math': 4, 'physics': 3})
    assert s['Math'] == 75.0 and s['Physics'] == round(100 * 2 / 3, 2)
    assert s['Overall'] == round(100 * 5 / 7, 2) and s['n'] == 7
    assert s['subjects']['physics'] == {'score': 66.67, 'n': 3, 'no_reply': 1, 'guessed': 1}
    assert s['subjects']['math']['guessed'] == 1


@pytest.mark.slow
def test_a_real_evalscope_run_with_a_slash_name_a_failed_question_and_a_resume(evalscope, tmp_path, capsys):
    """Issue 21.2-21.4 end to end: the installed evalscope against a real server on 127.0.0.1, on a local
    4-question MMLU-Pro copy, served as 'org/Stub-Model' (a '/' in the name). One question's request fails
    (HTTP 500): the run finishes, the reported (TIGER) column counts it wrong; a resume asks only that one."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    data = tmp_path / 'mmlu'
    data.mkdir()
    opts10 = [f'option {i}' for i in range(10)]
    test = [dict(question_id=1, question='What is q-one?', options=opts10, answer='C', answer_index=2, category='math'),
            dict(question_id=2, question='What is q-two?', options=opts10, answer='B', answer_index=1, category='math'),
            dict(question_id=3, question='What is q-three?', options=opts10, answer='A', answer_index=0, category='math'),
            dict(question_id=4, question='What is q-four?', options=['w', 'x', 'y', 'z'], answer='D', answer_index=3,
                 category='physics')]
    val = [dict(question_id=100 + i, question=f'Example {cat} {i}?', options=opts10, answer='A', answer_index=0,
                category=cat, cot_content="A: Let's think step by step. The answer is (A).")
           for cat in ('math', 'physics') for i in range(5)]
    for name, rows in (('default_test.jsonl', test), ('default_validation.jsonl', val)):
        (data / name).write_text(''.join(json.dumps({'cot_content': '', 'src': 'x', **r}) + '\n' for r in rows))
    replies = {'q-one': 'Let me see... the answer is (C).', 'q-two': 'Thinking.\nANSWER: B', 'q-three': 500,
               'q-four': 'no idea, sorry'}
    asked = []

    class H(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def _send(self, status, obj):
            body = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header('Content-Type', 'application/json')
            self.send_header('Content-Length', str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            self._send(200, {'object': 'list', 'data': [{'id': 'org/Stub-Model', 'object': 'model', 'created': 0,
                                                         'owned_by': 'x'}]})

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers['Content-Length'])))
            text = json.dumps(body['messages'])
            key = next(k for k in replies if f'What is {k}?' in text)
            asked.append(key)
            reply = replies[key]
            if reply == 500:
                return self._send(500, {'error': {'message': 'stub: internal error', 'type': 'server_error'}})
            self._send(200, {'id': 'c', 'object': 'chat.completion', 'created': 0, 'model': body['model'],
                             'choices': [{'index': 0, 'finish_reason': 'stop',
                                          'message': {'role': 'assistant', 'content': reply}}],
                             'usage': {'prompt_tokens': 1, 'completion_tokens': 1, 'total_tokens': 2}})

    srv = ThreadingHTTPServer(('127.0.0.1', 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    args = ['--base-url', f'http://127.0.0.1:{srv.server_address[1]}/v1', '--served-name', 'org/Stub-Model',
            '--dataset-dir', str(data), '--retries', '0', '--results-dir', str(tmp_path / 'res'), '--name', 'r']
    try:
        assert M.main(args) == 0, capsys.readouterr().err[-3000:]
        summary_path = tmp_path / 'res' / 'r' / 'mmlu_pro.json'
        s = json.loads(summary_path.read_text())['scores']
        work = tmp_path / 'res' / 'r' / 'mmlu_pro_work'
        assert (work / 'reports' / 'Stub-Model' / 'mmlu_pro.json').is_file()  # the basename folder
        assert s['Math'] == round(100 * 2 / 3, 2) and s['Physics'] == 100.0 and s['Overall'] == 75.0
        assert s['subjects']['math']['no_reply'] == 1 and s['subjects']['physics']['guessed'] == 1
        assert s['errored'] == {'math': 1} and s['evalscope']['n'] == 3  # evalscope's own: 3 questions scored
        assert sorted(asked) == ['q-four', 'q-one', 'q-three', 'q-two']
        # an interrupted run resumes: only the failed question is asked again
        summary_path.unlink()
        replies['q-three'] = 'The answer is (A)'
        assert M.main(args) == 0, capsys.readouterr().err[-3000:]
        assert sorted(asked[4:]) == ['q-three']
        s = json.loads(summary_path.read_text())['scores']
        assert s['Math'] == 100.0 and s['Overall'] == 100.0 and s['errored'] == {}
    finally:
        srv.shutdown()
