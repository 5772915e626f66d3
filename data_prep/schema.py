"""jsonschema validation of every written row against `schema/row.schema.json`, plus the checks that
JSON schema cannot state: JSON-string columns decode to valid tools/calls, calls name listed tools,
the prompt ends with a user or tool_response turn."""
from __future__ import annotations

import functools
import json
from pathlib import Path

import jsonschema

SCHEMA_PATH = Path(__file__).with_name('schema') / 'row.schema.json'


@functools.lru_cache(maxsize=None)
def _validators() -> dict[str, jsonschema.protocols.Validator]:
    schema = json.loads(SCHEMA_PATH.read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    sub = lambda name: cls({'$ref': f'#/$defs/{name}', '$defs': schema['$defs']})  # noqa: E731
    return {'row': cls(schema), 'tools': sub('tools'), 'calls': sub('calls'),
            'tool_call_content': sub('tool_call_content')}


def _check(validator, instance, where: str) -> None:
    err = jsonschema.exceptions.best_match(validator.iter_errors(instance))
    if err is not None:
        path = '/'.join(str(p) for p in err.absolute_path)
        raise ValueError(f'{where}{"/" + path if path else ""}: {err.message}')


@functools.lru_cache(maxsize=4096)
def _tool_names(tools_json: str) -> frozenset:
    """Validate a `tools` string once: the instances of one dialogue share the same string."""
    tools = json.loads(tools_json)
    _check(_validators()['tools'], tools, 'tools')
    return frozenset(t['function']['name'] for t in tools)


@functools.lru_cache(maxsize=4096)
def _check_tool_call_content(content: str) -> None:
    """Validate a tool_call message once: a dialogue's later instances repeat its earlier calls."""
    _check(_validators()['tool_call_content'], json.loads(content), 'content')


def validate_row(row: dict) -> None:
    """Raise ValueError naming the row and field when `row` does not follow the row contract."""
    name = f'row ({row.get("source")}, {row.get("dialogue_id")}, step {row.get("step")})'
    v = _validators()
    _check(v['row'], row, name)
    try:
        names = _tool_names(row['tools'])
        calls = json.loads(row['ground_truth'])
    except json.JSONDecodeError as exc:
        raise ValueError(f'{name}: tools / ground_truth is not JSON: {exc}') from None
    except ValueError as exc:
        raise ValueError(f'{name} {exc}') from None
    _check(v['calls'], calls, f'{name} ground_truth')
    for c in calls:
        if c['name'] not in names:
            raise ValueError(f'{name} ground_truth: {c["name"]!r} not in tools')
    for i, m in enumerate(row['messages']):
        if m['role'] == 'tool_call':
            try:
                _check_tool_call_content(m['content'])
            except (ValueError, json.JSONDecodeError) as exc:
                raise ValueError(f'{name} messages/{i}/{exc}') from None
    if row['messages'][-1]['role'] not in ('user', 'tool_response'):
        raise ValueError(f'{name} messages: prompt ends with {row["messages"][-1]["role"]!r}, '
                         'not a user or tool_response turn')
