"""What the judge runs on: the one redaction of secrets, and the judge's own event loop in a background thread.

Secrets: the API key is read from the environment variable named by ``judge.api_key_env`` when the client is
built; it lives only inside that client (never in the config, never on the judge objects). Every text that
leaves the judge goes through one redaction: :func:`redact` (exception texts, audit output) and the
:class:`RedactFilter` on the loggers that can carry it (``awpo*``, ``openai``, ``httpx``, ``swift``). The
cache file holds content hashes and scores only.

The loop: ms-swift runs async rewards under a fresh ``asyncio.run`` every step. :class:`JudgeLoop` is one loop
per process in a daemon thread, so the HTTP judge's client and its connections live for the whole run, and a
batch can be left in flight (``BaseJudge.submit``) while the trainer does the log-prob pass (issue 12).
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import threading
from typing import Any, Optional

# ----------------------------------------------------------------------------------------- redaction
# Names of the environment variables that hold judge secrets; their values are cut from every text we emit.
_SECRET_ENVS = {'AWPO_JUDGE_API_KEY'}
_REDACTED_LOGGERS = ('awpo', 'awpo.judge', 'openai', 'openai._base_client', 'httpx', 'httpcore', 'swift')


def redact(text: Any) -> str:
    """``text`` with the value of every secret variable replaced by ``***`` (the one redaction function)."""
    text = text if isinstance(text, str) else str(text)
    for name in _SECRET_ENVS:
        secret = os.environ.get(name)
        if secret and len(secret) >= 4 and secret in text:
            text = text.replace(secret, '***')
    return text


class RedactFilter(logging.Filter):
    """Logging filter: the formatted message and any traceback of a record pass through :func:`redact`."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            msg = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string must not hide the record
            msg = str(record.msg)
        record.msg, record.args = redact(msg), None
        if record.exc_info:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


_FILTER = RedactFilter()


def install_redaction(secret_env: Optional[str] = None) -> None:
    """Register ``secret_env`` as a secret and put the filter on every logger that can carry it (idempotent).
    Logger filters do not apply to child loggers, so each is named."""
    if secret_env:
        _SECRET_ENVS.add(secret_env)
    for name in _REDACTED_LOGGERS:
        lg = logging.getLogger(name)
        if _FILTER not in lg.filters:
            lg.addFilter(_FILTER)


# ----------------------------------------------------------------------------------------- event loop
class JudgeLoop:
    """One asyncio loop in a daemon thread per process: the judge's client and connections outlive ms-swift's
    per-step ``asyncio.run``, and a batch can run while the caller's thread does other work."""
    _instance: Optional['JudgeLoop'] = None
    _lock = threading.Lock()

    def __init__(self):
        self.pid = os.getpid()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name='awpo-judge-loop', daemon=True)
        self.thread.start()

    @classmethod
    def get(cls) -> 'JudgeLoop':
        with cls._lock:
            if cls._instance is None or cls._instance.pid != os.getpid() or not cls._instance.thread.is_alive():
                cls._instance = JudgeLoop()  # also after a fork: the parent's thread does not exist here
            return cls._instance

    def submit(self, coro) -> concurrent.futures.Future:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(self, coro, timeout: Optional[float] = None):
        return self.submit(coro).result(timeout)


__all__ = ['redact', 'RedactFilter', 'install_redaction', 'JudgeLoop']
