"""The one error type of the client."""

from __future__ import annotations


class DHError(Exception):
    """Raised for every failure the client reports: what was asked, with which arguments, and why
    (the server's own message whenever it sent one)."""

    def __init__(self, message: object = "") -> None:
        super().__init__(message)
        self.message = str(message)

    def __str__(self) -> str:
        return self.message
