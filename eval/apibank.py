"""API-Bank (Li et al., 2023), levels 1-3, scored as tool-RL papers do (paper Table 3).

    python -m eval.apibank --model-path CKPT --name my-run [--levels 1,2,3] [--limit N] [--data-dir DIR]

Data: the official test files (``test-data/level-1-api.json``, ``level-2-api.json``,
``level-3-batch-inf.json`` of DAMO-ConvAI's API-Bank, mirrored on the HF hub as ``liminghao1630/API-Bank``),
downloaded once into ``~/.cache/awpo/api-bank`` (``$AWPO_APIBANK_DIR``); ``--data-dir`` reads a local copy.
``eval/data/apibank_sample`` is a small hand-written sample in the same raw format (for CPU smoke runs).

Raw rows:
* levels 1/2: ``{file, id, instruction, input, expected_output}`` -- the API descriptions are JSON lines after
  "API descriptions:" in ``instruction``; ``input`` is the dialogue ("User: ...", "AI: ...",
  "API-Request: [Name(k='v')]->result", ..., "Generate API Request:");
* level 3: ``{instruction, input, output, sample_id, api_id}`` -- ``input`` starts with the ToolSearcher
  description (``{"apiCode", "description", "parameters", "response"}``) then the dialogue.

Conversion (:func:`convert_row`) gives the training tool-calling format: OpenAI ``tools`` plus messages with
assistant ``tool_calls`` and ``tool`` results; APIs that a ToolSearcher result describes join ``tools``.
An "AI:" utterance right before a logged call becomes that call's assistant text; a trailing "AI:" utterance
right before the call to predict (it only announces it) is dropped, because OpenAI chat servers would not
continue it the same way; a user turn right after a tool result gets an empty assistant turn before it.

Correct (:func:`match_calls`): the model's calls are exactly ``[gold]`` -- same API name, same argument
names, and values equal *with their types* (``'1' != 1``, ``1 != 1.0``, ``True != 1``); no call, a second
call, or unparseable arguments are wrong. Scores: accuracy per level and the micro Overall over all cases
(paper Table 3: Overall = correct / total over L1+L2+L3).

Hours-long runs survive bad cases (issue 21.3). Every per-case failure -- a time-out, an answer cut at the
generation cap (``length_cap``: a runaway), an HTTP error after the retries, any exception of the SDK or of
reading the reply -- is that case's wrong answer, recorded with its reason (``error``); it is never fatal, and a
resume skips it like any recorded case (``--retry-failed`` runs the failed ones again). Only a server that
cannot be reached at all (connection refused for :data:`DOWN_AFTER` cases in a row) stops the run, without
recording those cases, so a resume asks them again. The generation cap (``--max-tokens``, default
:data:`MAX_TOKENS` = 32768) is Qwen3's recommended output length for thinking mode, the answer budget the
model card gives and eval/mmlu_pro.py uses: API-Bank's own evaluator (DAMO-ConvAI api-bank/evaluator.py,
utils.py) sends no cap, so the model's recommended budget is the rule; a 256-token cap biased the table
against reasoning methods (issue 14.6), no cap let one runaway take the run down. Retries are ours alone (the
SDK's are off): up to ``--retries`` more attempts after an HTTP 429/5xx, none after a time-out (a request that
took ``--timeout`` seconds would take it again).
"""
from __future__ import annotations

import argparse
import ast
import json
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

LEVEL_FILES = {1: 'level-1-api.json', 2: 'level-2-api.json', 3: 'level-3-batch-inf.json'}
MAX_TOKENS = 32768      # the generation cap: Qwen3's recommended output length (module doc)
TIMEOUT = 1800.0        # seconds per request: a 32768-token answer at ~20 tokens/s fits
RETRIES = 2             # more attempts after HTTP 429/5xx (not after a time-out)
DOWN_AFTER = 3          # consecutive cases whose server cannot be reached: stop (the server is down)
BACKOFF = 2.0           # seconds before the first retry; doubled each time
HUB_REPO = 'liminghao1630/API-Bank'
SAMPLE_DIR = Path(__file__).with_name('data') / 'apibank_sample'
PY_TO_JSON_TYPE = {'str': 'string', 'int': 'integer', 'float': 'number', 'bool': 'boolean', 'list': 'array',
                   'dict': 'object', 'List': 'array', 'Dict': 'object'}


