"""What paid rationale requests cost, and the limits that keep them in bounds (pure, clock injectable).

* `PRICES`: USD per 1M tokens (input, output) of the teacher models the paper names, from the vendors'
  public price lists (OpenAI API pricing page: gpt-4o $2.50 / $10.00, gpt-4o-mini $0.15 / $0.60; Z.ai:
  GLM-4.6 $0.60 / $2.20). Prices change: `--price-in/--price-out` override them, and a model not in the
  table has no price until they are given. The OpenAI Batch API bills half (`BATCH_DISCOUNT`).
* `estimate_tokens`: the ~4 characters per token rule OpenAI states for English text; used only to reserve
  room before a request (rate limit, cost ceiling); the bill uses the `usage` the server returns.
* `TokenRate`: a token bucket for a tokens-per-minute limit, charged prompt + max_tokens per request as the
  OpenAI rate limiter counts them.
* `Budget`: a cost ceiling. A request is sent only when what was spent plus the worst case of everything
  in flight (its prompt estimate + max_tokens at the output price) stays under the ceiling, so the bill
  never passes it by more than the estimate's error.
"""
from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field

PRICES = {  # model -> (USD per 1M input tokens, USD per 1M output tokens)
    'gpt-4o': (2.50, 10.00),
    'gpt-4o-2024-08-06': (2.50, 10.00),
    'gpt-4o-2024-11-20': (2.50, 10.00),
    'gpt-4o-mini': (0.15, 0.60),
    'glm-4.6': (0.60, 2.20),
}
BATCH_DISCOUNT = 0.5
CHARS_PER_TOKEN = 4


@dataclass(frozen=True)
class Price:
    usd_in: float    # per 1M input tokens
    usd_out: float   # per 1M output tokens

    def cost(self, tokens_in: int, tokens_out: int) -> float:
        return (tokens_in * self.usd_in + tokens_out * self.usd_out) / 1e6


def price_for(model: str, usd_in: float | None = None, usd_out: float | None = None,
              batch: bool = False) -> Price | None:
    """The model's price (the user's override first), halved for the Batch API; None if unknown."""
    if (usd_in is None) != (usd_out is None):
        raise ValueError('give both --price-in and --price-out (USD per 1M tokens), or neither')
    if usd_in is not None:
        if usd_in < 0 or usd_out < 0:
            raise ValueError('--price-in / --price-out must be >= 0')
        base = Price(usd_in, usd_out)
    elif model.lower() in PRICES:
        base = Price(*PRICES[model.lower()])
    else:
        return None
    return Price(base.usd_in * BATCH_DISCOUNT, base.usd_out * BATCH_DISCOUNT) if batch else base


def estimate_tokens(messages: list[dict]) -> int:
    """Prompt tokens of a chat request, estimated (~4 characters per token, + 4 per message of framing)."""
    return sum(len(m.get('content') or '') // CHARS_PER_TOKEN + 4 for m in messages) + 3


@dataclass
class Usage:
    """Tokens the server reported and what they cost (None when the model has no price)."""
    requests: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    price: Price | None = None

    def add(self, tokens_in: int, tokens_out: int) -> None:
        self.requests += 1
        self.tokens_in += int(tokens_in or 0)
        self.tokens_out += int(tokens_out or 0)

    @property
    def cost(self) -> float | None:
        return None if self.price is None else self.price.cost(self.tokens_in, self.tokens_out)

    def text(self) -> str:
        money = ('no price for this model: pass --price-in/--price-out to see $' if self.price is None else
                 f'${self.cost:.4f} at ${self.price.usd_in:g} / ${self.price.usd_out:g} per 1M tokens in / out')
        return (f'usage: {self.requests} answered requests, {self.tokens_in} tokens in, {self.tokens_out} tokens '
                f'out; {money}')

    def as_dict(self) -> dict:
        return {'requests': self.requests, 'tokens_in': self.tokens_in, 'tokens_out': self.tokens_out,
                'usd': self.cost, 'price_per_1m': None if self.price is None else [self.price.usd_in, self.price.usd_out]}


def add_to_ledger(path: str, run: Usage, **meta) -> dict:
    """`OUT.usage.json`: the usage of every run on this output, summed (written atomically)."""
    from .manifest import atomic_writer
    try:
        with open(path, encoding='utf-8') as f:
            ledger = json.load(f)
    except (OSError, ValueError):
        ledger = {'runs': []}
    ledger['runs'].append({**run.as_dict(), **meta, 'finished_utc': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())})
    ledger['total'] = {k: sum((r.get(k) or 0) for r in ledger['runs']) for k in ('requests', 'tokens_in', 'tokens_out', 'usd')}
    with atomic_writer(path) as f:
        f.write(json.dumps(ledger, indent=1) + '\n')
    return ledger


class TokenRate:
    """Token bucket: at most `per_minute` tokens per minute, bursts up to one minute's worth.
    `delay(n)` (pure given the clock) is how long to wait before `n` tokens may go; `take(n)` waits it."""

    def __init__(self, per_minute: float, clock=time.monotonic):
        if per_minute <= 0:
            raise ValueError('--tpm must be > 0')
        self.rate = per_minute / 60.0
        self.capacity = float(per_minute)
        self.clock = clock
        self.level = self.capacity
        self.t = clock()
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        now = self.clock()
        self.level = min(self.capacity, self.level + (now - self.t) * self.rate)
        self.t = now

    def reserve(self, n: int) -> float:
        """Take `n` tokens now (the level may go negative); the seconds to wait before sending."""
        self._refill()
        n = min(n, self.capacity)     # a request bigger than a minute's budget waits a full minute, not forever
        self.level -= n
        return max(0.0, -self.level / self.rate)

    async def take(self, n: int) -> None:
        async with self._lock:        # FIFO: one reservation at a time
            wait = self.reserve(n)
        if wait > 0:
            await asyncio.sleep(wait)


@dataclass
class Budget:
    """Cost ceiling in USD over one run: spent (from the server's usage) + reserved worst cases <= ceiling."""
    ceiling: float
    price: Price
    spent: float = 0.0
    reserved: float = 0.0
    refused: int = field(default=0)

    def worst_case(self, est_in: int, max_out: int) -> float:
        return self.price.cost(est_in, max_out)

    def try_reserve(self, est_in: int, max_out: int) -> float | None:
        """Reserve a request's worst case; None (and nothing reserved) when it would pass the ceiling."""
        w = self.worst_case(est_in, max_out)
        if self.spent + self.reserved + w > self.ceiling + 1e-12:
            self.refused += 1
            return None
        self.reserved += w
        return w

    def settle(self, reservation: float, tokens_in: int, tokens_out: int) -> None:
        self.reserved -= reservation
        self.spent += self.price.cost(tokens_in, tokens_out)
