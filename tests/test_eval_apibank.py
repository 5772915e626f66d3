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


def test_no_256_token_cap_by_default_as_bfcl(tmp_path):
    """Issue 14.6: a thinking model / a model trained on rationales must not be cut before its call. By default
    no max_tokens is sent (as bfcl-eval's handler does; the server window bounds the answer); --max-tokens N
    still caps. Checked on the requests a real HTTP server on 127.0.0.1 receives."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    bodies = []

    class H(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def _send(self, obj):
            data = json.dumps(obj).encode()
            self.send_response(200)
            self.send_header('Content-Type', 'application/json')
            self.send_header('Content-Length', str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            self._send({'object': 'list', 'data': [{'id': 'm', 'object': 'model', 'created': 0, 'owned_by': 'x'}]})

        def do_POST(self):
            bodies.append(json.loads(self.rfile.read(int(self.headers['Content-Length']))))
            self._send({'id': 'c', 'object': 'chat.completion', 'created': 0, 'model': 'm',
                        'choices': [{'index': 0, 'finish_reason': 'stop',
                                     'message': {'role': 'assistant', 'content': 'no call'}}]})

    srv = ThreadingHTTPServer(('127.0.0.1', 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = f'http://127.0.0.1:{srv.server_address[1]}/v1'
    try:
        common = ['--base-url', url, '--sample', '--levels', '1', '--limit', '2', '--results-dir', str(tmp_path)]
        assert A.main(common + ['--name', 'a']) == 0
        assert len(bodies) == 2 and all('max_tokens' not in b for b in bodies)
        assert A.main(common + ['--name', 'b', '--max-tokens', '300']) == 0
        assert [b.get('max_tokens') for b in bodies[2:]] == [300, 300]
    finally:
        srv.shutdown()