class APIBankFormatError(ValueError):
    pass


# ---------------------------------------------------------------------------------------------------------
# Data: download / locate the official files
# ---------------------------------------------------------------------------------------------------------
def cache_dir() -> Path:
    return Path(os.environ.get('AWPO_APIBANK_DIR') or Path.home() / '.cache' / 'awpo' / 'api-bank')


def level_file(level: int, data_dir: Optional[str] = None) -> Path:
    """The raw file of ``level``: in ``data_dir`` (or its ``test-data/``), else downloaded once into the cache."""
    name = LEVEL_FILES[level]
    roots = [Path(data_dir)] if data_dir else [cache_dir()]
    for root in roots:
        for cand in (root / name, root / 'test-data' / name):
            if cand.is_file():
                return cand
    if data_dir:
        raise FileNotFoundError(f'{name} is not in {data_dir} (nor in {data_dir}/test-data)')
    return download_level(level)


def download_level(level: int) -> Path:
    """Fetch ``test-data/<file>`` of the hub dataset into the cache (needs network to the hub)."""
    from huggingface_hub import hf_hub_download
    dest = cache_dir()
    dest.mkdir(parents=True, exist_ok=True)
    path = hf_hub_download(HUB_REPO, f'test-data/{LEVEL_FILES[level]}', repo_type='dataset', local_dir=str(dest))
    return Path(path)


def load_level(level: int, data_dir: Optional[str] = None) -> List[Dict[str, Any]]:
    path = level_file(level, data_dir)
    rows = json.loads(path.read_text())
    if not isinstance(rows, list):
        raise APIBankFormatError(f'{path}: expected a JSON list of rows')
    return rows


# ---------------------------------------------------------------------------------------------------------
# Parsing the official text format
# ---------------------------------------------------------------------------------------------------------
def parse_api_request(text: str) -> Tuple[str, Dict[str, Any]]:
    """``API-Request: [Name(k='v', n=3)]`` -> ``('Name', {'k': 'v', 'n': 3})`` (Python literal values)."""
    m = re.search(r'\[\s*([A-Za-z_]\w*)\((.*)\)\s*\]', text, re.S)
    if not m:
        raise APIBankFormatError(f'no [ApiName(...)] call in {text!r}')
    try:
        call = ast.parse(f'{m.group(1)}({m.group(2)})', mode='eval').body
        args = {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords}
    except (SyntaxError, ValueError) as e:
        raise APIBankFormatError(f'cannot parse call {m.group(0)!r}: {e}') from e
    if call.args or any(k is None for k in args):
        raise APIBankFormatError(f'positional arguments in {m.group(0)!r}')
    return m.group(1), args


def api_to_tool(desc: Dict[str, Any]) -> Dict[str, Any]:
    """An API-Bank description (``name``/``apiCode``, ``input_parameters``/``parameters``) as an OpenAI tool."""
    name = desc.get('name') or desc.get('apiCode')
    params = desc.get('input_parameters', desc.get('parameters')) or {}
    if not name or not isinstance(params, dict):
        raise APIBankFormatError(f'API description without name/parameters: {desc}')
    props = {}
    for k, spec in params.items():
        t = PY_TO_JSON_TYPE.get(str(spec.get('type', 'str')).split('[')[0], 'string')
        props[k] = {'type': t, 'description': spec.get('description', '')}
    return {'type': 'function', 'function': {'name': name, 'description': desc.get('description', ''),
                                             'parameters': {'type': 'object', 'properties': props,
                                                            'required': list(params)}}}


def _descriptions_in_result(result: str) -> List[Dict[str, Any]]:
    """API descriptions returned by a ToolSearcher call (a dict or a list of dicts, as a Python literal)."""
    try:
        obj = ast.literal_eval(result.strip())
    except (SyntaxError, ValueError):
        return []
    if isinstance(obj, dict) and isinstance(obj.get('output'), (dict, list)):  # level-3 wrapper
        obj = obj['output']
    items = obj if isinstance(obj, list) else [obj]
    return [d for d in items if isinstance(d, dict) and 'name' in d and 'input_parameters' in d]


_LINE = re.compile(r'^(User|AI|API-Request):\s?(.*)$')


