"""API-Bank: official raw format -> tool-calling format, and the name + type-strict argument match."""
import json

import pytest

from eval import apibank as A


def test_parse_api_request_keeps_python_literal_types():
    name, args = A.parse_api_request("API-Request: [Add(a=1, b='2', c=[{'k': 1.5}], d=True)]")
    assert name == 'Add'
    assert args == {'a': 1, 'b': '2', 'c': [{'k': 1.5}], 'd': True}
    assert type(args['a']) is int and type(args['b']) is str and type(args['d']) is bool
    with pytest.raises(A.APIBankFormatError):
        A.parse_api_request('API-Request: nothing here')
    with pytest.raises(A.APIBankFormatError):
        A.parse_api_request("API-Request: [F('positional')]")


def test_sample_converts_to_the_training_tool_format():
    cases = A.load_cases([1, 2, 3], str(A.SAMPLE_DIR), None)
    assert [c.level for c in cases].count(1) == 4 and [c.level for c in cases].count(2) == 2
    by_id = {c.case_id: c for c in cases}
    alarm = by_id['L1:AddAlarm-GetUserToken-level-1-1.jsonl:2']
    assert alarm.gold == {'name': 'AddAlarm', 'arguments': {'token': 'a9s8d7f6g5h4j3k2l1', 'time': '2023-03-20 06:30:00'}}
    assert [m['role'] for m in alarm.messages] == ['system', 'user', 'assistant', 'user', 'assistant', 'tool']
    call = alarm.messages[4]['tool_calls'][0]['function']
    assert call['name'] == 'GetUserToken' and json.loads(call['arguments']) == {'username': 'JohnDoe', 'password': 'pass123'}
    assert alarm.messages[5]['content'] == "{'token': 'a9s8d7f6g5h4j3k2l1'}"
    assert {t['function']['name'] for t in alarm.tools} == {'GetUserToken', 'AddAlarm'}
    health = by_id['L1:RecordHealthData-level-1-1.jsonl:0']
    props = health.tools[0]['function']['parameters']['properties']
    assert props['health_data']['type'] == 'array' and props['user_id']['type'] == 'string'
    # level 2: the text "AI: Sure, let me check." and the logged ToolSearcher call form one assistant turn,
    # and the API the search returned becomes a tool
    stock = by_id['L2:QueryStock-level-3-1.jsonl:1']
    assert [m['role'] for m in stock.messages] == ['system', 'user', 'assistant', 'tool']
    assert stock.messages[2]['content'] == 'Sure, let me check.'
    assert {t['function']['name'] for t in stock.tools} == {'ToolSearcher', 'QueryStock'}
    # level 3: ToolSearcher from the first input line; the searched API from the wrapped result
    l3 = by_id['L3:0:2']
    assert [m['role'] for m in l3.messages] == ['user', 'assistant', 'tool', 'assistant', 'tool']
    assert {t['function']['name'] for t in l3.tools} == {'ToolSearcher', 'QueryMeeting'}
    assert l3.gold == {'name': 'ToolSearcher', 'arguments': {'keywords': 'EmailReminder'}}
    row = A.to_swift_row(alarm)
    assert [m['role'] for m in row['messages']][-3:] == ['tool_call', 'tool_response', 'tool_call']
    assert json.loads(row['messages'][-1]['content']) == alarm.gold
    assert json.loads(row['tools']) == alarm.tools


def test_user_after_tool_result_gets_an_assistant_turn():
    row = {'file': 'x', 'id': 0, 'instruction': 'API descriptions:\n' + json.dumps(
        {'name': 'F', 'description': 'd', 'input_parameters': {'a': {'type': 'int', 'description': ''}}}),
           'input': "User: hi\nAPI-Request: [F(a=1)]->2\nUser: again\nGenerate API Request:\n",
           'expected_output': 'API-Request: [F(a=3)]'}
    case = A.convert_row(row, 1, 0)
    assert [m['role'] for m in case.messages] == ['user', 'assistant', 'tool', 'assistant', 'user']
    assert case.tools[0]['function']['parameters']['properties']['a']['type'] == 'integer'


def test_missing_field_names_the_row():
    with pytest.raises(A.APIBankFormatError, match='level 2 row 7'):
        A.convert_row({'instruction': '', 'input': ''}, 2, 7)


GOLD = {'name': 'QueryStock', 'arguments': {'stock_code': 'MSFT', 'date': '2022-02-04', 'n': 3}}


