"""Tool specs of every source -> OpenAI-style specs `{"type": "function", "function": {name, description,
parameters}}`, the form ms-swift's agent templates (`BaseAgentTemplate.wrap_tool/unwrap_tool`) render."""
from __future__ import annotations

import re
from typing import Any

from . import jsonvalue
from .errors import BAD_TOOL_SPEC, BadRow

# Python / pseudo type names used by ToolACE and xLAM -> JSON-schema type names.
_TYPE_MAP = {
    'str': 'string', 'string': 'string', 'text': 'string',
    'int': 'integer', 'integer': 'integer',
    'float': 'number', 'number': 'number', 'double': 'number',
    'bool': 'boolean', 'boolean': 'boolean',
    'list': 'array', 'array': 'array', 'tuple': 'array', 'set': 'array',
    'dict': 'object', 'object': 'object', 'map': 'object',
    'null': 'null', 'none': 'null',
}


def loads_json(text: Any, field: str) -> Any:
    """A JSON-string field of a raw row (or an already decoded value) as plain JSON data; a decoding error,
    NaN/Infinity, too deep nesting or a non-JSON value is a BadRow naming the field (`jsonvalue`)."""
    if not isinstance(text, str):
        return jsonvalue.check_value(text, field)
    return jsonvalue.loads(text, field)


def json_type(raw: Any) -> str | None:
    """'List[int]' -> 'array', 'str, optional' -> 'string', 'dict' -> 'object'; unknown names -> None."""
    if not isinstance(raw, str):
        return None
    text = raw.strip().lower()
    if text.startswith('optional[') and text.endswith(']'):  # Optional[str] -> str
        text = text[len('optional['):-1].strip()
    head = re.split(r'[\[,|( ]', text, maxsplit=1)[0]
    return _TYPE_MAP.get(head)


def is_optional_type(raw: Any) -> bool:
    """xLAM marks an optional parameter in its type string: 'str, optional', 'int, optional', 'Optional[str]'."""
    return isinstance(raw, str) and 'optional' in raw.lower()


def normalize_schema(node: Any) -> Any:
    """Recursively rewrite a ToolACE/APIGen parameter schema into JSON schema (`dict` -> `object`, ...)."""
    if isinstance(node, list):
        return [normalize_schema(x) for x in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key == 'type' and isinstance(value, str):
            mapped = json_type(value)
            if mapped is not None:
                out['type'] = mapped
        elif key == 'properties' and isinstance(value, dict):
            out['properties'] = {k: normalize_schema(v) for k, v in value.items()}
        elif key in ('items', 'additionalProperties', 'anyOf', 'oneOf', 'allOf'):
            out[key] = normalize_schema(value)
        elif key == 'required' and not isinstance(value, list):
            continue  # ToolACE writes `"required": null` at tool level
        else:
            out[key] = value
    return out


def xlam_parameters(params: Any, tool_name: str) -> dict:
    """xLAM's flat `{param: {"description", "type", "default"}}` -> a JSON-schema object.

    xLAM's own convention decides `required`: a parameter is optional iff its type says so (`"str, optional"`).
    Its `default` does not: real rows give most mandatory parameters a sample default (`chain_slug:
    {"type": "str", "default": "ethereum"}`) and many optional ones `"default": ""` (docs/data.md)."""
    if params in (None, {}, []):
        return {'type': 'object', 'properties': {}}
    if not isinstance(params, dict):
        raise BadRow(BAD_TOOL_SPEC, f'tool {tool_name!r}: parameters is {type(params).__name__}, not a dict')
    if 'properties' in params and isinstance(params.get('properties'), dict):
        return normalize_schema({'type': 'object', **params})
    props, required = {}, []
    for pname, spec in params.items():
        if not isinstance(spec, dict):
            raise BadRow(BAD_TOOL_SPEC, f'tool {tool_name!r}: parameter {pname!r} is not a dict')
        prop = {}
        jtype = json_type(spec.get('type'))
        if jtype:
            prop['type'] = jtype
        desc = spec.get('description') or ''
        if spec.get('type') and not jtype or (isinstance(spec.get('type'), str) and '[' in spec['type']):
            desc = f"{desc} (type: {spec['type']})".strip()
        if desc:
            prop['description'] = desc
        if 'default' in spec:
            prop['default'] = spec['default']
        props[pname] = prop
        if not is_optional_type(spec.get('type')):
            required.append(pname)
    out = {'type': 'object', 'properties': props}
    if required:
        out['required'] = required
    return out


def openai_tool(raw: Any, flat_params: bool = False) -> dict:
    """One raw tool dict -> `{"type": "function", "function": {...}}`. `flat_params`: xLAM parameter style."""
    if isinstance(raw, dict) and raw.get('type') == 'function' and isinstance(raw.get('function'), dict):
        raw = raw['function']
    if not isinstance(raw, dict) or not isinstance(raw.get('name'), str) or not raw['name'].strip():
        raise BadRow(BAD_TOOL_SPEC, f'tool without a name: {str(raw)[:80]}')
    name = raw['name']
    params = raw.get('parameters')
    if flat_params:
        params = xlam_parameters(params, name)
    else:
        params = normalize_schema(params) if isinstance(params, dict) else {'type': 'object', 'properties': {}}
        params.setdefault('type', 'object')
        params.setdefault('properties', {})
    return {'type': 'function',
            'function': {'name': name, 'description': str(raw.get('description') or ''), 'parameters': params}}


def openai_tools(raw_list: Any, field: str, flat_params: bool = False) -> list[dict]:
    raw_list = loads_json(raw_list, field)
    if not isinstance(raw_list, list):
        raise BadRow(BAD_TOOL_SPEC, f'{field}: expected a list of tools, got {type(raw_list).__name__}')
    return [openai_tool(t, flat_params) for t in raw_list]


def tool_names(tools: list[dict]) -> set[str]:
    return {t['function']['name'] for t in tools}
