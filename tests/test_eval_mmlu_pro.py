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


def review(index, target, reply, extracted, acc, letters='A,B,C,D,E,F,G,H,I,J'):
    prompt = f"Answer the following ... where [LETTER] is one of {letters}. Think step by step before answering."
    return {'index': index, 'input': prompt, 'target': target, 'sample_score': {
        'score': {'value': {'acc': acc}, 'extracted_prediction': extracted, 'prediction': reply},
        'sample_id': index}}


def test_both_extractions_over_review_files_and_a_failed_question_counts_wrong(evalscope, tmp_path):
    from evalscope.api.evaluator.cache import ReviewResult
    d = tmp_path / 'reviews' / 'Qwen3-8B'
    d.mkdir(parents=True)
    math = [review(0, 'C', 'so the answer is (C)', 'C', 1.0),          # both right
            review(1, 'B', 'ANSWER: B', 'B', 1.0),                     # both right (TIGER: the last letter)
            review(2, 'G', 'hmm, no idea', None, 0.0),                 # TIGER's guess G hits; evalscope: wrong
            review(3, 'A', 'The answer is (D)', None, 0.0)]            # both wrong
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
