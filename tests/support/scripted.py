"""A scripted driver for the flows of ``pydeephaven._core``, with no server and no transport.

A test writes down, in order, the calls a flow must ask for (``unary``, ``stream``, ``blocking``):
what each description must hold (its stub and method, its request's fields, the session it goes
``via``) and the server's canned answer (a real protobuf message) or the error the call fails with.
``Script.perform`` is the ``perform`` function of ``calls.drive``: it takes the next step, checks the
description against it and answers as scripted. A call nobody scripted, or one that does not match
its step, is a ``ScriptError``, raised into the flow and also kept, so that a flow that swallows it
still fails the test at ``Script.done()``, which also insists that every step was used.

``Do`` descriptions (methods of the driving API's objects: ``table._resolve``, ``session._console``,
``session._run_op``) are not server calls: ``perform`` runs them at once, as ``Session`` does, and
logs them. ``ScriptedSession._run_op`` drives ``_op_flow`` with the same script, so the op's own
call is a scripted step too.

``Capture`` ties the fields of several steps together: the first step that meets an unset
capture stores the request's value in it; every later one checks its value is the same (e.g.
the ticket one call exports into is the ticket the next call reads).
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from pydeephaven._core.calls import Blocking, Do, Stream, Unary, drive
from pydeephaven._core.session_base import SessionBase
from pydeephaven.query import Query
from pydeephaven.table import InputTable, Table
from pydeephaven.ticket import ExportTicket, Ticket, _ticket_from_bytes

__all__ = ["Capture", "Script", "ScriptError", "ScriptedSession", "ScriptedTable", "Step", "blocking", "stream",
           "unary"]


class ScriptError(AssertionError):
    """A flow asked for a call the script did not expect (or not in that form)."""


class Capture:
    """A value of a request, stored by the first step that meets it and compared by the later ones."""

    _UNSET = object()

    def __init__(self, name: str = "capture") -> None:
        self.name = name
        self._value: Any = Capture._UNSET

    @property
    def is_set(self) -> bool:
        return self._value is not Capture._UNSET

    @property
    def value(self) -> Any:
        if not self.is_set:
            raise AssertionError(f"{self.name}: no step has stored a value yet")
        return self._value

    @property
    def ticket(self) -> Ticket:
        """The captured protobuf Ticket as a pydeephaven Ticket (ExportTicket, SharedTicket ...)."""
        return _ticket_from_bytes(bytes(self.value.ticket))

    def meet(self, actual: Any) -> Optional[str]:
        """Store ``actual`` (first time) or compare it; a description of the mismatch, if any."""
        if not self.is_set:
            if hasattr(actual, "CopyFrom"):  # a protobuf field: keep a copy, not a view of the request
                copy = type(actual)()
                copy.CopyFrom(actual)
                actual = copy
            self._value = actual
            return None
        return None if actual == self._value else f"{self.name} was {self._value!r}, now {actual!r}"


_SELF = "the driving session"


@dataclass
class Step:
    """One expected call and its answer. Unset expectations are not checked, except ``via``, which
    is None (the driving session) unless the step names another session."""

    kind: type  # Unary, Stream or Blocking
    stub: Optional[str] = None
    method: Optional[str] = None
    fn: Any = None  # Blocking: the function
    args: Optional[tuple[Any, ...]] = None  # Blocking: its positional arguments
    op: Optional[str] = None
    via: Any = None
    fields: dict[str, Any] = field(default_factory=dict)  # request field -> value, Ticket or Capture
    request: Any = None  # the whole request, compared with ==
    partial: Optional[bool] = None  # Stream
    read: Optional[int] = None  # Stream: the messages the flow reads before its ``until`` stops it
    check: Optional[Callable[[Any], None]] = None  # more checks of the description
    reply: Any = None  # the answer (Stream: every message the server would send)
    respond: Optional[Callable[[Any], Any]] = None  # makes the reply from the description (after the checks)
    raises: Optional[BaseException] = None  # the call's error instead of an answer
    broken: Optional[BaseException] = None  # Stream: the error that ends it after the messages
    run: bool = False  # Blocking: call the function for real (pure work, no I/O)

    def describe(self) -> str:
        if self.kind is Blocking:
            return f"Blocking({getattr(self.fn, '__qualname__', self.fn)})"
        return f"{self.kind.__name__}({self.stub}.{self.method})"

    def mismatches(self, call: Any) -> list[str]:
        out: list[str] = []
        if not isinstance(call, self.kind):
            return [f"expected {self.describe()}, got {describe(call)}"]
        if self.kind is Blocking:
            if self.fn is not None and call.fn is not self.fn:
                out.append(f"fn: expected {self.fn!r}, got {call.fn!r}")
            if self.args is not None and tuple(call.args) != tuple(self.args):
                out.append(f"args: expected {self.args!r}, got {call.args!r}")
        else:
            for name in ("stub", "method", "op"):
                want = getattr(self, name)
                if want is not None and getattr(call, name) != want:
                    out.append(f"{name}: expected {want!r}, got {getattr(call, name)!r}")
            if call.via is not self.via:
                out.append(f"via: expected {self.via if self.via is not None else _SELF!r}, "
                           f"got {call.via if call.via is not None else _SELF!r}")
            if self.request is not None and call.request != self.request:
                out.append(f"request: expected {self.request}, got {call.request}")
            for name, want in self.fields.items():
                actual = getattr(call.request, name)
                if isinstance(want, Capture):
                    problem = want.meet(actual)
                    if problem:
                        out.append(f"{name}: {problem}")
                    continue
                if isinstance(want, Ticket):
                    want = want.pb_ticket
                if actual != want:
                    out.append(f"{name}: expected {want!r}, got {actual!r}")
            if self.kind is Stream and self.partial is not None and call.partial != self.partial:
                out.append(f"partial: expected {self.partial}, got {call.partial}")
        return out

    def answer(self, call: Any) -> Any:
        if self.raises is not None:
            raise self.raises
        reply = self.respond(call) if self.respond is not None else self.reply
        if self.kind is Blocking:
            return call.fn(*call.args, **call.kwargs) if self.run else reply
        if self.kind is Unary:
            return reply
        read: list[Any] = []
        for message in reply or []:
            read.append(message)
            if call.until is not None and call.until(message):
                break
        if self.read is not None and len(read) != self.read:
            raise ScriptError(f"{self.describe()}: the flow read {len(read)} messages, expected {self.read}")
        if self.broken is not None:
            if call.partial:
                return read, self.broken
            raise self.broken
        return (read, None) if call.partial else read


def unary(stub: str, method: str, reply: Any = None, **expect: Any) -> Step:
    return Step(Unary, stub, method, reply=reply, **expect)


def stream(stub: str, method: str, messages: Optional[list[Any]] = None, **expect: Any) -> Step:
    return Step(Stream, stub, method, reply=list(messages or []), **expect)


def blocking(fn: Any, reply: Any = None, **expect: Any) -> Step:
    return Step(Blocking, fn=fn, reply=reply, **expect)


def describe(call: Any) -> str:
    if isinstance(call, (Unary, Stream)):
        via = "" if call.via is None else f" via {call.via!r}"
        return f"{type(call).__name__}({call.stub}.{call.method}, op={call.op!r}{via})"
    if isinstance(call, (Blocking, Do)):
        return f"{type(call).__name__}({getattr(call.fn, '__qualname__', call.fn)})"
    return repr(call)


class Script:
    """The expected calls in order; ``perform`` (or ``aperform``) answers them."""

    def __init__(self, *steps: Step) -> None:
        self.steps: deque[Step] = deque(steps)
        self.calls: list[Any] = []  # the server calls made (Unary, Stream, Blocking), in order
        self.log: list[Any] = []  # every description, Do included, in order
        self.problems: list[str] = []

    def add(self, *steps: Step) -> "Script":
        self.steps.extend(steps)
        return self

    def _fail(self, message: str) -> ScriptError:
        self.problems.append(message)
        return ScriptError(message)

    def _take(self, call: Any) -> Step:
        self.calls.append(call)
        if not self.steps:
            raise self._fail(f"unscripted call #{len(self.calls)}: {describe(call)}")
        step = self.steps.popleft()
        problems = step.mismatches(call)
        if problems:
            raise self._fail(f"call #{len(self.calls)} {describe(call)} does not match the script's "
                             f"{step.describe()}: " + "; ".join(problems))
        if step.check is not None:
            try:
                step.check(call)
            except AssertionError as e:
                raise self._fail(f"call #{len(self.calls)} {describe(call)}: {e}") from None
        return step

    def perform(self, call: Any) -> Any:
        self.log.append(call)
        if isinstance(call, Do):
            return call.fn(*call.args)
        step = self._take(call)
        try:
            return step.answer(call)
        except ScriptError as e:
            self.problems.append(str(e))
            raise

    async def aperform(self, call: Any) -> Any:
        """``perform`` for ``calls.drive_async``: every answer comes after a pass of the event loop."""
        await asyncio.sleep(0)
        if isinstance(call, Do):
            self.log.append(call)
            result = call.fn(*call.args)
            return (await result) if inspect.isawaitable(result) else result
        return self.perform(call)

    def dos(self) -> list[str]:
        """The names of the ``Do`` methods run so far, in order."""
        return [getattr(c.fn, "__name__", repr(c.fn)) for c in self.log if isinstance(c, Do)]

    def done(self) -> None:
        """Every step used, no unscripted or mismatched call."""
        assert not self.problems, "script problems:\n" + "\n".join(self.problems)
        assert not self.steps, "steps left over: " + ", ".join(s.describe() for s in self.steps)


# -- the fake session -------------------------------------------------------------------------------


class ScriptedTable(Table):
    """A Table of a scripted session. Collection releases nothing (a real Table's ``__del__``
    queues a release), so that the tests see only the releases the flows ask for."""

    def __del__(self) -> None:
        pass


class ScriptedInputTable(InputTable):
    def __del__(self) -> None:
        pass


class _Transport:
    """The one transport method a flow names (``live_exports`` flushes the queued releases)."""

    def __init__(self) -> None:
        self.flushes = 0

    def flush_releases(self, timeout: float = 10.0) -> None:
        self.flushes += 1


class _Flight:
    """Stands for the session's Flight path: the SQL flow passes it to its blocking calls."""

    def __repr__(self) -> str:
        return "<scripted flight path>"


