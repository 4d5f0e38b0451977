"""The one error type of the client."""

from __future__ import annotations

from typing import Optional


class DHError(Exception):
    """Raised for every failure the client reports: what was asked, with which arguments, and why
    (the server's own message whenever it sent one).

    ``code`` is the gRPC status name of a failed call (``"NOT_FOUND"``, ``"UNAUTHENTICATED"`` ...),
    None for failures that are not a call's status: code that decides by the kind of failure reads
    it instead of the message text."""

    def __init__(self, message: object = "", code: Optional[str] = None) -> None:
        super().__init__(message)
        self.message = str(message)
        self.code = code

    def __str__(self) -> str:
        return self.message


class ArgumentError(DHError, ValueError):
    """A DHError for a wrong argument where the official client raises ValueError, so that code
    catching either one keeps working."""


def cause_of(err: object, *ops: str) -> str:
    """The text of ``err`` without the leading "<op> failed: " of the first of ``ops`` it starts
    with: its cause, to put after another prefix."""
    text = str(err)
    for op in ops:
        stripped = _drop_prefix(text, op)
        if stripped is not text:
            return stripped
    return text


def _drop_prefix(text: str, op: str) -> str:
    """``text`` without a leading ``op failed: `` or ``op(...) failed: `` (and ``op(...) failed
    while ...: ``, kept as ``while ...: ``)."""
    if not text.startswith(op):
        return text
    rest = text[len(op):]
    if rest.startswith("("):
        end = rest.find(") failed")
        if end < 0:
            return text
        rest = rest[end + 1:]
    for lead in (" failed: ", " failed "):
        if rest.startswith(lead):
            return rest[len(lead):]
    return text


def rewrap(where: str, err: DHError, *inner_ops: str) -> DHError:
    """``err`` as the failure of ``where`` (e.g. ``"import_file('x.csv')"``), naming it once: an
    ``err`` that already names the same operation is given back as it is, and a leading
    "<inner op> failed: " of one of ``inner_ops`` (the calls ``where`` made) is dropped."""
    text = str(err)
    op = where.split("(", 1)[0]
    if text.startswith(op + "(") or text.startswith(op + " ") or text.startswith(op + ":"):
        return err
    return DHError(f"{where} failed: {cause_of(text, *inner_ops)}", code=err.code)
