"""MMLU-Pro: evalscope's own argument parser accepts our command; a hand-made report is parsed."""
import argparse
from pathlib import Path

from eval import mmlu_pro as M

REPORT = Path(__file__).parent / 'fixtures' / 'eval' / 'evalscope_mmlu_pro_report.json'


def test_parse_hand_made_report(evalscope):
    s = M.parse_report(REPORT)
    assert s['Overall'] == 40.0          # question-weighted: (2+1+0+2+3+0) / 20, not the subject mean 41.67
    assert (s['Math'], s['Physics'], s['Chemistry'], s['Computer Science'], s['Biology']) == (50.0, 25.0, 0.0, 100.0, 75.0)
    assert s['subjects']['law'] == {'score': 0.0, 'n': 4} and s['n'] == 20


def test_command_is_accepted_by_evalscope(evalscope):
    from evalscope.arguments import add_argument
    from evalscope.config import TaskConfig
    cmd = M.evalscope_cmd('http://127.0.0.1:9/v1', 'awpo-eval', Path('/tmp/w'), limit=5, dataset_dir='/data/mmlu')
    assert cmd[:2] == ['evalscope', 'eval']
    parser = argparse.ArgumentParser()
    add_argument(parser)
    cfg = TaskConfig.from_args(parser.parse_args(cmd[2:]))
    assert cfg.model == 'awpo-eval' and cfg.api_url == 'http://127.0.0.1:9/v1' and cfg.datasets == ['mmlu_pro']
    assert cfg.eval_type == 'openai_api' and cfg.limit == 5 and cfg.work_dir == '/tmp/w'
    assert cfg.dataset_args['mmlu_pro']['local_path'] == '/data/mmlu'
    assert cfg.generation_config.max_tokens == M.MAX_TOKENS == 32768 and cfg.generation_config.temperature == 0.0
    assert M.report_path(Path('/tmp/w'), 'awpo-eval') == Path('/tmp/w/reports/awpo-eval/mmlu_pro.json')
