"""The asyncio flavour of the transport: one authenticated ``grpc.aio`` channel, its bearer token,
a keep-alive task, a termination watch, call metadata, error translation and the query log.

It sits beside the sync ``Transport`` and shares its helpers (``auth_header``, ``rpc_error``,
``describe_args``, ``CallStats``). Everything here runs on the event loop the transport connected
in; nothing blocks it. The attributes ``FlightPath`` needs (``check_open``, ``flight_headers``,
``use_tls``, ``host``, ``port``, ``target``, ``record``) are plain and thread-safe, so Arrow Flight
work can run in worker threads against this transport.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, AsyncGenerator, Optional

import grpc
import grpc.aio

from pydeephaven._core.calls import Follow, Unary, Watch
from pydeephaven._proto import (
    config_pb2,
    session_pb2,
)
from pydeephaven._transport import (
    _CLOSED_STUB,
    _Stub,
    CONNECT_TIMEOUT,
    DEFAULT_TIMEOUT,
    TransportBase,
    auth_header,
    cancelled_error,
    closed_error,
    connect_error,
    describe_args,
    rpc_error,
)
from pydeephaven.dherror import DHError

log = logging.getLogger("pydeephaven")


def _really_cancelled() -> bool:
    """Whether the running task itself is being cancelled (rather than a gRPC call under it, which
    grpc.aio reports with the same CancelledError when the channel closes)."""
    task = asyncio.current_task()
    cancelling = getattr(task, "cancelling", None)
    return task is None or cancelling is None or cancelling() > 0


class AsyncTransport(TransportBase):
    """One authenticated ``grpc.aio`` channel to a Deephaven server; ``connect()`` opens it.

    Holds no reference to the AsyncSession above it. Its background tasks (keep-alive, termination
    watch, releases) end when ``close()`` runs, or when the event loop shuts down.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._connected = False
        self._closed = False
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._keepalive: Optional[asyncio.Task[None]] = None
        self._watch: Optional[asyncio.Task[None]] = None
        self.channel: Any = None

    # -- connecting -------------------------------------------------------------------------------

    async def connect(self) -> None:
        """Open the channel and authenticate; starts the keep-alive and the termination watch."""
        if self._connected:
            return
        if self._closed:
            raise closed_error(f"connect to {self.target} failed: the session was closed")
        self._loop = asyncio.get_running_loop()
        self._open_channel(grpc.aio)
        try:
            await self._authenticate()
        except BaseException:
            self._closed = True
            await self._close_channel()
            raise
        self._connected = True
        self._watch = self._loop.create_task(self._watch_termination(), name="pydeephaven-aio-termination")
        if self._never_timeout:
            self._keepalive = self._loop.create_task(self._keepalive_loop(), name="pydeephaven-aio-keepalive")

    async def _authenticate(self) -> None:
        auth_type, auth_token = self._auth
        start = time.perf_counter()
        call = self.config_stub.GetConfigurationConstants(
            config_pb2.ConfigurationConstantsRequest(),
            metadata=[("authorization", auth_header(auth_type, auth_token)), *self._extra_headers],
            timeout=self._connect_timeout,
        )
        why = ""
        code: Optional[grpc.StatusCode] = None
        try:
            resp = await call
            md = await call.initial_metadata()
        except grpc.RpcError as e:
            why = self._connect_failure(e)
            code = e.code() if hasattr(e, "code") else None
        if why:
            del call
            self.stats.add("Connect", time.perf_counter() - start, False)
            raise connect_error(self.target, why, code)  # outside except: see unary
        self.stats.add("Connect", time.perf_counter() - start, True)
        if not self._take_token(md):
            raise connect_error(self.target, "the server sent no session token", None)
        self._read_config(resp)
        log.debug("connected to %s over asyncio (session duration %d ms)", self.target, self.session_duration_ms)

    # -- state ----------------------------------------------------------------------------------

    def check_open(self, op: str) -> None:
        if self._closed:
            raise closed_error(f"{op} failed: the session is closed")
        if not self._connected:
            raise DHError(f"{op} failed: the session is not connected yet; use `async with AsyncSession(...)` "
                          f"or `await session.connect()`")
        if self._dead:
            raise closed_error(f"{op} failed: the session is no longer usable: {self._dead}")

    def check_loop(self, op: str) -> None:
        """Calls must come from the event loop the session connected in (grpc.aio channels are
        bound to it)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise DHError(f"{op} failed: an AsyncSession works only inside a running event loop "
                          f"(await its operations in a coroutine)") from None
        if loop is not self._loop:
            raise DHError(f"{op} failed: this AsyncSession was connected in another event loop; "
                          f"use it only in the loop that connected it")

    @property
    def is_closed(self) -> bool:
        return self._closed

    @property
    def is_connected(self) -> bool:
        return self._connected and not self._closed and not self._dead

    @property
    def loop(self) -> Optional[asyncio.AbstractEventLoop]:
        return self._loop

    def mark_dead(self, reason: str) -> None:
        if not self._dead:
            self._dead = reason
            log.warning("pydeephaven async session to %s is no longer usable: %s", self.target, reason)
            self._report_lost(reason)

    # -- calls ------------------------------------------------------------------------------------

    async def unary(self, op: str, method: Any, request: Any, *, args: Optional[dict[str, Any]] = None,
                    timeout: Optional[float] = DEFAULT_TIMEOUT) -> Any:
        """One unary call; gRPC errors become DHError naming the op and its arguments.

        Errors are raised outside the ``except`` blocks, so that they carry no reference to the
        gRPC call (and through it the channel): grpc.aio keeps its event-loop binding until every
        channel object is gone, and a failed table kept by the program must not pin one.
        """
        self.check_open(op)
        self.check_loop(op)
        start = time.perf_counter()
        call = method(request, metadata=self.metadata, timeout=timeout)
        error: Optional[DHError] = None
        try:
            resp = await call
        except grpc.RpcError as e:
            error = rpc_error(op, args, e, self.target)
        except asyncio.CancelledError:
            call.cancel()
            if _really_cancelled():
                raise
            error = cancelled_error(op, args)
        if error is not None:
            del call, method  # the frame stays in the error's traceback
            self._failed(op, args, start)
            raise error
        elapsed = time.perf_counter() - start
        self.stats.add(op, elapsed, True)
        try:
            self._take_token(await call.initial_metadata())
        except Exception:  # the answer is in hand; a missing header only means no fresh token
            pass
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s(%s) %.2f ms (async)", op, describe_args(args), elapsed * 1e3)
        return resp

    def _failed(self, op: str, args: Optional[dict[str, Any]], start: float) -> None:
        elapsed = time.perf_counter() - start
        self.stats.add(op, elapsed, False)
        log.debug("%s(%s) failed after %.2f ms (async)", op, describe_args(args), elapsed * 1e3)

    async def stream(self, op: str, method: Any, request: Any, *, args: Optional[dict[str, Any]] = None,
                     timeout: Optional[float] = DEFAULT_TIMEOUT) -> AsyncGenerator[Any, None]:
        """Iterate a server stream; errors become DHError; the call is cancelled when the iteration
        stops early (close the iterator with ``aclose()``)."""
        self.check_open(op)
        self.check_loop(op)
        start = time.perf_counter()
        ok = False
        call = method(request, metadata=self.metadata, timeout=timeout)
        error: Optional[DHError] = None
        try:
            async for item in call:
                yield item
            ok = True
        except grpc.RpcError as e:
            error = rpc_error(op, args, e, self.target)
        except asyncio.CancelledError:
            if _really_cancelled():
                raise
            error = cancelled_error(op, args)
        finally:
            call.cancel()
            elapsed = time.perf_counter() - start
            self.stats.add(op, elapsed, ok)
            log.debug("%s(%s) stream %.2f ms (async)", op, describe_args(args), elapsed * 1e3)
        if error is not None:
            del call, method
            raise error  # outside the except blocks: see unary

    def watch(self, call: Watch) -> "AsyncStreamWatch":
        """Read a server stream in a task of the loop (see ``_core.calls.Watch``)."""
        self.check_open(call.op)
        self.check_loop(call.op)
        watch = AsyncStreamWatch(self, call)
        self.watches.add(watch)
        return watch

    async def perform(self, call: Any) -> Any:
        """Make a ``_core.calls.Unary`` or ``Stream`` call."""
        # the method is never a local of this frame: a failure's traceback would keep the
        # channel it belongs to alive (see unary)
        if isinstance(call, Unary):
            return await self.unary(call.op, getattr(getattr(self, call.stub), call.method), call.request,
                                   args=call.args, timeout=call.timeout)
        if isinstance(call, Follow):
            return await self.follow(call)
        out: list[Any] = []
        stream = self.stream(call.op, getattr(getattr(self, call.stub), call.method), call.request, args=call.args,
                             timeout=call.timeout)
        try:
            async for item in stream:
                out.append(item)
                if call.until is not None and call.until(item):
                    break
        except DHError as e:
            if not call.partial:
                raise
            return out, e
        finally:
            await stream.aclose()
        return (out, None) if call.partial else out

    async def follow(self, call: Follow) -> Optional[DHError]:
        """Read a server stream kept open, handing each message to ``call.each`` in the loop as it
        arrives; ``call.opened`` gets a canceller that works from any thread. None when the server
        ended the stream, else the DHError that ended it (``CallCancelledError`` after a cancel or
        a close of the session); a cancellation of the reading task itself is passed on."""
        self.check_open(call.op)
        self.check_loop(call.op)
        loop = asyncio.get_running_loop()
        start = time.perf_counter()
        rpc = getattr(getattr(self, call.stub), call.method)(call.request, metadata=self.metadata)
        error: Optional[DHError] = None
        held = [rpc]  # emptied at the end: a canceller kept by the caller must not pin the channel

        def cancel() -> None:
            if held:
                try:
                    loop.call_soon_threadsafe(held[0].cancel)
                except (RuntimeError, IndexError):  # the loop is closed (the call ended with it), or the call ended
                    pass

        try:
            call.opened(cancel)
            async for item in rpc:
                call.each(item)
        except grpc.RpcError as e:
            error = rpc_error(call.op, call.args, e, self.target)
        except asyncio.CancelledError:
            if _really_cancelled():
                raise
            error = cancelled_error(call.op, call.args)
        finally:
            rpc.cancel()
            self.stats.add(call.op, time.perf_counter() - start, error is None)
            log.debug("%s(%s) followed for %.2f ms (async)", call.op, describe_args(call.args),
                      (time.perf_counter() - start) * 1e3)
        held.clear()
        del rpc  # the frame may stay in a traceback: see unary
        return error

    async def refresh(self, timeout: float = CONNECT_TIMEOUT) -> None:
        """Ask for a fresh token (the keep-alive's work; also a cheap liveness probe)."""
        resp = await self.unary("RefreshToken", self.config_stub.GetConfigurationConstants,
                                config_pb2.ConfigurationConstantsRequest(), timeout=timeout)
        self._read_config(resp)

    # -- releases ---------------------------------------------------------------------------------

    async def release(self, op: str, ticket: Any, args: Optional[dict[str, Any]] = None) -> None:
        await self.unary(op, self.session_stub.Release, session_pb2.ReleaseRequest(id=ticket), args=args)

    def release_soon(self, ticket: Any) -> None:
        """Release ``ticket`` (a protobuf Ticket) in the background, without waiting: for finalizers,
        which may run in any thread and must not block. Does nothing once the loop is gone."""
        loop = self._loop
        if loop is None or self._closed or self._dead or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(self._start_release, ticket)
        except RuntimeError:  # the loop closed meanwhile; the server dropped the session's exports
            pass

    def _start_release(self, ticket: Any) -> None:
        if self._closed or self._dead:
            return
        task = asyncio.get_running_loop().create_task(self._quiet_release(ticket))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _quiet_release(self, ticket: Any) -> None:
        try:
            await self.unary("release", self.session_stub.Release, session_pb2.ReleaseRequest(id=ticket), timeout=10)
        except DHError:
            pass  # the server may have dropped it already (session ended, export failed)

    async def flush_releases(self, timeout: float = 10.0) -> None:
        """Wait (at most ``timeout``) until the background releases have been sent."""
        await asyncio.sleep(0)  # let releases scheduled from other threads start
        pending = list(self._tasks)
        if pending:
            await asyncio.wait(pending, timeout=timeout)

    # -- background tasks -------------------------------------------------------------------------

    async def _watch_termination(self) -> None:
        """A call the server answers only when it shuts down: it tells us the session is over.
        When the loop shuts down without close() (a program that forgot it), the task's
        cancellation closes the channel."""
        try:
            call = self.session_stub.TerminationNotification(
                session_pb2.TerminationNotificationRequest(), metadata=self.metadata)
            try:
                resp = await call
            except grpc.RpcError as e:  # the watch itself failed (e.g. the connection dropped); calls will say why
                if not self._closed:
                    self._report_lost(f"the server's termination stream ended: {e.code()}")
                return
            if not self._closed:
                self.mark_dead(f"the server is shutting down ({resp.reason or 'no reason given'})")
        except asyncio.CancelledError:
            if not self._closed:
                self._closed = True
                self._stop_tasks(but=asyncio.current_task())
                await self._close_channel()
            raise

    async def _keepalive_loop(self) -> None:
        """Refresh the token at a third of the session duration; on failure retry with backoff, and
        once the token must have expired, mark the session dead."""
        failures = 0
        while not self._closed and not self._dead:
            await asyncio.sleep(self._keepalive_wait(failures))
            if self._closed:
                return
            try:
                await self.refresh()
                failures = 0
            except DHError as e:
                failures += 1
                if self._refresh_failed(e):
                    return
                self._report_lost(f"keep-alive failed: {e}")

    @property
    def keepalive_running(self) -> bool:
        return self._keepalive is not None and not self._keepalive.done()

    def _stop_tasks(self, but: Optional[asyncio.Task[Any]] = None) -> list[asyncio.Task[Any]]:
        stopped = []
        for task in (self._keepalive, self._watch, *self._tasks):
            if task is not None and task is not but and not task.done():
                task.cancel()
                stopped.append(task)
        return stopped

    # -- closing ----------------------------------------------------------------------------------

    async def close(self, timeout: float = 2.0) -> None:
        """End the server session and the channel; never raises, idempotent."""
        if self._closed:
            return
        for watch in list(self.watches):
            watch.cancel()
        loop = self._loop
        if loop is not None and loop is not asyncio.get_running_loop():
            # the channel belongs to the loop that connected: close it there, or, when that loop
            # is gone, only let go of it (the server ends the session when its duration passes)
            if loop.is_closed() or not loop.is_running():
                self._closed = True
                try:
                    self._stop_tasks()
                except RuntimeError:  # the loop is closed: its tasks ended with it
                    pass
                self._drop_channel()
                return
            try:
                done = asyncio.run_coroutine_threadsafe(self.close(timeout), loop)
                await asyncio.wait_for(asyncio.wrap_future(done), timeout + 5)
            except Exception:
                self._closed = True
            return
        if self._connected and not self._dead and self._token is not None:
            try:
                await self.session_stub.CloseSession(session_pb2.HandshakeRequest(), metadata=self.metadata,
                                                     timeout=timeout)
            except (grpc.RpcError, asyncio.TimeoutError):  # the server may be gone or the session expired
                pass
            except asyncio.CancelledError:
                if _really_cancelled():
                    self._closed = True
                    self._stop_tasks()
                    await self._close_channel()
                    raise
        self._closed = True
        stopped = self._stop_tasks()
        if stopped:
            await asyncio.wait(stopped, timeout=timeout)
        await self._close_channel()

    async def _close_channel(self) -> None:
        """Close the channel and drop every reference to it (see ``unary``), and to the tasks."""
        channel = self._drop_channel()
        if channel is None:
            return
        try:
            await channel.close()
        except Exception:
            pass

    def _drop_channel(self) -> Any:
        with self._stub_lock:
            channel, self.channel = self.channel, None
            for name in _Stub.names:
                setattr(self, name, _CLOSED_STUB)
        self._keepalive = self._watch = None
        self._tasks.clear()
        return channel






class AsyncStreamWatch:
    """A server stream read by a task of the session's loop through ``AsyncTransport.follow``, each
    message handed to the description's ``on_message`` in the loop (``AsyncTransport.watch``).
    ``cancel()`` may be called from any thread."""

    def __init__(self, transport: AsyncTransport, call: Watch) -> None:
        self._cancel: Optional[Any] = None
        self._cancelled = False
        follow = Follow(call.op, call.stub, call.method, call.request, each=lambda msg: self._each(call, msg),
                        opened=self._took, args=call.args)
        self._task = asyncio.get_running_loop().create_task(self._read(transport, follow, call))
        self._task.add_done_callback(_consume)

    def _took(self, cancel: Any) -> None:
        self._cancel = cancel
        if self._cancelled:
            cancel()

    def _each(self, desc: Watch, msg: Any) -> None:
        if not self._cancelled:
            desc.on_message(msg)

    async def _read(self, transport: AsyncTransport, follow: Follow, desc: Watch) -> None:
        error: Optional[BaseException] = None
        try:
            error = await transport.follow(follow)
        except DHError as e:  # the session closed before the call was made
            error = e
        except asyncio.CancelledError:
            pass
        finally:
            if desc.on_end is not None:
                desc.on_end(None if self._cancelled else error)

    @property
    def done(self) -> bool:
        return self._task.done()

    def cancel(self) -> None:
        self._cancelled = True
        if self._cancel is not None:
            self._cancel()  # thread-safe (AsyncTransport.follow)


def _consume(task: "asyncio.Task[Any]") -> None:
    if not task.cancelled():
        task.exception()