@pytest.mark.parametrize('pred, ok, why', [
    ([{'name': 'QueryStock', 'arguments': {'date': '2022-02-04', 'stock_code': 'MSFT', 'n': 3}}], True, 'correct'),
    ([], False, 'no_call'),
    ([{'name': 'QueryStock', 'arguments': {'stock_code': 'MSFT', 'date': '2022-02-04', 'n': '3'}}], False,
     'wrong_argument_values'),   # '3' != 3
    ([{'name': 'QueryStock', 'arguments': {'stock_code': 'MSFT', 'date': '2022-02-04', 'n': 3.0}}], False,
     'wrong_argument_values'),   # 3.0 != 3
    ([{'name': 'QueryStock', 'arguments': {'stock_code': 'MSFT', 'date': '2022-02-04'}}], False,
     'wrong_argument_names'),
    ([{'name': 'QueryStocks', 'arguments': GOLD['arguments']}], False, 'wrong_name'),
    ([{'name': 'QueryStock', 'arguments': None}], False, 'bad_arguments'),
    ([GOLD, GOLD], False, 'extra_calls'),
])
def test_match_calls(pred, ok, why):
    assert A.match_calls(pred, GOLD) == (ok, why)


def test_strict_equal_recurses_and_separates_bool_from_int():
    assert A.strict_equal({'a': [1, {'b': 'x'}]}, {'a': [1, {'b': 'x'}]})
    assert not A.strict_equal({'a': [1, {'b': 'x'}]}, {'a': [True, {'b': 'x'}]})
    assert not A.strict_equal([1, 2], [1, 2, 3])


def test_extract_calls_from_tool_calls_and_hermes_text():
    msg = {'content': None, 'tool_calls': [{'function': {'name': 'F', 'arguments': '{"a": 1}'}},
                                           {'function': {'name': 'G', 'arguments': 'not json'}}]}
    assert A.extract_calls(msg) == [{'name': 'F', 'arguments': {'a': 1}}, {'name': 'G', 'arguments': None}]
    text = {'content': 'ok\n<tool_call>\n{"name": "F", "arguments": {"a": "1"}}\n</tool_call>', 'tool_calls': None}
    assert A.extract_calls(text) == [{'name': 'F', 'arguments': {'a': '1'}}]
    assert A.extract_calls({'content': 'no call here'}) == []


def test_score_is_per_level_and_micro_overall():
    recs = ([{'level': 1, 'correct': True}] * 3 + [{'level': 1, 'correct': False}]
            + [{'level': 2, 'correct': False}] * 2 + [{'level': 3, 'correct': True}])
    s = A.score(recs, [1, 2, 3])
    assert (s['L1'], s['L2'], s['L3']) == (75.0, 0.0, 100.0)
    assert s['Overall'] == round(100 * 4 / 7, 2)   # micro, not the mean of levels (58.33)
    assert s['n'] == 7 and s['L2_n'] == 2