class ScriptedSession(SessionBase):
    """A sync session with no transport: its flows' calls are answered by ``script``.

    ``released`` lists the tickets given to ``_release_later`` (the background releases), in
    order. The console is ``console`` when given (a protobuf Ticket); else the first use starts one
    with the scripted StartConsole call, as ``Session`` does."""

    _is_async = False
    _table_class = ScriptedTable
    _input_table_class = ScriptedInputTable
    _query_class = Query

    def __init__(self, script: Script, *, host: str = "server-a", port: int = 10000, session_type: str = "python",
                 console: Any = None, first_export: int = 1) -> None:
        self.script = script
        self._host, self._port = host, port
        self._auth_type = "Anonymous"
        self._session_type = session_type
        self._never_timeout = False
        self._export_numbers = itertools.count(first_export)
        self._console_id = console
        self.fetch_streams = 1
        self.parallel_fetch_bytes = 32 * 1024 * 1024
        self._pinned: set[bytes] = set()
        self._transport = _Transport()
        self._flight = _Flight()
        self.connected = True
        self.released: list[Ticket] = []

    def __repr__(self) -> str:
        return f"ScriptedSession({self._host}:{self._port})"

    @property
    def is_connected(self) -> bool:
        return self.connected

    def _run(self, flow: Any) -> Any:
        return drive(flow, self.script.perform)

    def _release_later(self, ticket: Ticket, after: Any = None) -> None:
        self.released.append(ticket)

    def _settle_call(self, call: Any) -> None:
        pass

    def _console(self) -> Any:
        if self._console_id is None:
            self._console_id = self._run(self._start_console_flow())
        return self._console_id

    def _run_op(self, op: Any, source: Any, cls: Any = None) -> Any:
        return self._run(self._op_flow(op, source, cls))

    def table(self, number: Optional[int] = None, **kwargs: Any) -> ScriptedTable:
        """A table of this session, as if an earlier op had made it (export ``number``, or the next)."""
        ticket = ExportTicket.export_ticket(number) if number is not None else self.make_export_ticket()
        kwargs.setdefault("size", 3)
        kwargs.setdefault("is_static", True)
        return ScriptedTable(self, ticket, **kwargs)
