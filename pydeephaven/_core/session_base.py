"""``SessionBase``: everything ``Session`` and ``AsyncSession`` share, written once and free of I/O.

It holds the session's state that is not the connection (address, export numbers, the console,
the pinned exports, the transfer settings) and one flow per operation (``_xxx_flow``, see
``pydeephaven._core``). The public classes add a transport and a driver; their methods are the
flows wrapped by ``sync_api`` or ``async_api``, which keep the flows' names, signatures and
docstrings: a docstring here is the documentation of both APIs (the async one is awaited).
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import keyword
import logging
import os
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Optional, Sequence, TypeVar, Union

import pyarrow as pa
from typing_extensions import Concatenate, ParamSpec

from pydeephaven import _arrow, _files, _ops, _sql, formats
from pydeephaven._confirm import UploadConfirmation
from pydeephaven._core.calls import (
    Cancelled,
    Flow,
    Quietly,
    Result,
    Settle,
    Spawn,
    StopFlag,
    Stream,
    Unary,
    Watch,
    blocking,
    do,
)
from pydeephaven._core import revive
from pydeephaven._core import logs as _logs
from pydeephaven._core.logs import LogEntry, LogFollow, LogSubscription
from pydeephaven._core.foreign import borrow_flow, is_foreign
from pydeephaven._core.watch import LiveSizes, call_quietly
from pydeephaven._flight import (
    UPLOAD_SETTLE_SECONDS,
    UploadStopped,
    _nothing_to_release,
    _release_note,
    _upload_error,
    fan_out,
)
from pydeephaven._live_exports import ExportTally
from pydeephaven._proto import (
    application_pb2,
    console_pb2,
    object_pb2,
    partitionedtable_pb2,
    session_pb2,
    table_pb2,
    ticket_pb2,
)
from pydeephaven._utils import check_connection_args, check_number, check_str, check_ticket, pem_bytes, server_address
from pydeephaven._utils import str_tuple
from pydeephaven.dherror import (
    ArgumentError,
    DeadlineExceededError,
    DHError,
    NotFoundError,
    ServerError,
    ScriptTimeoutError,
    cause_of,
    reworded,
    rewrap,
)
from pydeephaven.ticket import ExportTicket, ScopeTicket, ServerObject, SharedTicket, Ticket, _ticket_from_bytes

__all__ = ["SessionBase", "ScriptResult", "sync_api", "async_api", "check_variable_name", "unbind_script"]

log = logging.getLogger("pydeephaven")

P = ParamSpec("P")
R = TypeVar("R")
S = TypeVar("S")

_SYSTEMIC = {
    None: console_pb2.ExecuteCommandRequest.NOT_SET_SYSTEMIC,
    True: console_pb2.ExecuteCommandRequest.EXECUTE_SYSTEMIC,
    False: console_pb2.ExecuteCommandRequest.EXECUTE_NOT_SYSTEMIC,
}


def _public_name(fn: Callable[..., Any]) -> str:
    name = fn.__name__
    return name[1:-len("_flow")] if name.startswith("_") and name.endswith("_flow") else name


def sync_api(flow: Callable[Concatenate[S, P], Flow[R]]) -> Callable[Concatenate[S, P], R]:
    """The blocking method of a flow (``_run_script_flow`` -> ``run_script``)."""
    @functools.wraps(flow)
    def method(self: Any, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return self._run(flow(self, *args, **kwargs))
        except DHError as e:
            if not revive.retry(flow, e):  # a read cut off by a lost connection, since reconnected
                raise
        return self._run(flow(self, *args, **kwargs))

    method.__name__ = _public_name(flow)
    return method


def async_api(flow: Callable[Concatenate[S, P], Flow[R]]) -> Callable[Concatenate[S, P], Awaitable[R]]:
    """The coroutine method of a flow (``_run_script_flow`` -> ``async def run_script``)."""
    @functools.wraps(flow)
    async def method(self: Any, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await self._arun(flow(self, *args, **kwargs))
        except DHError as e:
            if not revive.retry(flow, e):
                raise
        return await self._arun(flow(self, *args, **kwargs))

    method.__name__ = _public_name(flow)
    return method


def check_variable_name(op: str, name: Any) -> str:
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
        raise DHError(f"{op}: {name!r} is not a usable variable name (a Python identifier, not a keyword)")
    return name


def unbind_script(name: str) -> str:
    """A Python statement that removes ``name`` from the server's global scope (no error if absent)."""
    return f"globals().pop({name!r}, None)"


@dataclass(frozen=True)
class ScriptResult:
    """What ``run_script`` did to the server's global scope, as the server reports it: the
    variables the script ``created``, ``updated`` (bound again) and ``removed``, each name with its
    type (``"Table"``, ``"PartitionedTable"``, ``"Figure"`` ...; the server reports only objects a
    client can fetch, not plain values such as numbers); and when the server ran it (``start``,
    ``end``: nanoseconds since the epoch).

    With ``run_script(..., capture_output=True)``: ``output``, the lines the script printed to
    stdout and stderr, in order (without their newlines), and ``output_entries``, the same as
    ``LogEntry`` records (``level`` "STDOUT" or "STDERR", ``time``); both None otherwise."""

    created: dict[str, str]
    updated: dict[str, str]
    removed: dict[str, str]
    start: int = 0
    end: int = 0
    output: Optional[tuple[str, ...]] = None
    output_entries: Optional[tuple[LogEntry, ...]] = None

    @classmethod
    def of(cls, resp: Any, entries: Optional[tuple[LogEntry, ...]] = None) -> "ScriptResult":
        def names(infos: Any) -> dict[str, str]:
            return {i.field_name: i.typed_ticket.type for i in infos}

        ch = resp.changes
        return cls(names(ch.created), names(ch.updated), names(ch.removed), int(resp.start_timestamp),
                   int(resp.end_timestamp), None if entries is None else tuple(e.message for e in entries), entries)


