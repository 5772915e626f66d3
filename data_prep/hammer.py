"""Hammer "function masking" (Hammer recipe, arXiv 2410.04587) reproduced as a seeded transform of xLAM rows.

With probability `MASK_PROB` per dialogue, every function name and every top-level parameter name is
replaced by a random string, consistently in the tool list, in the target calls and in earlier calls of
the context; parameter defaults are perturbed to another value of the parameter's declared type, and a
description that quotes the default names the new one (Hammer's own script rewrites them too). Otherwise
descriptions are kept: the model must read them instead of relying on names. The random draws depend only on (seed, dialogue id),
so a row is masked the same way whatever the sampling order.
"""
from __future__ import annotations

import copy
import json
import math
import random
import re
import string
from typing import Any

from . import xlam
from .dialogue import Dialogue

MASK_PROB = 2 / 3
_ALNUM = string.ascii_letters + string.digits


def random_name(rng: random.Random, taken: set[str]) -> str:
    while True:
        name = rng.choice(string.ascii_letters) + ''.join(rng.choices(_ALNUM, k=rng.randint(5, 9)))
        if name not in taken:
            taken.add(name)
            return name


def perturb_default(value: Any, rng: random.Random, declared: Any = None) -> Any:
    """Another value of the parameter's *declared* JSON-schema type (`declared`): integer / number moved
    (a numeric string such as xLAM's `{"type": "int", "default": "11.50293"}` counts as its number),
    boolean flipped, string replaced by random letters. An empty default (xLAM's "no default"), a value
    that does not fit the declared type and array / object / null types are left as they are. Without a
    declared type the value's own Python type decides (bool flipped, number moved, string replaced)."""
    if value == '' or value is None:
        return value
    if declared is None:
        declared = ('boolean' if isinstance(value, bool) else 'integer' if isinstance(value, int)
                    else 'number' if isinstance(value, float) else 'string' if isinstance(value, str) else None)
    if declared == 'boolean':
        flag = _as_bool(value)
        return value if flag is None else not flag
    if declared in ('integer', 'number'):
        num = _as_number(value)
        if num is None:
            return value
        if declared == 'integer':
            return int(round(num)) + rng.randint(1, 9) * rng.choice((-1, 1))
        return round(num * rng.uniform(0.5, 1.5) + rng.uniform(-1, 1), 3)
    if declared == 'string':
        return ''.join(rng.choices(string.ascii_lowercase, k=max(3, len(str(value)))))
    return value


def _as_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ('true', 'false'):
        return value.strip().lower() == 'true'
    return None


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            num = float(value.strip())
        except ValueError:
            return None
        return num if math.isfinite(num) else None
    return None


def rewrite_default_mention(description: str, old: Any, new: Any) -> str:
    """A description that quotes the old default ("Defaults to '0'.", "(default is 'en')", "Default value
    is 299792458 m/s.", "'km' (default)") names the new one instead, as Hammer's own script does; other
    occurrences of the same text stay (a "0" in "0-255" is not the default)."""
    if old == '' or old is None or not isinstance(description, str) or old == new:
        return description
    olds = {_text(old)} | ({str(old).lower()} if isinstance(old, bool) else set())
    for text in olds:
        q = r'[\'"`]?'
        before = re.compile(r'(?i)(\bdefault(?:s)?(?: value)?(?: is| to| of| =|:|=)?\s*\(?' + q + r')'
                            + re.escape(text) + r'(?![\w.-]*\w)')
        after = re.compile(r'(?i)(?<![\w.])' + re.escape(text) + r'(' + q + r'\s*\(default\))')
        description = before.sub(lambda m: m.group(1) + _text(new), description)
        description = after.sub(lambda m: _text(new) + m.group(1), description)
    return description


def _text(value: Any) -> str:
    return str(value)


def masking_maps(tools: list[dict], rng: random.Random) -> tuple[dict, dict]:
    """-> ({old function name: new}, {old function name: {old param: new}})."""
    taken: set[str] = set()
    fmap, pmap = {}, {}
    for tool in tools:
        fn = tool['function']
        fmap[fn['name']] = random_name(rng, taken)
        params: set[str] = set()
        pmap[fn['name']] = {p: random_name(rng, params) for p in fn['parameters'].get('properties', {})}
    return fmap, pmap


def mask_tool(tool: dict, fmap: dict, pmap: dict, rng: random.Random) -> dict:
    fn = copy.deepcopy(tool['function'])
    renames = pmap[fn['name']]
    params = fn['parameters']
    props = {}
    for old, spec in params.get('properties', {}).items():
        if isinstance(spec, dict) and 'default' in spec:
            before = spec['default']
            spec['default'] = perturb_default(before, rng, spec.get('type'))
            if 'description' in spec:
                spec['description'] = rewrite_default_mention(spec['description'], before, spec['default'])
        props[renames[old]] = spec
    params['properties'] = props
    if isinstance(params.get('required'), list):
        params['required'] = [renames.get(r, r) for r in params['required']]
    fn['name'] = fmap[fn['name']]
    return {'type': 'function', 'function': fn}


def mask_call(call: dict, fmap: dict, pmap: dict) -> dict:
    renames = pmap.get(call['name'], {})
    return {'name': fmap.get(call['name'], call['name']),
            'arguments': {renames.get(k, k): v for k, v in call['arguments'].items()}}


def mask_dialogue(d: Dialogue, rng: random.Random) -> Dialogue:
    """Hammer masking of one dialogue: tools, target calls and context calls renamed with the same maps."""
    fmap, pmap = masking_maps(d.tools, rng)
    tools = [mask_tool(t, fmap, pmap, rng) for t in d.tools]
    turns = [(k, [mask_call(c, fmap, pmap) for c in v]) if k == 'calls' else (k, v) for k, v in d.turns]
    return Dialogue(d.source, d.dialogue_id, tools, turns, d.system, {**d.meta, 'masked': True, 'name_map': fmap})


def convert(raw: dict, index: int, seed: int = 0) -> Dialogue:
    d = xlam.convert(raw, index, source='hammer')
    rng = random.Random(json.dumps(['hammer', seed, d.dialogue_id]))
    if rng.random() < MASK_PROB:
        return mask_dialogue(d, rng)
    return d
