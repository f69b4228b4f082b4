"""The one error type a bad spec raises: it always names the path of the offending field."""

from __future__ import annotations


class SpecError(ValueError):
    """A spec field is missing, unknown or impossible.

    ``str(err)`` is one line: ``space.lr: loguniform needs low < high, got [0.1, 0.01]``.
    """

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}" if path else message)
