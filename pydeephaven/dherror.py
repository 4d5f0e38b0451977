"""The client's errors: ``DHError`` and its subclasses by cause.

Every failure the client reports is a ``DHError``. Its subclass says why, decided once, from the
gRPC status of the failed call (``error_class``) or, for Arrow Flight calls, from the pyarrow
error's class (``pydeephaven._flight``); code that acts on the kind of failure checks the class or
``code``, never the message text:

=========================  ======================================================================
class                      cause (gRPC status names in ``code``)
=========================  ======================================================================
``UnreachableError``       no Deephaven server answered at the address, or the connection broke:
                           UNAVAILABLE (made by the client's gRPC library, not sent by a server);
                           while connecting, every failure but refused credentials
``AuthenticationError``    the server refused the credentials while connecting (UNAUTHENTICATED),
                           or refused the call to this user (PERMISSION_DENIED)
``SessionClosedError``     the session cannot be used any more: closed by the program, or found
                           unusable (the keep-alive could not refresh it, the server shut down)
``SessionExpiredError``    the server no longer knows the session (UNAUTHENTICATED on a call of an
                           open session: expired, or ended on the server); a SessionClosedError and
                           an AuthenticationError both
``NotFoundError``          no such object on the server (NOT_FOUND): a scope name, a table, a ticket
``InvalidArgumentError``   the request was refused as given: a formula that does not compile, an
                           unknown column (INVALID_ARGUMENT, FAILED_PRECONDITION, OUT_OF_RANGE,
                           ALREADY_EXISTS, RESOURCE_EXHAUSTED: a message over the size limit); also
                           the client's own argument checks (``ArgumentError``, code None)
``ServerError``            the server failed to carry out a valid request (INTERNAL, UNKNOWN,
                           DATA_LOSS, ABORTED, UNIMPLEMENTED, UNAVAILABLE sent by the server
                           itself); a script that raised in ``run_script`` (code None; its
                           ``output`` holds what it printed when that was captured)
``CallCancelledError``     the call was cancelled before it had its answer (CANCELLED), e.g. the
                           session was closed while it ran
``DeadlineExceededError``  no answer within the call's deadline (DEADLINE_EXCEEDED)
``ScriptTimeoutError``     a DeadlineExceededError: a ``run_script`` that ran past its ``timeout``;
                           ``cancelled`` says whether the server stopped the script
=========================  ======================================================================

A failure that is not a call's status (a file that cannot be read, a refused argument) has code
None and is a plain ``DHError`` unless a subclass names its cause.
"""

from __future__ import annotations

from typing import Optional


class DHError(Exception):
    """Raised for every failure the client reports: what was asked, with which arguments, and why
    (the server's own message whenever it sent one).

    ``code`` is the gRPC status name of a failed call (``"NOT_FOUND"``, ``"UNAUTHENTICATED"`` ...),
    None for failures that are not a call's status. The subclass names the cause (see the module's
    table); code that decides by the kind of failure reads them instead of the message text."""

    def __init__(self, message: object = "", code: Optional[str] = None) -> None:
        super().__init__(message)
        self.message = str(message)
        self.code = code

    def __str__(self) -> str:
        return self.message


class UnreachableError(DHError):
    """No Deephaven server answered at the address, or the connection to it broke."""


class AuthenticationError(DHError):
    """The server refused the credentials (or, PERMISSION_DENIED, the call to this user)."""


class SessionClosedError(DHError):
    """The session can no longer be used: closed, found unusable, or expired on the server."""


class SessionExpiredError(SessionClosedError, AuthenticationError):
    """The server no longer knows the session's token (expired, or ended on the server)."""


class NotFoundError(DHError):
    """The server has no object under the name or ticket asked for."""


class InvalidArgumentError(DHError):
    """The request was refused as given: a bad formula, an unknown column, a wrong argument."""


class ServerError(DHError):
    """The server failed to carry out the request (or a script it ran raised). ``output``: for a
    script run with ``capture_output``, the lines it printed (stdout and stderr, in order) before
    it failed; None otherwise."""

    def __init__(self, message: object = "", code: Optional[str] = None,
                 output: Optional[tuple[str, ...]] = None) -> None:
        super().__init__(message, code)
        self.output = output


