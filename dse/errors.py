"""The one exception type for user mistakes (bad config, measurement file, card, checkpoint)."""

from __future__ import annotations


class DseError(Exception):
    """A user-facing error: one line naming the file, the key or row, and the fix.

    The CLI prints ``dse: <message>`` and exits with status 2; no traceback is shown.
    """

    def __init__(self, message: str, *, source: str | None = None) -> None:
        self.source = source
        super().__init__(f"{source}: {message}" if source else message)