class ScriptedServer:
    """A real OpenAI-compatible server on 127.0.0.1 whose answer depends on the case asked: ``ok`` (the gold
    call), ``hang`` (sleeps past the client's time-out), ``500`` (HTTP 500), ``runaway`` (never stops: cut at
    ``max_tokens`` with finish_reason length; without max_tokens it hangs), ``garbage`` (HTTP 200 whose body is
    not JSON). ``bodies`` records every request."""

    def __init__(self, plan):
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        self.plan, self.bodies = plan, []  # plan: {json.dumps(messages): action}
        server = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _send(self, status, obj):
                data = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
                self.send_response(status)
                self.send_header('Content-Type', 'application/json')
                self.send_header('Content-Length', str(len(data)))
                self.end_headers()
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def do_GET(self):
                self._send(200, {'object': 'list', 'data': [{'id': 'm', 'object': 'model', 'created': 0,
                                                             'owned_by': 'x'}]})

            def do_POST(self):
                import time
                body = json.loads(self.rfile.read(int(self.headers['Content-Length'])))
                server.bodies.append(body)
                action, gold = server.plan.get(json.dumps(body['messages']), ('ok', None))
                content, calls, finish = 'no call', None, 'stop'
                if action == 'hang' or (action == 'runaway' and 'max_tokens' not in body):
                    time.sleep(3)
                if action == '500':
                    return self._send(500, {'error': {'message': 'stub: internal error', 'type': 'server_error'}})
                if action == 'close':  # the connection drops without an answer (a server going down)
                    return
                if action == 'garbage':
                    return self._send(200, b'<html>502 Bad Gateway</html>')
                if action == 'runaway':
                    content, finish = 'Let me think again. ' * (body['max_tokens'] // 4), 'length'
                if action == 'ok' and gold:
                    calls = [{'id': 'c1', 'type': 'function', 'function': {
                        'name': gold['name'], 'arguments': json.dumps(gold['arguments'])}}]
                self._send(200, {'id': 'c', 'object': 'chat.completion', 'created': 0, 'model': 'm',
                                 'choices': [{'index': 0, 'finish_reason': finish, 'message': {
                                     'role': 'assistant', 'content': content, 'tool_calls': calls}}]})

        self.srv = ThreadingHTTPServer(('127.0.0.1', 0), H)
        self.srv.daemon_threads = True
        self.url = f'http://127.0.0.1:{self.srv.server_address[1]}/v1'
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def stop(self):
        self.srv.shutdown()
        self.srv.server_close()


def test_every_per_case_failure_is_a_recorded_wrong_answer_and_resume_skips_it(tmp_path, monkeypatch, capsys):
    """Issue 21.3: a hang (time-out), HTTP 500, a runaway answer and a reply the SDK cannot read are each that
    case's wrong answer with its reason; the run finishes; a resume asks nothing again; --retry-failed does.
    Every request carries the generation cap (32768), and a time-out is not retried."""
    monkeypatch.setattr(A, 'BACKOFF', 0.01)
    cases = A.load_cases([1, 2], str(A.SAMPLE_DIR), None)
    assert len(cases) == 6
    actions = ['hang', '500', 'runaway', 'garbage', 'ok', 'ok']
    srv = ScriptedServer({json.dumps(c.messages): (a, c.gold) for c, a in zip(cases, actions)})
    common = ['--base-url', srv.url, '--sample', '--levels', '1,2', '--results-dir', str(tmp_path),
              '--timeout', '1', '--retries', '1', '--name', 'r']
    try:
        assert A.main(common) == 0
        recs = {r['case_id']: r for r in map(json.loads, (tmp_path / 'r' / 'apibank.cases.jsonl').read_text().splitlines())}
        reasons = [recs[c.case_id]['reason'] for c in cases]
        assert reasons[:3] == ['error:timeout', 'error:http_500', 'length_cap'] and reasons[3].startswith('error:')
        assert reasons[4:] == ['correct', 'correct']
        assert [recs[c.case_id]['correct'] for c in cases] == [False] * 4 + [True] * 2
        summary = json.loads((tmp_path / 'r' / 'apibank.json').read_text())
        assert summary['scores']['Overall'] == round(100 * 2 / 6, 2)
        assert sum(summary['scores']['failed_cases'].values()) == 4
        assert summary['settings']['max_tokens'] == 32768
        assert {b['max_tokens'] for b in srv.bodies} == {32768}  # the cap is sent by default
        per_case = [sum(json.dumps(b['messages']) == json.dumps(c.messages) for b in srv.bodies) for c in cases]
        assert per_case[:3] == [1, 2, 1]  # time-out: not retried; 500: one retry (--retries 1); runaway: once
        n = len(srv.bodies)
        # an interrupted run (cases file, no summary) resumes: nothing is asked again, the scores are the same
        (tmp_path / 'r' / 'apibank.json').unlink()
        assert A.main(common) == 0 and len(srv.bodies) == n
        assert json.loads((tmp_path / 'r' / 'apibank.json').read_text())['scores']['Overall'] == summary['scores']['Overall']
        # --retry-failed asks the four failed cases again (the server is fine now)
        (tmp_path / 'r' / 'apibank.json').unlink()
        srv.plan = {json.dumps(c.messages): ('ok', c.gold) for c in cases}
        assert A.main(common + ['--retry-failed']) == 0 and len(srv.bodies) == n + 4
        again = json.loads((tmp_path / 'r' / 'apibank.json').read_text())['scores']
        assert again['Overall'] == 100.0 and again['failed_cases'] == {}
        # a server that goes down is not a per-case failure: after 3 cases in a row the run stops without
        # recording them, and the same command resumes once the server is back
        srv.plan = {json.dumps(c.messages): ('close', c.gold) for c in cases}
        down = common[:-1] + ['down']
        assert A.main(down) == 2 and 'cannot be reached (3 cases in a row' in capsys.readouterr().err
        assert not (tmp_path / 'down' / 'apibank.cases.jsonl').exists() or \
            (tmp_path / 'down' / 'apibank.cases.jsonl').read_text() == ''
        srv.plan = {json.dumps(c.messages): ('ok', c.gold) for c in cases}
        assert A.main(down) == 0
        assert json.loads((tmp_path / 'down' / 'apibank.json').read_text())['scores']['Overall'] == 100.0
    finally:
        srv.stop()


def test_generation_cap_default_and_override(tmp_path):
    """Issue 14.6 / 21.3: no 256-token cut; the default cap is Qwen3's recommended 32768, --max-tokens N sets
    another, 0 sends none."""
    srv = ScriptedServer({})
    try:
        common = ['--base-url', srv.url, '--sample', '--levels', '1', '--limit', '1', '--results-dir', str(tmp_path)]
        assert A.main(common + ['--name', 'a']) == 0
        assert A.main(common + ['--name', 'b', '--max-tokens', '300']) == 0
        assert A.main(common + ['--name', 'c', '--max-tokens', '0']) == 0
        assert [b.get('max_tokens') for b in srv.bodies] == [32768, 300, None]
    finally:
        srv.stop()
