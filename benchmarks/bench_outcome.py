"""Throughput of the outcome reward R_out (Eqs. 14-19) in completions per second, on one CPU core.

    python -m benchmarks.bench_outcome --n 20000            # pure function plugin.outcome_reward.outcome_scores
    python -m benchmarks.bench_outcome --n 20000 --orm      # also through the ms-swift ORM (AWPOOutcome)

The completions are synthetic but shaped like real rollouts (seeded): a Qwen3 ``<think>`` block of
40-300 words, then 1-3 hermes tool calls with nested / list arguments (70%) or a text answer (15%), and
15% broken ones (malformed JSON, unclosed tags, text between blocks, truncation). Ground truths are the
intended calls with some values perturbed. Nothing is written unless ``--json PATH`` is given.
"""
from __future__ import annotations

import argparse
import json
import random
import time

from plugin.outcome_reward import outcome_scores
from plugin.toolcall_format import render_tool_calls

WORDS = ('the user wants to find check call tool with parameter value city date because first then need '
         'weather flight hotel price search query result should I use argument return list filter').split()
TOOLS = ['get_weather', 'search_flights', 'book_hotel', 'convert_currency', 'query_db', 'send_email']


def _value(rng: random.Random):
    kind = rng.random()
    if kind < 0.4:
        return ' '.join(rng.choices(WORDS, k=rng.randint(1, 4)))
    if kind < 0.6:
        return rng.randint(0, 1000)
    if kind < 0.7:
        return rng.random() * 100
    if kind < 0.8:
        return rng.random() < 0.5
    if kind < 0.9:
        return [rng.choice(WORDS) for _ in range(rng.randint(1, 4))]
    return {'min': rng.randint(0, 10), 'tags': rng.choices(WORDS, k=2)}


def _call(rng: random.Random) -> dict:
    keys = rng.sample(['city', 'date', 'query', 'limit', 'filters', 'currency', 'to', 'amount'], rng.randint(0, 5))
    return {'name': rng.choice(TOOLS), 'arguments': {k: _value(rng) for k in keys}}


def make_case(rng: random.Random) -> tuple:
    """One (completion, ground_truth JSON) pair."""
    think = f"<think>\n{' '.join(rng.choices(WORDS, k=rng.randint(40, 300)))}\n</think>\n\n"
    gold = [] if rng.random() < 0.15 else [_call(rng) for _ in range(rng.randint(1, 3))]
    pred = [dict(c, arguments=dict(c['arguments'])) for c in gold]
    for c in pred:  # the policy gets some values wrong
        for k in list(c['arguments']):
            if rng.random() < 0.3:
                c['arguments'][k] = _value(rng)
    if rng.random() < 0.1:
        pred.append(_call(rng))
    body = render_tool_calls(pred) if pred else 'Here is the answer: ' + ' '.join(rng.choices(WORDS, k=30))
    r = rng.random()
    if r < 0.04:
        body = body.replace('}}', '}', 1)  # malformed JSON
    elif r < 0.08:
        think = think.replace('</think>', '')  # unclosed think
    elif r < 0.12:
        body = body[: len(body) * 2 // 3]  # truncated at max_completion_length
    elif r < 0.15:
        body = body.replace('</tool_call>\n', '</tool_call>\nnow the next one\n', 1)
    return think + body, json.dumps(gold)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--n', type=int, default=20000)
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--orm', action='store_true', help='also time AWPOOutcome (imports ms-swift)')
    ap.add_argument('--batch', type=int, default=64, help='ORM batch size (completions per reward call)')
    ap.add_argument('--json', help='append the result as one JSON line to this file')
    a = ap.parse_args()

    rng = random.Random(a.seed)
    cases = [make_case(rng) for _ in range(a.n)]
    chars = sum(len(c) for c, _ in cases) / a.n

    t0 = time.perf_counter()
    scores = [outcome_scores(c, g) for c, g in cases]
    dt = time.perf_counter() - t0
    res = {'n': a.n, 'mean_chars': round(chars), 'pure_per_s': round(a.n / dt),
           'mean_R_out': round(sum(f + e for f, e in scores) / a.n, 4),
           'format_ok_share': round(sum(f for f, _ in scores) / a.n, 4)}

    if a.orm:
        from plugin.orm_outcome import AWPOOutcome
        orm = AWPOOutcome()
        t0 = time.perf_counter()
        for i in range(0, a.n, a.batch):
            chunk = cases[i:i + a.batch]
            orm([c for c, _ in chunk], ground_truth=[g for _, g in chunk])
        res['orm_per_s'] = round(a.n / (time.perf_counter() - t0))

    print(f"outcome reward: {res['n']} completions (mean {res['mean_chars']} chars), "
          f"{res['pure_per_s']} completions/s (pure)" + (f", {res['orm_per_s']}/s via AWPOOutcome" if a.orm else '')
          + f"; mean R_out {res['mean_R_out']}, format-ok share {res['format_ok_share']}")
    if a.json:
        with open(a.json, 'a') as f:
            f.write(json.dumps(res) + '\n')
        print(f'appended the result to {a.json}')


if __name__ == '__main__':
    main()