class CallCancelledError(DHError):
    """The call was cancelled before it had its answer."""


class DeadlineExceededError(DHError):
    """No answer came within the call's deadline."""


class ScriptTimeoutError(DeadlineExceededError):
    """A ``run_script`` ran past its ``timeout`` (seconds). ``cancelled``: the server stopped the
    script (True), or it may still be running there (False: it was inside a blocking call, such as
    a sleep or a read, when its time ran out, and stops when that call returns; the server runs
    no other script meanwhile). ``output``: what it printed so far, when captured, else None."""

    def __init__(self, message: object = "", code: Optional[str] = None, *, timeout: float = 0.0,
                 cancelled: bool = False, output: Optional[tuple[str, ...]] = None) -> None:
        super().__init__(message, code)
        self.timeout = timeout
        self.cancelled = cancelled
        self.output = output


class ArgumentError(InvalidArgumentError, ValueError):
    """A DHError for a wrong argument where the official client raises ValueError, so that code
    catching either one keeps working; checked by the client (code None)."""


#: The class of each gRPC status name, for a call of an open session (see ``error_class``).
_BY_CODE: dict[str, type[DHError]] = {
    "UNAVAILABLE": UnreachableError,
    "UNAUTHENTICATED": SessionExpiredError,
    "PERMISSION_DENIED": AuthenticationError,
    "NOT_FOUND": NotFoundError,
    "INVALID_ARGUMENT": InvalidArgumentError,
    "FAILED_PRECONDITION": InvalidArgumentError,
    "OUT_OF_RANGE": InvalidArgumentError,
    "ALREADY_EXISTS": InvalidArgumentError,
    "RESOURCE_EXHAUSTED": InvalidArgumentError,
    "INTERNAL": ServerError,
    "UNKNOWN": ServerError,
    "DATA_LOSS": ServerError,
    "ABORTED": ServerError,
    "UNIMPLEMENTED": ServerError,
    "CANCELLED": CallCancelledError,
    "DEADLINE_EXCEEDED": DeadlineExceededError,
}


def error_class(code: Optional[str], *, connecting: bool = False, from_server: bool = False) -> type[DHError]:
    """The DHError subclass for a call that failed with the gRPC status named ``code``; the one
    mapping both transports and the Flight path use.

    ``connecting``: the call was the first one, which opens the session; then refused
    credentials are an AuthenticationError and every other failure means that no Deephaven
    server could be reached there. ``from_server``: the server itself sent the status (gRPC's
    library makes an UNAVAILABLE of its own when the connection fails); an UNAVAILABLE a server
    sends (e.g. "Export not yet defined") is a ServerError, not an unreachable server."""
    if code is None or code == "OK":
        return DHError
    if connecting:
        return AuthenticationError if code in ("UNAUTHENTICATED", "PERMISSION_DENIED") else UnreachableError
    if code == "UNAVAILABLE" and from_server:
        return ServerError
    return _BY_CODE.get(code, DHError)


def reworded(err: DHError, message: str) -> DHError:
    """A new error of ``err``'s class, with its code and attributes (e.g. ``CsvRetype.column``),
    saying ``message``: for helpers that put an error's cause in other words."""
    cls = type(err)
    new = cls.__new__(cls, message)
    new.__dict__.update(err.__dict__)
    Exception.__init__(new, message)
    new.message = message
    return new


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
    "<inner op> failed: " of one of ``inner_ops`` (the calls ``where`` made) is dropped. The
    error keeps its class, code and attributes."""
    text = str(err)
    op = where.split("(", 1)[0]
    if text.startswith(op + "(") or text.startswith(op + " ") or text.startswith(op + ":"):
        return err
    return reworded(err, f"{where} failed: {cause_of(text, *inner_ops)}")


class SessionLostError(SessionClosedError):
    """A session that reconnects (``reconnect=True``) could not reconnect within its policy's
    deadline: it is over, and says why."""


class TableLostError(DHError):
    """A table could not be made again after its session reconnected (e.g. it was imported and
    the client kept no copy of the data); the message says why."""


class OutcomeUnknownError(DHError):
    """A call that changes the server (an import, a script, an input-table add, a bind) was cut
    off by a lost connection: it may or may not have happened, and it was not repeated."""