def parse_dialogue(text: str) -> List[Tuple[str, str]]:
    """Split the ``input`` dialogue into (speaker, text) turns; continuation lines join the previous turn."""
    turns: List[Tuple[str, str]] = []
    for line in text.split('\n'):
        if line.strip().startswith('Generate API Request'):
            break
        m = _LINE.match(line)
        if m:
            turns.append((m.group(1), m.group(2)))
        elif turns:
            turns[-1] = (turns[-1][0], turns[-1][1] + '\n' + line)
        elif line.strip():
            raise APIBankFormatError(f'dialogue line before any speaker: {line!r}')
    return turns


@dataclass
class Case:
    """One converted API-Bank case: the request and its gold call."""
    case_id: str
    level: int
    messages: List[Dict[str, Any]]
    tools: List[Dict[str, Any]]
    gold: Dict[str, Any]  # {'name', 'arguments'}
    extra: Dict[str, Any] = field(default_factory=dict)


def convert_row(row: Dict[str, Any], level: int, index: int) -> Case:
    """Raw official row -> :class:`Case` (training tool-calling format)."""
    where = f'level {level} row {index}'
    try:
        instruction, dialogue = row['instruction'], row['input']
        expected = row['expected_output'] if level in (1, 2) else row['output']
    except KeyError as e:
        raise APIBankFormatError(f'{where}: missing field {e}') from e
    tools: Dict[str, Dict[str, Any]] = {}
    if 'API descriptions:' in instruction:
        for line in instruction.split('API descriptions:', 1)[1].strip().splitlines():
            if line.strip():
                tool = api_to_tool(json.loads(line))
                tools[tool['function']['name']] = tool
    if level == 3:  # the ToolSearcher description is the first line of the input
        first, _, dialogue = dialogue.partition('\n')
        tool = api_to_tool(json.loads(first))
        tools[tool['function']['name']] = tool
    system = 'The current year is 2023.' if 'current year is 2023' in instruction else None
    messages: List[Dict[str, Any]] = [{'role': 'system', 'content': system}] if system else []
    n_call = 0
    for speaker, text in parse_dialogue(dialogue):
        if speaker == 'API-Request':
            call_text, sep, result = text.partition(']->')
            name, args = parse_api_request(call_text + ']')
            call_id = f'call_{n_call}'
            n_call += 1
            call = {'id': call_id, 'type': 'function',
                    'function': {'name': name, 'arguments': json.dumps(args, ensure_ascii=False)}}
            if messages and messages[-1]['role'] == 'assistant' and not messages[-1].get('tool_calls'):
                messages[-1]['tool_calls'] = [call]  # "AI: let me check." + the call = one assistant turn
            else:
                messages.append({'role': 'assistant', 'content': '', 'tool_calls': [call]})
            messages.append({'role': 'tool', 'tool_call_id': call_id, 'content': result})
            for desc in _descriptions_in_result(result):
                tool = api_to_tool(desc)
                tools.setdefault(tool['function']['name'], tool)
        else:
            role = 'user' if speaker == 'User' else 'assistant'
            if role == 'user' and messages and messages[-1]['role'] == 'tool':
                # chat templates (ms-swift's among them) need an assistant turn between a tool result and
                # the next user turn; the official dialogue has none there
                messages.append({'role': 'assistant', 'content': ''})
            if messages and messages[-1]['role'] == role and not messages[-1].get('tool_calls'):
                messages[-1]['content'] += '\n' + text
            else:
                messages.append({'role': role, 'content': text})
    if messages and messages[-1]['role'] == 'assistant' and not messages[-1].get('tool_calls'):
        messages.pop()  # the announcement right before the call (see module doc)
    name, args = parse_api_request(expected)
    if level in (1, 2):
        case_id = f"L{level}:{row.get('file')}:{row.get('id')}"
    else:
        case_id = f"L3:{row.get('sample_id')}:{row.get('api_id')}"
    return Case(case_id, level, messages, list(tools.values()), {'name': name, 'arguments': args})


def to_swift_row(case: Case) -> Dict[str, Any]:
    """The same case as an ms-swift dataset row (roles ``tool_call`` / ``tool_response``, ``tools`` JSON)."""
    msgs = []
    for m in case.messages:
        if m.get('tool_calls'):
            for c in m['tool_calls']:
                msgs.append({'role': 'tool_call', 'content': json.dumps(
                    {'name': c['function']['name'], 'arguments': json.loads(c['function']['arguments'])},
                    ensure_ascii=False)})
        elif m['role'] == 'tool':
            msgs.append({'role': 'tool_response', 'content': m['content']})
        else:
            msgs.append({'role': m['role'], 'content': m['content']})
    msgs.append({'role': 'tool_call', 'content': json.dumps(case.gold, ensure_ascii=False)})
    return {'tools': json.dumps(case.tools, ensure_ascii=False), 'messages': msgs}


