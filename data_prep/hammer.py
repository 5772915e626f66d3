"""Hammer "function masking" (Hammer recipe, arXiv 2410.04587) reproduced as a seeded transform of xLAM rows.

With probability `MASK_PROB` per dialogue, every function name and every top-level parameter name is
replaced by a random string, consistently in the tool list, in the target calls and in earlier calls of
the context; parameter defaults are perturbed to another value of the same type. Descriptions are kept:
the model must read them instead of relying on names. The random draws depend only on (seed, dialogue id),
so a row is masked the same way whatever the sampling order.
"""
from __future__ import annotations

import copy
import json
import random
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


def perturb_default(value: Any, rng: random.Random) -> Any:
    """Another value of the same type (bool flipped, number moved, string replaced); others unchanged."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + rng.randint(1, 9) * rng.choice((-1, 1))
    if isinstance(value, float):
        return round(value * rng.uniform(0.5, 1.5) + rng.uniform(-1, 1), 3)
    if isinstance(value, str) and value:
        return ''.join(rng.choices(string.ascii_lowercase, k=max(3, len(value))))
    return value


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
            spec['default'] = perturb_default(spec['default'], rng)
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