class SessionBase:
    """What ``Session`` and ``AsyncSession`` share. Subclasses set ``_table_class`` and
    ``_input_table_class``, ``_is_async``, and provide the transport, ``_run`` or ``_arun``,
    ``_run_op``, ``_console`` and ``_release_later``."""

    _table_class: Any
    _input_table_class: Any
    _query_class: Any
    _partitioned_class: Any
    _rollup_class: Any
    _tree_class: Any
    _storage_class: Any
    _is_async: bool
    _transport: Any
    _flight: Any
    #: reconnect state (``pydeephaven._core.revive``); None: the session does not reconnect
    _reviver: Optional[revive.Reviver] = None
    _closed_by_user = False

    def _init_base(self, where: str, host: Optional[str], port: Optional[int], auth_type: str, auth_token: str,
                   never_timeout: bool, session_type: str, tls_root_certs: Any, client_cert_chain: Any,
                   client_private_key: Any, client_opts: Any, extra_headers: Any) -> tuple[Optional[bytes], ...]:
        """Check the connection arguments and set the state; the PEM arguments as bytes."""
        self._host, self._port = server_address(where, host, port)
        check_connection_args(where, auth_type, auth_token, client_opts, extra_headers)
        pems = tuple(pem_bytes(where, name, value) for name, value in (
            ("tls_root_certs", tls_root_certs), ("client_cert_chain", client_cert_chain),
            ("client_private_key", client_private_key)))
        self._auth_type = auth_type
        self._session_type = session_type
        self._never_timeout = never_timeout
        self._export_numbers = itertools.count(1)
        self._console_id: Optional[Any] = None
        #: a lower bound of the server's clock minus ours (micros), from the last command's answer
        self._clock_offset_us: Optional[int] = None
        #: the server refused CancelCommand (UNIMPLEMENTED): not asked again
        self._no_cancel_command = False
        #: Parallel Flight streams for ``to_arrow`` of a large static table (1: never).
        self.fetch_streams = 2
        #: The estimated size above which ``to_arrow`` uses parallel streams.
        self.parallel_fetch_bytes = 32 * 1024 * 1024
        #: Parallel Flight streams for ``import_table`` of a large in-memory table (1: never).
        self.put_streams = 4
        #: The size above which ``import_table`` uses parallel streams.
        self.parallel_put_bytes = 64 * 1024 * 1024
        #: exports kept for the session's life (the copies published tables are shared from)
        self._pinned: set[bytes] = set()
        #: Keep the ``size`` of refreshing tables current (one server stream, started when such a
        #: table's size is first read); False: a size is the row count when the server answered.
        self.live_sizes = True
        self._live_sizes = LiveSizes()
        return pems

    def _init_reconnect(self, where: str, reconnect: Any, keep_imports: bool, client_opts: Any) -> Any:
        """Set the reconnect state; returns the channel options (pings added when reconnecting)."""
        policy = revive.policy_of(where, reconnect)
        if keep_imports and policy is None:
            raise ArgumentError(f"{where}: keep_imports=True needs reconnect=True (or a ReconnectPolicy)")
        self._reviver = revive.Reviver(policy, keep_imports) if policy is not None else None
        return revive.channel_options(policy, client_opts)

    @property
    def reconnect_policy(self) -> Optional[revive.ReconnectPolicy]:
        """How the session reconnects after the server or the network went away; None: it does not."""
        return self._reviver.policy if self._reviver is not None else None

    def _mark_lost(self, reason: str) -> None:
        """The session cannot come back (``revive.reconnect_flow``): its transport is dead."""
        self._transport.on_lost = None
        self._transport.mark_dead(reason)

    def on_state_change(self, callback: Callable[[revive.StateChange], Any]) -> None:
        """Call ``callback(change)`` (a ``StateChange``) at each change of the connection of a
        session made with ``reconnect``: at once with the current state ("connected", or "lost"),
        then "disconnected", "reconnecting" (each attempt), and "reconnected" (with the tables
        revived and lost) or "lost". Callbacks run in the thread (or the event loop) that
        reconnects; what they raise is logged."""
        if not callable(callback):
            raise ArgumentError(f"on_state_change: callback must be callable, got {type(callback).__name__}")
        rv = self._reviver
        if rv is None:
            raise ArgumentError("on_state_change: the session does not reconnect; make it with reconnect=True "
                                "(or a ReconnectPolicy)")
        rv.callbacks.append(callback)
        callback(revive.StateChange("lost", cause=rv.lost) if rv.lost else revive.StateChange("connected"))

    # -- properties -------------------------------------------------------------------------------

    @property
    def host(self) -> str:
        return self._host

    @property
    def port(self) -> int:
        return self._port

    @property
    def grpc_channel(self) -> Any:
        """The gRPC channel (a ``grpc.aio`` channel for an AsyncSession)."""
        return self._transport.channel

    @property
    def grpc_metadata(self) -> list[tuple[bytes, bytes]]:
        return self._transport.flight_headers

    @property
    def stats(self) -> Any:
        """Counts and total seconds of the server round trips made so far, by operation."""
        return self._transport.stats

    @property
    def storage(self) -> Any:
        """The server's file storage, where the web UI keeps notebooks and layouts: ``ls``,
        ``read``, ``write``, ``mkdir``, ``move``, ``delete`` (awaited in the asyncio API)."""
        store = self.__dict__.get("_storage")
        if store is None:
            store = self.__dict__["_storage"] = self._storage_class(self)
        return store

    @property
    def server_config(self) -> dict[str, str]:
        """The server's configuration values that clients may read (asked at connect and at
        each token refresh): its version, the versions of its Java, Python and Barrage ..."""
        return dict(self._transport.config)

    @property
    def server_version(self) -> Optional[str]:
        """The server's Deephaven version, e.g. ``"42.7"``."""
        return self._transport.config.get("deephaven.version")

    def _heap_info_flow(self) -> Flow[dict[str, int]]:
        """The server's Java heap in bytes: ``max_memory`` (the most it may use), ``total_memory``
        (taken now) and ``free_memory`` (of that, unused)."""
        resp = yield Unary("heap_info", "console_stub", "GetHeapInfo", console_pb2.GetHeapInfoRequest())
        return {"max_memory": int(resp.max_memory), "total_memory": int(resp.total_memory),
                "free_memory": int(resp.free_memory)}

    @property
    def is_connected(self) -> bool:
        raise NotImplementedError

    def _release_later(self, ticket: Ticket, after: Any = None) -> None:
        """Release without waiting (from finalizers, which may run in any thread and must not
        block); once the call ``after`` (the one making the export) has its answer, when given."""
        raise NotImplementedError

    def _start_call(self, call: Unary) -> Any:
        """Send ``call`` now, from any thread, without waiting: a handle for ``Result`` and ``Settle``."""
        raise NotImplementedError

    def _settle_call(self, call: Any) -> Any:
        """Wait until ``call`` (a pipelined op's) has its answer, of any kind (awaitable in the
        asyncio API)."""
        raise NotImplementedError

    def _pipelined_block(self) -> Any:
        """A block in which table operations do not wait for their answers (the asyncio API's
        never do)."""
        return contextlib.nullcontext(self)

    def _console(self) -> Any:
        """The console's ticket (started once; awaitable in the asyncio API)."""
        raise NotImplementedError

    def _run_op(self, op: _ops.TableOp, source: Any, cls: Any = None) -> Any:
        raise NotImplementedError

    def _reconnecting_here(self) -> bool:
        """Whether the caller is the reconnect in progress (its thread, or its asyncio task): it
        must not wait for itself, and what it makes again is not recorded again."""
        raise NotImplementedError

    def _follow(self, followed: Any, name: str) -> Any:
        """Read the server stream ``followed`` (a ``_core.watch.Followed``) in the background, kept
        through reconnects; a handle with ``followed`` and ``stop()``."""
        raise NotImplementedError

    # -- tickets ----------------------------------------------------------------------------------

    def make_export_ticket(self, ticket_no: Optional[int] = None) -> ExportTicket:
        return ExportTicket.export_ticket(ticket_no if ticket_no is not None else self.next_export_ticket_number())

    def next_export_ticket_number(self) -> int:
        n = next(self._export_numbers)
        if n >= 2**31 - 1:
            raise DHError("the session has used up its export ticket numbers; open a new session")
        return n

    def _release_flow(self, ticket: Ticket) -> Flow[None]:
        """Tell the server this session no longer needs ``ticket``'s object."""
        yield Unary("release", "session_stub", "Release", session_pb2.ReleaseRequest(id=ticket.pb_ticket),
                    args={"ticket": ticket})

    def _release_quietly_flow(self, ticket: Ticket) -> Flow[None]:
        try:
            if self.is_connected:
                yield from self._release_flow(ticket)
        except DHError:
            pass

    def _live_exports_flow(self, timeout: float = 10.0) -> Flow[list[ExportTicket]]:
        """The exports the server holds for this session right now (asked of the server, which
        streams the state of every export and then marks the end of that first run)."""
        timeout = check_number("live_exports", "timeout", timeout)
        yield do(self._transport.flush_releases)
        tally = ExportTally()
        yield Stream("live_exports", "session_stub", "ExportNotifications", session_pb2.ExportNotificationRequest(),
                     timeout=timeout, until=tally.take)
        return tally.live(self._console_id)

    # -- the server's scope -----------------------------------------------------------------------

    def _fields_flow(self, scope_only: bool) -> Flow[dict[str, ServerObject]]:
        first = yield Stream("ListFields", "app_stub", "ListFields", application_pb2.ListFieldsRequest(),
                             until=lambda _: True)
        out: dict[str, ServerObject] = {}
        if not first:
            return out
        for info in list(first[0].created) + list(first[0].updated):
            if scope_only and info.application_id != "scope":
                continue
            out[info.field_name] = ServerObject(info.typed_ticket.type,
                                                _ticket_from_bytes(info.typed_ticket.ticket.ticket))
        for info in first[0].removed:
            out.pop(info.field_name, None)
        return out

    def _tables_flow(self) -> Flow[list[str]]:
        """Names of the tables in the server's global scope."""
        fields = yield from self._fields_flow(True)
        return [name for name, obj in fields.items() if obj.type == "Table"]

    def _exportable_objects_flow(self) -> Flow[dict[str, ServerObject]]:
        """Every object the server offers by name (scope variables and application fields)."""
        return (yield from self._fields_flow(False))

    # -- sharing ----------------------------------------------------------------------------------

    def _publish_flow(self, source_ticket: Ticket, result_ticket: Ticket) -> Flow[None]:
        """Make the object behind ``source_ticket`` reachable under ``result_ticket`` (normally a
        SharedTicket) by other sessions, for as long as this session keeps the source."""
        check_ticket("publish", "source_ticket", source_ticket)
        check_ticket("publish", "result_ticket", result_ticket)
        yield Unary("publish", "session_stub", "PublishFromTicket",
                    session_pb2.PublishRequest(source_id=source_ticket.pb_ticket, result_id=result_ticket.pb_ticket),
                    args={"source_ticket": source_ticket, "result_ticket": result_ticket})

    def _fetch_flow(self, ticket: Ticket) -> Flow[ExportTicket]:
        """Export the object behind ``ticket`` into a new ticket of this session."""
        check_ticket("fetch", "ticket", ticket)
        result = self.make_export_ticket()
        yield Unary("fetch", "session_stub", "ExportFromTicket",
                    session_pb2.ExportRequest(source_id=ticket.pb_ticket, result_id=result.pb_ticket),
                    args={"ticket": ticket})
        return result

    def _publish_table_flow(self, ticket: SharedTicket, table: Any) -> Flow[None]:
        """Share ``table`` under ``ticket`` for other sessions' ``fetch_table``.

        The table is published from a new export of this session kept until the session ends, so
        that the shared table outlives the Table object (its close or its collection) and its own
        export, also when the table is still being made."""
        self._table_arg("publish_table", table)
        yield do(table._resolve)  # a pipelined table's failure is reported as its own op's
        if is_foreign(self, table):
            copy = yield from borrow_flow(self, table, "publish_table")
            self._pinned.add(copy.bytes)
            yield from self._publish_flow(copy, ticket)
        else:
            yield from self._share_flow(ticket, table)
            revive.note_publish(self, ticket, table)

    def _share_flow(self, ticket: SharedTicket, table: Any) -> Flow[None]:
        """Publish a kept copy of this session's ``table`` under ``ticket``."""
        copy = yield from self._fetch_flow(table.ticket)
        self._pinned.add(copy.bytes)
        yield from self._publish_flow(copy, ticket)

    def _fetch_table_flow(self, ticket: SharedTicket) -> Flow[Any]:
        """A table another session published under ``ticket``."""
        check_ticket("fetch_table", "ticket", ticket)
        return (yield do(self._run_op, _ops.FetchTableOp(ticket), None))

    # -- scripts and scope ------------------------------------------------------------------------

    def _start_console_flow(self) -> Flow[Any]:
        ticket = self.make_export_ticket()
        yield Unary("start_console", "console_stub", "StartConsole",
                    console_pb2.StartConsoleRequest(result_id=ticket.pb_ticket, session_type=self._session_type),
                    args={"session_type": self._session_type})
        return ticket.pb_ticket

    def _run_script_flow(self, script: str, systemic: Optional[bool] = None, *, capture_output: bool = False,
                         timeout: Optional[float] = None) -> Flow[ScriptResult]:
        """Run ``script`` in the server's script session (language: ``session_type``); what it did
        to the global scope (a ``ScriptResult``; the official client returns None).

        Args:
            script: the code.
            systemic: mark the objects the script makes as systemic (None: the server's default).
            capture_output: collect what the script prints to stdout and stderr, in order, as
                ``ScriptResult.output`` (None when False). The server's log stream carries it;
                a line is there once its newline is printed (a last line printed without one is
                missed). Costs a no-op command after the script and up to about 0.1 s.
            timeout: seconds; past them the script is stopped on the server and
                ``ScriptTimeoutError`` raised (its ``cancelled`` says whether the server stopped
                it). A Python script is stopped between two instructions: a loop at once, a
                blocking call (time.sleep, a read) when it returns. The server's CancelCommand is
                asked too (the 42.7 server does not implement it).

        Raises:
            ServerError: the script raised on the server; the server's message, and with
                ``capture_output`` the script's output in ``output`` and in the message.
            ScriptTimeoutError: ``timeout`` passed (a DeadlineExceededError).
        """
        check_str("run_script", "script", script, allow_empty=True)
        if systemic is not None and not (isinstance(systemic, int) and systemic in (0, 1)):  # ints as bools
            raise DHError(f"run_script: systemic must be None, True or False, got {systemic!r}")
        if timeout is not None:
            timeout = check_number("run_script", "timeout", timeout)
            if timeout <= 0:
                raise ArgumentError(f"run_script: timeout must be a positive number of seconds, got {timeout!r}")
        console = yield do(self._console)
        token = os.urandom(8).hex()
        watched = timeout is not None and self._session_type == "python"
        code = _logs.watchdog_script(script, timeout, token) if watched and timeout is not None else script
        if capture_output and self._session_type == "python":
            code = _logs.tagged(code, token)
        collector: Optional[_logs.OutputCollector] = None
        watch = None
        if capture_output:
            collector = _logs.OutputCollector(token)
            watch = yield Watch("run_script", "console_stub", "SubscribeToLogs",
                                _logs.log_request(None, _logs.capture_since(self._clock_offset_us)),
                                collector.add, collector.end)
        try:
            req = console_pb2.ExecuteCommandRequest(console_id=console, code=code,
                                                    systemic=_SYSTEMIC[None if systemic is None else bool(systemic)])
            wait = None if timeout is None else timeout + _logs.CANCEL_GRACE_SECONDS
            try:
                resp = yield Unary("run_script", "console_stub", "ExecuteCommand", req, args={"script": script},
                                   timeout=wait)
            except DeadlineExceededError:
                assert timeout is not None
                raise (yield from self._script_timed_out_flow(console, timeout, watched, collector)) from None
            self._clock_offset_us = int(resp.end_timestamp) // 1000 - int(time.time() * 1e6)
            entries = None
            if collector is not None:
                end_us = int(resp.end_timestamp) // 1000
                if not collector.has_after(end_us):
                    yield Unary("run_script", "console_stub", "ExecuteCommand", console_pb2.ExecuteCommandRequest(
                        console_id=console, code=_logs.marker_script(token, self._session_type)))
                    yield blocking(collector.wait_complete, end_us)
                entries = collector.lines(int(resp.start_timestamp), int(resp.end_timestamp))
                if collector.error is not None:
                    log.warning("run_script: the server ended the log stream before the script's output was "
                                "complete (%s); output holds the %d lines received", collector.error, len(entries))
            if resp.error_message:
                lines = None if entries is None else tuple(e.message for e in entries)
                if watched and _logs.stopped_by_watchdog(resp.error_message, token):
                    raise ScriptTimeoutError(f"run_script timed out: the script ran past its timeout of {timeout:g} s "
                                             f"and was stopped on the server", code="DEADLINE_EXCEEDED",
                                             timeout=float(timeout or 0), cancelled=True, output=lines)
                printed = "" if not lines else " (its output first, then the error)"
                text = "".join(line + "\n" for line in lines or ())
                raise ServerError(f"run_script failed: the script raised an error on the server{printed}:\n"
                                  f"{text}{resp.error_message}", output=lines)
            revive.note_script(self, script)
            return ScriptResult.of(resp, entries)
        finally:
            if watch is not None:
                watch.cancel()

    def _script_timed_out_flow(self, console: Any, timeout: float, watched: bool,
                               collector: Optional[_logs.OutputCollector]) -> Flow[ScriptTimeoutError]:
        """The error of a script whose answer did not come within its timeout (and the grace after
        it): the server's CancelCommand is asked (unless it refused before); a watched script is
        stopped by its watchdog once its blocking call returns."""
        if not self._no_cancel_command:
            outcome, _ = yield Quietly(Unary("run_script", "console_stub", "CancelCommand",
                                             console_pb2.CancelCommandRequest(console_id=console)))
            if isinstance(outcome, DHError) and outcome.code == "UNIMPLEMENTED":
                self._no_cancel_command = True
        lines = None if collector is None else tuple(e.message for e in collector.since_command())
        if watched:
            how = ("it was inside a blocking call (a sleep, a read ...) when its time ran out: the server stops it "
                   "when that call returns, and runs no other script meanwhile")
        else:
            how = (f"the server cannot stop a {self._session_type} script (it does not implement CancelCommand): "
                   f"it runs on, and the server runs no other script meanwhile")
        return ScriptTimeoutError(f"run_script timed out: no answer within its timeout of {timeout:g} s; {how}",
                                  code="DEADLINE_EXCEEDED", timeout=timeout, cancelled=False, output=lines)

    # -- the server's log -------------------------------------------------------------------------

    def _on_log_flow(self, callback: Callable[[LogEntry], Any], levels: Optional[Sequence[str]] = None,
                     since: Optional[float] = None) -> Flow[LogSubscription]:
        """Call ``callback(entry)`` with each record of the server's log (a ``LogEntry``: time,
        level, message), of every session and thread, as it arrives (in a worker thread in the
        blocking API, in the event loop in the asyncio API), until the returned subscription's
        ``close()`` or the session's close.

        Args:
            levels: only these levels, e.g. ``["STDOUT", "STDERR"]`` (what scripts print); all
                when None.
            since: seconds since the epoch (server clock): only records after it; None: the
                server first replays its recent history (about the last thousand records).

        On a session that reconnects, the subscription goes on after a reconnect, from the last
        record it delivered (``LogFollow``).
        """
        if not callable(callback):
            raise DHError(f"on_log: callback must be callable, got {type(callback).__name__}")
        follow = LogFollow("on_log", levels, since, lambda entry: call_quietly(callback, entry, "on_log"), None)
        return LogSubscription((yield do(self._follow, follow, "pydeephaven-on_log")))

    def _open_table_flow(self, name: str) -> Flow[Any]:
        """The table bound to ``name`` in the server's global scope."""
        check_str("open_table", "name", name)
        try:
            return (yield do(self._run_op, _ops.FetchTableOp(ScopeTicket.scope_ticket(name)), None))
        except DHError as e:
            if e.code in ("NOT_FOUND", "INVALID_ARGUMENT", "FAILED_PRECONDITION"):
                cause = cause_of(e, "fetch_table")
                raise reworded(e, f"open_table({name!r}) failed: no table named {name!r} in the server's scope "
                                  f"(server said: {cause})") from None
            raise

    def _open_partitioned_table_flow(self, name: str) -> Flow[Any]:
        """The partitioned table bound to ``name`` in the server's global scope (a script made it
        with ``partition_by``)."""
        check_str("open_partitioned_table", "name", name)
        fields = yield from self._fields_flow(True)
        found = fields.get(name)
        if found is None or found.type != "PartitionedTable":
            what = f"a {found.type}" if found is not None else "nothing"
            raise NotFoundError(f"open_partitioned_table({name!r}) failed: the server's scope holds {what} under "
                                f"{name!r}, not a PartitionedTable", code=None)
        ticket = yield from self._fetch_flow(ScopeTicket.scope_ticket(name))
        made = yield from self._partitioned_from_flow(ticket, "open_partitioned_table")
        revive.note_made(self, made, functools.partial(self._open_partitioned_table_flow, name))
        return made

    def _partitioned_from_flow(self, ticket: Ticket, op: str) -> Flow[Any]:
        """The partitioned table exported under ``ticket``: its description and its table, asked of
        the server (the export is released when that fails)."""
        try:
            resp = yield Unary(op, "object_stub", "FetchObject", object_pb2.FetchObjectRequest(
                source_id=ticket_pb2.TypedTicket(ticket=ticket.pb_ticket, type="PartitionedTable")))
            descriptor = partitionedtable_pb2.PartitionedTableDescriptor.FromString(resp.data)
            inner = _ticket_from_bytes(resp.typed_export_ids[0].ticket.ticket)
            created = yield Unary(op, "table_stub", "GetExportedTableCreationResponse", inner.pb_ticket)
            table = yield from self._table_from_flow(created, inner, op)
        except BaseException:
            yield from self._release_quietly_flow(ticket)
            raise
        return self._partitioned_class(self, ticket, descriptor, table)

    def _bind_table_flow(self, name: str, table: Any) -> Flow[None]:
        """Bind ``table`` to the variable ``name`` in the server's global scope."""
        check_str("bind_table", "name", name)
        self._table_arg("bind_table", table)
        yield do(table._resolve)  # a pipelined table's failure is reported as its own op's
        ticket, borrowed = yield from self._own_ticket_flow("bind_table", table)
        try:
            console = yield do(self._console)
            yield Unary("bind_table", "console_stub", "BindTableToVariable",
                        console_pb2.BindTableToVariableRequest(console_id=console, variable_name=name,
                                                               table_id=ticket.pb_ticket),
                        args={"name": name})
        finally:
            for tk in borrowed:
                self._release_later(tk)

    def _unbind_flow(self, name: str) -> Flow[None]:
        """Remove the variable ``name`` from the server's global scope (no error if it is absent).
        Needs a Python script session."""
        check_variable_name("unbind", name)
        self._needs_python("unbind")
        yield from self._run_script_flow(unbind_script(name))

    def _needs_python(self, op: str) -> None:
        if self._session_type != "python":
            raise DHError(f"{op}: needs a python script session, this one is {self._session_type!r}")

    # -- making tables ----------------------------------------------------------------------------

    def _empty_table_flow(self, size: int) -> Flow[Any]:
        """A table of ``size`` rows and no columns."""
        return (yield do(self._run_op, _ops.empty_table(size), None))

    def _time_table_flow(self, period: Union[int, str], start_time: Optional[Union[int, str]] = None,
                         blink_table: bool = False) -> Flow[Any]:
        """A ticking table adding one row (a ``Timestamp``) every ``period``.

        Args:
            period: nanoseconds (int) or a duration string such as ``"PT1S"``.
            start_time: the first timestamp, as nanoseconds since the epoch or a datetime string;
                now when None.
            blink_table: keep only the rows added in the latest update cycle.
        """
        return (yield do(self._run_op, _ops.time_table(period, start_time, blink_table), None))

    def _merge_tables_flow(self, tables: Sequence[Any], order_by: str = "") -> Flow[Any]:
        """The rows of ``tables`` one after another (same columns needed)."""
        if not tables:
            raise DHError("merge_tables: tables must not be empty")
        for tb in tables:
            self._table_arg("merge_tables", tb)
        return (yield do(self._run_op, _ops.MergeTablesOp(tuple(tables), order_by or ""), None))

    def _input_table_flow(self, schema: Optional[pa.Schema] = None, init_table: Any = None,
                          key_cols: Optional[Union[str, list[str]]] = None, blink_table: bool = False) -> Flow[Any]:
        """A new input table, a table the client can add rows to.

        Args:
            schema: the columns, as an Arrow schema; give this or ``init_table``.
            init_table: a table whose columns the input table takes (not its rows).
            key_cols: key columns: adding a row whose keys exist replaces that row, and rows can be
                deleted by key. Without keys the table is append-only.
            blink_table: keep only the rows added in the latest update cycle (no keys allowed).

        Raises:
            ValueError: neither or both of schema and init_table, or blink_table with key_cols (a
                DHError too: ``pydeephaven.dherror.ArgumentError``).
            DHError: the server refused the definition.
        """
        if (schema is None) == (init_table is None):
            raise ArgumentError("input_table: give exactly one of schema and init_table")
        keys = str_tuple("input_table", "key_cols", key_cols)
        if blink_table and keys:
            raise ArgumentError("input_table: a blink input table cannot have key columns")
        schema_bytes = None
        if schema is not None:
            if not isinstance(schema, pa.Schema):
                raise DHError(f"input_table: schema must be a pyarrow.Schema, got {type(schema).__name__}")
            for f in schema:
                _arrow.check_column_name(f.name)
            missing = [k for k in keys if k not in schema.names]
            if missing:
                raise DHError(f"input_table: key_cols {missing} are not columns of the schema {schema.names}")
            schema_bytes = _arrow.server_schema(schema).serialize().to_pybytes()
        else:
            self._table_arg("input_table", init_table, "init_table")
        op = _ops.CreateInputTableOp(schema_bytes, init_table, keys, bool(blink_table))
        result = yield do(self._run_op, op, None, self._input_table_class)
        result.key_cols = list(keys) or None
        return result

    def query(self, table: Any) -> Any:
        """A query on ``table``: chain table operations on it, then ``exec()`` runs them all in one
        batch request (``await q.exec()`` in the asyncio API)."""
        self._table_arg("query", table, "table")
        return self._query_class(self, table)

    # -- SQL --------------------------------------------------------------------------------------

    def _sql_flow(self, query: str, fmt: str = "arrow", **options: Any) -> Flow[Any]:
        """Run a SQL query on the server (Arrow Flight SQL over this session's connection) and
        return the result as ``fmt``: "arrow" (a pyarrow Table), "pandas", "polars", "csv", "json",
        "pretty" (text; see ``pydeephaven.formats``), or "table" (a server Table of this session,
        for more table operations; close it when done). ``options`` go to the format.

        The query sees the tables in the server's global scope (``bind_table``, ``run_script``).
        The server's SQL is a subset: see the README's SQL section for what it runs. The transfer
        and the conversion run in worker threads in the asyncio API.

        Raises:
            DHError: the server refused or could not run the query; the message carries its reason.
        """
        fmt = formats.check_format(fmt, formats.FORMATS + ("table",))
        _sql.check_query(query)
        if fmt == "table" and options:
            raise DHError(f"sql: fmt 'table' takes no options, got {sorted(options)}")
        try:
            info = yield blocking(_sql.flight_info, self._flight, query)
            if fmt == "table":
                return (yield from self._sql_table_flow(query, info))
            data = yield blocking(_sql.read_result, self._flight, query, info)
        except _sql.SqlError as e:
            raise (yield from self._explain_sql_flow(e, query)) from None
        if fmt == "pretty":
            options.setdefault("title", "SQL result")
        return (yield blocking(formats.convert, data, fmt, **options))

    def _sql_table_flow(self, query: str, info: Any) -> Flow[Any]:
        tickets = _sql.result_tickets(info)
        if len(tickets) != 1:
            raise DHError(f"sql(fmt='table') failed: the server answered with {len(tickets)} result tickets, "
                          f"expected one; use another fmt")
        ticket = yield from self._fetch_flow(_sql.FlightSqlTicket(tickets[0]))
        try:
            resp = yield Unary("sql", "table_stub", "GetExportedTableCreationResponse", ticket.pb_ticket,
                               args={"query": _sql.short_query(query)})
            if not resp.success:
                raise DHError(resp.error_info or "the server reported a failure without details")
        except BaseException as e:
            yield from self._release_quietly_flow(ticket)
            if not isinstance(e, DHError):  # an interrupt or a cancellation: passed on after the release
                raise
            raise _sql.SqlError(f"sql({_sql.short_query(query)!r}) failed: {e}", needs_reason=True, kind=type(e),
                                code=e.code) from None
        return (yield from self._table_from_flow(resp, ticket, "sql"))

    def _explain_sql_flow(self, err: Any, query: str) -> Flow[DHError]:
        """``err`` with the server's reason, asked of the script session when the message lacks it."""
        if not err.needs_reason or self._session_type != "python":
            return err.public()
        try:
            yield from self._run_script_flow(_sql.explain_script(query))
        except DHError as script_err:
            reason = _sql.reason_from_script_error(str(script_err))
            if reason:
                return err.public(f"{err}; the server's reason: {reason}")
        return err.public()

    # -- uploads ----------------------------------------------------------------------------------

    def _import_table_flow(self, data: Union[pa.Table, pa.RecordBatch, pa.RecordBatchReader]) -> Flow[Any]:
        """Upload Arrow data into a new server table over Arrow Flight (in a worker thread in the
        asyncio API).

        Takes a pyarrow Table, RecordBatch or RecordBatchReader (streamed: it need not fit in memory
        at once). Types the server lacks are converted to the nearest it has (large and view strings
        to string, dictionaries to their values, large lists to lists ...); types it cannot hold and
        column names it cannot use raise DHError naming the column. The data is sent in batches below
        the server's message limit, and the result is confirmed with the server: the returned
        Table's size is the server's count. A failed or cancelled upload leaves nothing on the server.
        A large table (``put_streams`` streams above ``parallel_put_bytes``) goes over parallel streams.
        """
        streams = self._streams_for_put(data)
        if streams > 1:
            merged = yield from self._import_parallel_flow(data, streams)
            revive.note_import(self, merged, data)
            return merged
        ticket = self.make_export_ticket()
        stop = StopFlag()
        plan: list[UploadConfirmation] = []

        def prepare_confirmation(key: bytes) -> None:
            # While the DoPut is open (in the worker): the server's schema for this schema is known
            # from an earlier upload, or it is asked for now, and the server answers right after
            # the upload (see _confirm).
            c = UploadConfirmation(self._transport.known_schemas, key)
            plan.append(c)
            if c.by_call:
                c.call = self._start_call(Unary("import_table", "table_stub", "GetExportedTableCreationResponse",
                                                ticket.pb_ticket))

        work = yield Spawn(self._flight.do_put, (ticket.ticket_no, data), {"on_open": prepare_confirmation,
                                                                          "stop": stop})
        try:
            rows = yield Result(work)
            if plan[0].by_call:
                try:
                    resp = yield Result(plan[0].call)
                except DHError as e:
                    raise plan[0].call_failed(e, rows) from None
                confirmed = plan[0].from_call(resp, rows)
            else:
                confirmed = plan[0].known(rows)
        except BaseException as e:
            stop.set()
            note, cancelled = yield from self._abandon_upload_flow(ticket, work, plan)
            if note is None:  # refused before the upload began (data, names, types): nothing to clean
                raise
            if not isinstance(e, Exception):  # a cancellation or an interrupt: passed on after the cleanup
                raise
            if cancelled:  # the caller was cancelled during the cleanup of a failure: the cancellation wins
                yield Cancelled(e)
            raise _upload_error(e, note) from (e.__cause__ if isinstance(e, DHError) else e)
        table = self._table_class(self, ticket, size=rows, is_static=confirmed.is_static, schema=confirmed.schema)
        revive.note_import(self, table, data)
        return table

    def _streams_for_put(self, data: Any) -> int:
        if self.put_streams <= 1 or not isinstance(data, pa.Table) or data.num_rows < 2 * self.put_streams:
            return 1
        return self.put_streams if data.nbytes >= self.parallel_put_bytes else 1

    def _import_parallel_flow(self, data: pa.Table, streams: int) -> Flow[Any]:
        """Upload contiguous slices of ``data`` over parallel streams, then merge them in order on
        the server (the server ingests each stream on one thread). A failure of one stream stops
        the others; every slice's export is released whatever happens (the merged table holds the
        rows)."""
        _arrow.server_schema(data.schema)  # name and type problems show once, before any upload
        step = -(-data.num_rows // streams)
        slices = [data.slice(i * step, step) for i in range(streams) if i * step < data.num_rows]
        tickets = [self.make_export_ticket() for _ in slices]
        stop = StopFlag()

        def put(i: int) -> int:
            try:
                return self._flight.do_put(tickets[i].ticket_no, slices[i], stop=stop)
            except BaseException:
                stop.set()
                raise

        parts = [self._table_class(self, tk) for tk in tickets]
        merged = None
        try:
            results = yield blocking(fan_out, put, len(slices), stop)
            failed = [r for r in results if isinstance(r, BaseException) and not isinstance(r, UploadStopped)]
            if failed or any(isinstance(r, BaseException) for r in results):
                raise failed[0] if failed else results[0]
            merged = yield do(self._run_op, _ops.MergeTablesOp(tuple(parts), ""), None)
            rows = sum(results)
            if merged.size != rows:
                raise DHError(f"import_table failed: sent {rows} rows but the server holds {merged.size}")
        except BaseException as e:
            stop.set()
            if merged is not None:
                yield from merged._close_flow()
            unsent = False
            for p in parts:
                outcome, _ = yield Quietly(Unary("release", "session_stub", "Release",
                                                 session_pb2.ReleaseRequest(id=p.ticket.pb_ticket)))
                unsent |= isinstance(outcome, DHError) and not _nothing_to_release(outcome)
                p._closed = True
            if not isinstance(e, Exception):
                raise
            raise _upload_error(e, _release_note(None if unsent else True)) from (
                e.__cause__ if isinstance(e, DHError) else e)
        finally:
            for p in parts:
                yield from p._close_flow()
        return merged

    def _abandon_upload_flow(self, ticket: ExportTicket, work: Any,
                             plan: list[UploadConfirmation]) -> Flow[tuple[Optional[str], bool]]:
        """Make sure the server keeps nothing of a failed or cancelled upload, once the work has
        ended the DoPut stream (it stops before its next batch); cancellations of the caller
        meanwhile do not stop the cleanup. A note for the error message (None when the upload
        never began) and whether the caller was cancelled meanwhile.

        A confirmation call asked for while the upload ran must reach the server before the
        release: asked of an export that no longer exists, it would make a new one (a placeholder)
        that lives until the session ends. So the release waits until the call has its answer,
        which comes as soon as the server has settled the export (made, failed or released)."""
        release = Unary("release", "session_stub", "Release", session_pb2.ReleaseRequest(id=ticket.pb_ticket),
                        args={"ticket": ticket})
        done, cancelled = yield Settle(work, UPLOAD_SETTLE_SECONDS)
        if not done:  # stuck in a write: releasing the export makes the server end the stream
            cancelled |= (yield Quietly(release))[1]
            done, c = yield Settle(work, 3 * UPLOAD_SETTLE_SECONDS)
            cancelled |= c
        if not plan:
            return (None if done else _release_note(None)), cancelled
        call = plan[0].call
        if call is not None:
            settled, c = yield Settle(call, UPLOAD_SETTLE_SECONDS)
            cancelled |= c
            if not settled:  # a placeholder that no DoPut fills: the release ends it
                cancelled |= (yield Quietly(release))[1]
                cancelled |= (yield Settle(call, UPLOAD_SETTLE_SECONDS))[1]
        outcome, c = yield Quietly(release)
        if isinstance(outcome, DHError):
            released: Optional[bool] = False if _nothing_to_release(outcome) else None
        else:
            released = True
        return _release_note(released), cancelled or c

    # -- files ------------------------------------------------------------------------------------

    def _import_file_flow(self, path: Union[str, "os.PathLike[str]"], format: Optional[str] = None, *,  # noqa: A002
                          columns: Optional[Sequence[str]] = None, delimiter: Optional[str] = None,
                          column_types: Optional[dict[str, Any]] = None, batch_rows: Optional[int] = None,
                          csv_options: Optional[dict[str, Any]] = None, progress: Optional[bool] = None,
                          encoding: Optional[str] = None, **unknown: Any) -> Flow[Any]:
        """Load a CSV (or TSV), Parquet or Arrow IPC (Feather) file into a new server table, streamed
        in record batches: a file larger than memory loads.

        Args:
            path: the file; its name gives the format (``.csv``, ``.tsv``, ``.parquet``/``.pq``,
                ``.arrow``/``.feather``/``.ipc``; CSV may end in ``.gz``, ``.bz2``, ``.zst``).
            format: "csv", "tsv", "parquet" or "arrow" (also "feather", "ipc") to override the name.
            columns: load only these columns.
            delimiter: the CSV field separator ("," for csv, tab for tsv).
            column_types: CSV column types by name (pyarrow types); the others are guessed from the
                first megabyte of the file.
            batch_rows: Parquet rows per batch (default: about 16 MB of data).
            csv_options: more pyarrow.csv options by name (skip_rows, column_names, quote_char,
                null_values, timestamp_parsers, ...).
            progress: a progress bar on stderr: None shows one on a terminal for transfers longer
                than a second, True always, False never.
            encoding: the text encoding of a CSV file (e.g. "latin-1"); None reads UTF-8 and refuses
                a file that is not UTF-8, naming the column and row.

        A CSV column with no value in the first megabyte is read as string (a stream cannot re-type
        it later); give ``column_types`` for another type.

        Raises:
            DHError: the file is missing or unreadable, or the server refused the data.
        """
        if unknown:
            raise DHError(f"import_file: unknown arguments {sorted(unknown)}; it takes columns, delimiter, "
                          f"column_types, batch_rows, csv_options, progress, encoding")
        types = dict(column_types or {})
        widened: list[str] = []
        start = time.perf_counter()
        for attempt in range(_files.MAX_CSV_RETYPES + 1):
            source = yield blocking(_files.open_file, path, format, columns=columns, delimiter=delimiter,
                                    column_types=types, batch_rows=batch_rows, csv_options=csv_options,
                                    encoding=encoding, widened=widened)
            bar = _files.progress_bar(progress, source.total, source.unit, f"import {os.path.basename(str(path))}")
            try:
                table = yield do(self.import_table, source.reader(bar))  # type: ignore[attr-defined]
                log.debug("import_file %s: %s rows in %.2f ms", path, table.size, (time.perf_counter() - start) * 1e3)
                return table
            except _files.CsvRetype as e:
                # a later value does not fit the type guessed from the first block: read it again
                # with that column widened, as pyarrow's read_csv would type it
                if attempt == _files.MAX_CSV_RETYPES:
                    raise rewrap(f"import_file({str(path)!r})", e, "import_table") from None
                _files.log.info("import_file %s: column %r needs %s; reading the file again", path, e.column,
                                e.new_type)
                types[e.column] = e.new_type
                widened.append(e.column)
            except DHError as e:
                raise rewrap(f"import_file({str(path)!r})", e, "import_table") from None
            finally:
                bar.close()
                source.close()
        raise AssertionError("unreachable")

    # -- running ops ------------------------------------------------------------------------------

    def _table_arg(self, op: str, table: Any, what: str = "") -> None:
        """Check a table argument: of this API's kind and not closed (a table of another session
        is borrowed, see ``_core.foreign``)."""
        kind = self._table_class.__name__
        if not isinstance(table, self._table_class):
            article = "an" if kind[0] in "AEIOU" else "a"
            name = f"{what} must be" if what else "expected"
            raise DHError(f"{op}: {name} {article} {kind}, got {type(table).__name__}")
        table._check(op)

    def _table_from_flow(self, resp: table_pb2.ExportedTableCreationResponse, ticket: Ticket, op: str,
                         cls: Any = None) -> Flow[Any]:
        if not resp.success:
            yield from self._release_quietly_flow(ticket)
            raise DHError(f"{op} failed: {resp.error_info or 'the server reported a failure without details'}")
        return (cls or self._table_class)(self, ticket, schema_header=resp.schema_header, size=int(resp.size),
                                          is_static=resp.is_static)

    def _own_ticket_flow(self, op: str, table: Any) -> Flow[tuple[Ticket, list[ExportTicket]]]:
        """``table``'s ticket for a request of this session (borrowed when the table belongs to
        another session; release the borrowed tickets after the request)."""
        if is_foreign(self, table):
            tk = yield from borrow_flow(self, table, op)
            return tk, [tk]
        return table.ticket, []

    def _refs_flow(self, op: str, tables: Sequence[Any]) -> Flow[tuple[list[Any], list[ExportTicket]]]:
        """References to ``tables`` (an op's inputs besides its source) for a request of this
        session, and the tickets borrowed for tables of other sessions, which the caller releases
        once the request has been answered."""
        refs: list[Any] = []
        borrowed: list[ExportTicket] = []
        try:
            for tb in tables:
                if is_foreign(self, tb):
                    tk = yield from borrow_flow(self, tb, op)
                    borrowed.append(tk)
                    refs.append(table_pb2.TableReference(ticket=tk.pb_ticket))
                else:
                    refs.append(_ops.ref_of(tb))
        except BaseException:
            for tk in borrowed:
                self._release_later(tk)
            raise
        return refs, borrowed

    def _op_call_flow(self, op: _ops.TableOp, ticket: ExportTicket, source: Any) -> Flow[Any]:
        """One op's call into ``ticket``: the server's answer (tables of other sessions borrowed
        for the call and released after it)."""
        refs, borrowed = yield from self._refs_flow(op.name, op.others)
        try:
            req = op.request(ticket.pb_ticket, _ops.ref_of(source) if source is not None else None, refs)
            return (yield Unary(op.name, "table_stub", op.rpc, req, args=op.args()))
        finally:
            for tk in borrowed:
                self._release_later(tk)

    def _op_flow(self, op: _ops.TableOp, source: Any, cls: Any = None) -> Flow[Any]:
        """Run one op into a new export ticket and wait for the answer: the new table."""
        ticket = self.make_export_ticket()
        resp = yield from self._op_call_flow(op, ticket, source)
        return (yield from self._table_from_flow(resp, ticket, op.name, cls))
