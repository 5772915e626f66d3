"""The one error type every converter raises on an unusable raw row; it carries the skip reason."""
from __future__ import annotations

# Skip reasons counted in the `build` / `convert` summary (one label per kind of defect).
BROKEN_JSON = 'broken JSON'
CALL_SYNTAX = 'unbalanced call syntax'
UNKNOWN_TOOL = 'tool name absent from tool list'
BAD_TOOL_SPEC = 'bad tool spec'
BAD_DIALOGUE = 'malformed dialogue'
SCHEMA = 'schema violation'
NOT_JSON = 'value not representable in JSON'
UNEXPECTED = 'unexpected structure'
DUPLICATE_CONTENT = 'duplicate dialogue content'
UNREADABLE_CALL = 'call holds </tool_call> text'


class BadRow(ValueError):
    """A raw row that cannot be converted. `reason` is one of the labels above; the message names the field."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f'{reason}: {detail}')
        self.reason = reason
        self.detail = detail
