"""Call descriptions, the values a flow yields, and the two loops that drive a flow.

A flow is a generator: it yields one description at a time and receives the call's result (or its
error, thrown in at the ``yield``); its return value is the operation's result. The loops know
nothing of gRPC: they hand each description to a ``perform`` function of the session driving them.

    Unary     one unary gRPC call                    -> the response
    Stream    a server stream, read to its end or     -> the messages (a list)
              until ``until(message)`` holds
    Blocking  blocking work (Arrow Flight, files,     -> its return value (run in a worker thread
              conversions)                               by the asyncio API)
    Do        a method of the driving API's objects   -> its result, awaited by the asyncio API
              (``table._resolve``, ``session.import_table`` ...)
    Follow    a server stream kept open: each message -> None once the server ended it, or the
              handed to ``each`` as it arrives (none     DHError that ended it (a cancel too)
              kept); ``opened`` gets a function that
              cancels the call from any thread
    Watch     a server stream read in the background  -> a handle (``cancel()`` ends the call); each
              (a thread, or a task of the event loop)    message goes to ``on_message``, then the end
                                                         (None or the DHError) to ``on_end``

For work that runs beside the flow (an upload) and its cleanup:

    Spawn     start blocking work                     -> a handle (the blocking API runs the work
                                                         in place, at its Result)
    Result    the result of a handle                  -> its result (the asyncio API's caller may be
                                                         cancelled while the work goes on)
    Settle    wait at most ``timeout`` for a handle   -> (finished, caller cancelled meanwhile)
    Quietly   a Unary that must run to its end        -> (its result or its DHError, caller
                                                         cancelled meanwhile)
    Cancelled the caller's cancellation, passed on     (raises; only the asyncio API has one)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Generator, Optional, TypeVar

#: Seconds any unary call may take when the caller sets no deadline (none: queries may run long).
DEFAULT_TIMEOUT: Optional[float] = None

R = TypeVar("R")
#: What a flow is: yields call descriptions, is sent their results, returns the operation's result.
Flow = Generator[Any, Any, R]


@dataclass(slots=True)
class Unary:
    op: str  # the operation's name in messages and in the session's stats
    stub: str  # the transport's stub attribute: "session_stub", "table_stub" ...
    method: str  # the RPC
    request: Any
    args: Optional[dict[str, Any]] = None  # shown in error messages and the query log
    timeout: Optional[float] = DEFAULT_TIMEOUT
    via: Any = None  # the session whose transport makes the call (another session's table); None: this one


@dataclass(slots=True)
class Stream:
    op: str
    stub: str
    method: str
    request: Any
    args: Optional[dict[str, Any]] = None
    timeout: Optional[float] = DEFAULT_TIMEOUT
    until: Optional[Callable[[Any], bool]] = None  # stop (cancelling the call) after the message it holds for
    partial: bool = False  # result (messages, error or None): a broken stream's messages are kept
    via: Any = None


@dataclass(slots=True)
class Follow:
    op: str
    stub: str
    method: str
    request: Any
    each: Callable[[Any], None]  # called with every message, in the thread (or loop) reading the stream
    opened: Callable[[Callable[[], None]], None]  # called once the call is made, with its canceller
    args: Optional[dict[str, Any]] = None


@dataclass(slots=True)
class Watch:
    op: str
    stub: str
    method: str
    request: Any
    on_message: Callable[[Any], None]  # called in the reading thread (sync) or the event loop (asyncio)
    on_end: Optional[Callable[[Optional[BaseException]], None]] = None  # once: None (ended or cancelled) or the DHError
    args: Optional[dict[str, Any]] = None


@dataclass(slots=True)
class Blocking:
    fn: Callable[..., Any]
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Do:
    fn: Callable[..., Any]  # a method of the driving API: its result is awaited when awaitable
    args: tuple[Any, ...] = ()


@dataclass(slots=True)
class Spawn:
    fn: Callable[..., Any]
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Result:
    handle: Any


@dataclass(slots=True)
class Settle:
    handle: Any
    timeout: float


@dataclass(slots=True)
class Quietly:
    call: Unary


@dataclass(slots=True)
class Cancelled:
    cause: BaseException


class StopFlag:
    """Set by a flow to stop work it spawned (read by the work, in another thread)."""

    def __init__(self) -> None:
        self._set = False

    def set(self) -> None:
        self._set = True

    def is_set(self) -> bool:
        return self._set


class OnSession:
    """Mixin of the objects whose flows their ``session`` drives (tables, queries, storage ...)."""

    session: Any

    def _run(self, flow: Flow[Any]) -> Any:
        return self.session._run(flow)

    async def _arun(self, flow: Flow[Any]) -> Any:
        return await self.session._arun(flow)


def blocking(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Blocking:
    return Blocking(fn, args, kwargs)


def do(fn: Callable[..., Any], *args: Any) -> Do:
    return Do(fn, args)


def drive(flow: Flow[R], perform: Callable[[Any], Any]) -> R:
    """Run ``flow`` to its end, performing each call it yields with ``perform`` (blocking)."""
    send: Any = None
    error: Optional[BaseException] = None
    while True:
        try:
            call = flow.send(send) if error is None else flow.throw(error)
        except StopIteration as done:
            return done.value
        send, error = None, None
        try:
            send = perform(call)
        except BaseException as e:  # noqa: B036 (thrown into the flow: its cleanup runs, then it re-raises)
            error = e


async def drive_async(flow: Flow[R], perform: Callable[[Any], Awaitable[Any]]) -> R:
    """Run ``flow`` to its end, awaiting ``perform`` for each call it yields."""
    send: Any = None
    error: Optional[BaseException] = None
    while True:
        try:
            call = flow.send(send) if error is None else flow.throw(error)
        except StopIteration as done:
            return done.value
        send, error = None, None
        try:
            send = await perform(call)
        except BaseException as e:  # noqa: B036
            error = e
        finally:
            del call