# ---------------------------------------------------------------------------------------------------------
# Scoring
# ---------------------------------------------------------------------------------------------------------
def strict_equal(a: Any, b: Any) -> bool:
    """Value equality that also requires equal types, recursively (``'1' != 1``, ``1 != 1.0``, ``True != 1``)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(strict_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(strict_equal(x, y) for x, y in zip(a, b))
    return a == b


_HERMES = re.compile(r'<tool_call>\s*(\{.*?\})\s*</tool_call>', re.S)


def extract_calls(message: Dict[str, Any]) -> List[Dict[str, Any]]:
    """Predicted calls from an OpenAI chat message: ``tool_calls``, else hermes ``<tool_call>`` JSON in the
    text. Each is ``{'name', 'arguments'}``; arguments that are not a JSON object become ``None``."""
    calls = []
    for c in message.get('tool_calls') or []:
        fn = c.get('function') or {}
        args = fn.get('arguments')
        if isinstance(args, str):
            try:
                args = json.loads(args)
            except json.JSONDecodeError:
                args = None
        calls.append({'name': fn.get('name'), 'arguments': args if isinstance(args, dict) else None})
    if not calls:
        for block in _HERMES.findall(message.get('content') or ''):
            try:
                obj = json.loads(block)
            except json.JSONDecodeError:
                calls.append({'name': None, 'arguments': None})
                continue
            args = obj.get('arguments', obj.get('parameters'))
            calls.append({'name': obj.get('name'), 'arguments': args if isinstance(args, dict) else None})
    return calls


def match_calls(pred: List[Dict[str, Any]], gold: Dict[str, Any]) -> Tuple[bool, str]:
    """Correct iff ``pred == [gold]`` with type-strict argument values. Returns (correct, reason)."""
    if not pred:
        return False, 'no_call'
    if len(pred) > 1:
        return False, 'extra_calls'
    p = pred[0]
    if p['name'] != gold['name']:
        return False, 'wrong_name'
    if p['arguments'] is None:
        return False, 'bad_arguments'
    if p['arguments'].keys() != gold['arguments'].keys():
        return False, 'wrong_argument_names'
    if not strict_equal(p['arguments'], gold['arguments']):
        return False, 'wrong_argument_values'
    return True, 'correct'


def score(records: List[Dict[str, Any]], levels: List[int]) -> Dict[str, Any]:
    """Per-level accuracy (%) and the micro Overall over every case of the levels run."""
    out: Dict[str, Any] = {}
    total = correct = 0
    for lv in levels:
        rs = [r for r in records if r['level'] == lv]
        c = sum(bool(r['correct']) for r in rs)
        out[f'L{lv}'] = round(100.0 * c / len(rs), 2) if rs else None
        out[f'L{lv}_n'] = len(rs)
        total, correct = total + len(rs), correct + c
    out['Overall'] = round(100.0 * correct / total, 2) if total else None
    out['n'] = total
    return out


# ---------------------------------------------------------------------------------------------------------
# Glue: query the served model
# ---------------------------------------------------------------------------------------------------------
class ServerDown(RuntimeError):
    """The server cannot be reached at all (not a per-case failure)."""


def query(client, model: str, case: Case, max_tokens: Optional[int], temperature: float) -> Dict[str, Any]:
    """One chat request; the reply message with its ``finish_reason``. ``max_tokens`` None: none is sent (the
    server's window bounds the answer)."""
    kwargs = {} if max_tokens is None else {'max_tokens': max_tokens}
    resp = client.chat.completions.create(model=model, messages=case.messages, tools=case.tools,
                                          temperature=temperature, **kwargs)
    msg = resp.choices[0].message.model_dump()
    msg['finish_reason'] = resp.choices[0].finish_reason
    return msg


def _retryable(e: BaseException) -> bool:
    import openai
    status = getattr(e, 'status_code', None)
    return isinstance(e, openai.APIConnectionError) and not isinstance(e, openai.APITimeoutError) or \
        (status is not None and (status == 429 or status >= 500))


def run_case(client, model: str, case: Case, max_tokens: Optional[int], temperature: float,
             retries: int = RETRIES, backoff: Optional[float] = None) -> Dict[str, Any]:
    """The case's record: scored, or wrong with the reason it failed. Never raises for a per-case failure;
    raises :class:`ServerDown` when the server cannot be reached after the retries."""
    import openai
    rec: Dict[str, Any] = {'case_id': case.case_id, 'level': case.level, 'gold': case.gold}
    for attempt in range(retries + 1):
        try:
            msg = query(client, model, case, max_tokens, temperature)
            break
        except Exception as e:  # noqa: BLE001 - whatever the SDK or the reply throws is this case's failure
            if attempt < retries and _retryable(e):
                time.sleep((BACKOFF if backoff is None else backoff) * 2 ** attempt)
                continue
            if isinstance(e, openai.APIConnectionError) and not isinstance(e, openai.APITimeoutError):
                raise ServerDown(f'{type(e).__name__}: {e}') from e
            status = getattr(e, 'status_code', None)
            kind = ('timeout' if isinstance(e, openai.APITimeoutError) else f'http_{status}' if status
                    else type(e).__name__)
            return {**rec, 'correct': False, 'reason': f'error:{kind}', 'pred': [], 'response': None,
                    'error': f'{type(e).__name__}: {str(e)[:300]}', 'attempts': attempt + 1}
    pred = extract_calls(msg)
    ok, why = match_calls(pred, case.gold)
    if msg.get('finish_reason') == 'length':  # a runaway: cut at the generation cap, never a finished answer
        ok, why = False, 'length_cap'
    return {**rec, 'correct': ok, 'reason': why, 'pred': pred, 'response': msg.get('content'),
            'finish_reason': msg.get('finish_reason')}


def is_failure(rec: Dict[str, Any]) -> bool:
    """A record of a case that failed (an error or the cap), not of an answer that was judged."""
    return str(rec.get('reason', '')).startswith('error:') or rec.get('reason') == 'length_cap'


def load_cases(levels: List[int], data_dir: Optional[str], limit: Optional[int]) -> List[Case]:
    cases = []
    for lv in levels:
        rows = load_level(lv, data_dir)
        rows = rows[:limit] if limit else rows
        cases += [convert_row(r, lv, i) for i, r in enumerate(rows)]
    return cases


def main(argv: Optional[List[str]] = None) -> int:
    from eval.serve import add_server_args, server_from_args, served_model_name, ServeError
    from eval import results as R
    p = argparse.ArgumentParser(prog='python -m eval.apibank', description=__doc__.split('\n\n')[0])
    add_server_args(p)
    p.add_argument('--name', required=True, help='run name: results/<name>/apibank.json')
    p.add_argument('--levels', default='1,2,3')
    p.add_argument('--limit', type=int, default=None, help='first N cases of each level')
    p.add_argument('--data-dir', default=None, help='local copy of the official test-data files')
    p.add_argument('--sample', action='store_true', help=f'use the bundled sample ({SAMPLE_DIR})')
    p.add_argument('--paper-row', default=None, help='paper row this run reproduces, e.g. Qwen3-8B/AWPO')
    p.add_argument('--results-dir', default='results')
    p.add_argument('--on-exists', default='refuse', choices=R.ON_EXISTS)
    p.add_argument('--max-tokens', type=int, default=MAX_TOKENS,
                   help="generation cap (default %(default)s, Qwen3's recommended output length; 0 = none)")
    p.add_argument('--timeout', type=float, default=TIMEOUT, help='seconds per request (default %(default)s)')
    p.add_argument('--retries', type=int, default=RETRIES, help='more attempts after HTTP 429/5xx (not time-outs)')
    p.add_argument('--retry-failed', action='store_true',
                   help='run again the cases an earlier (interrupted) run recorded as failed (error / length cap)')
    p.add_argument('--temperature', type=float, default=0.0)
    args = p.parse_args(argv)
    max_tokens = args.max_tokens or None
    if getattr(args, 'smollm2', False):
        # The CPU model's serving cap (--smollm2 [--max-new-tokens]) bounds the answer here too: a request's
        # max_tokens would override swift deploy's --max_new_tokens (issue 20: the demo's cap from its cases).
        from eval.serve import SMOLLM2_MAX_NEW_TOKENS
        serve_cap = args.max_new_tokens or SMOLLM2_MAX_NEW_TOKENS
        max_tokens = min(max_tokens or serve_cap, serve_cap)
    levels = [int(x) for x in args.levels.split(',') if x]
    data_dir = str(SAMPLE_DIR) if args.sample else args.data_dir
    cases = load_cases(levels, data_dir, args.limit)
    paths = R.plan_run(args.results_dir, args.name, 'apibank', args.on_exists)
    done = {r['case_id']: r for r in R.read_cases(paths.cases)}  # the last record of a case wins
    if args.retry_failed:
        done = {k: r for k, r in done.items() if not is_failure(r)}
    todo = [c for c in cases if c.case_id not in done]
    print(f'[apibank] {len(cases)} cases ({len(done)} already in {paths.cases}), levels {levels}', file=sys.stderr)
    t0 = time.time()
    if todo:
        from openai import OpenAI
        from tqdm import tqdm
        try:
            with server_from_args(args, log_path=str(paths.summary.with_suffix('.server.log'))) as url:
                model = served_model_name(url, args.served_name if args.base_url else
                                          (args.served_name or 'awpo-eval'))
                client = OpenAI(base_url=url, api_key=os.environ.get('OPENAI_API_KEY', 'EMPTY'),
                                timeout=args.timeout, max_retries=0)  # our retries only (module doc)
                down = 0
                for case in tqdm(todo, desc='API-Bank', unit='case'):
                    try:
                        rec = run_case(client, model, case, max_tokens, args.temperature, args.retries)
                    except ServerDown as e:
                        down += 1
                        if down >= DOWN_AFTER:
                            raise
                        print(f'[apibank] {case.case_id}: server unreachable ({e}); not recorded', file=sys.stderr)
                        continue
                    down = 0
                    if is_failure(rec):
                        print(f"[apibank] {case.case_id}: {rec['reason']} {rec.get('error', '')} -> wrong",
                              file=sys.stderr)
                    R.append_case(paths.cases, rec)
                    done[case.case_id] = rec
        except ServeError as e:
            print(f'[apibank] error: {e}', file=sys.stderr)
            return 2
        except ServerDown as e:
            print(f'[apibank] error: the server cannot be reached ({DOWN_AFTER} cases in a row: {e}); '
                  f'{len(done)} cases are recorded in {paths.cases}: run the same command again to resume',
                  file=sys.stderr)
            return 2
    missing = [c.case_id for c in cases if c.case_id not in done]
    if missing:  # unreachable server for a case or two: no score from a partial set
        print(f'[apibank] {len(missing)} cases not recorded (server unreachable), e.g. {missing[0]}: run the same '
              f'command again to resume', file=sys.stderr)
        return 2
    records = [done[c.case_id] for c in cases]
    scores = score(records, levels)
    failures: Dict[str, int] = {}
    for r in records:
        if is_failure(r):
            failures[r['reason']] = failures.get(r['reason'], 0) + 1
    scores['failed_cases'] = failures  # counted wrong; {} when every case got an answer
    if failures:
        print(f'[apibank] {sum(failures.values())} cases failed and count as wrong: {failures} '
              f'(--retry-failed runs them again)', file=sys.stderr)
    if args.sample or args.limit:  # not the official test set in full: tables mark these cells with *
        scores['partial_columns'] = ['Overall'] + [f'L{lv}' for lv in levels]
    summary = R.write_summary(
        paths, benchmark='apibank', name=args.name,
        model={'model_path': args.model_path, 'base_url': args.base_url, 'base_model': args.base_model},
        scores=scores,
        settings={'levels': levels, 'limit': args.limit, 'data': data_dir or str(cache_dir()),
                  'max_tokens': max_tokens, 'timeout': args.timeout, 'retries': args.retries,
                  'temperature': args.temperature,
                  'rule': 'calls == [gold]: same name, same argument names, type-strict equal values',
                  'paper_row': args.paper_row},
        extra={'wall_time_s': round(time.time() - t0, 1)})
    print(json.dumps(scores))
    print(f'[apibank] wrote {summary} and {paths.cases}', file=sys.stderr)
    return 0


if __name__ == '__main__':
    sys.exit(main())
