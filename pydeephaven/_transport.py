"""The gRPC transport: channel, authentication, bearer token, keep-alive, call metadata, error
translation and the query log. It knows the wire, not tables: the public API sits above it."""

from __future__ import annotations

import base64
import logging
import queue
import threading
import time
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable, Generator, Optional, Sequence, Union

import grpc

from pydeephaven._proto import (
    application_pb2_grpc,
    config_pb2,
    config_pb2_grpc,
    console_pb2_grpc,
    hierarchicaltable_pb2_grpc,
    inputtable_pb2_grpc,
    object_pb2_grpc,
    partitionedtable_pb2_grpc,
    session_pb2,
    session_pb2_grpc,
    storage_pb2_grpc,
    table_pb2_grpc,
)
from pydeephaven._confirm import KnownSchemas
from pydeephaven._core.calls import DEFAULT_TIMEOUT, Follow, Unary, Watch
from pydeephaven._utils import describe_args
from pydeephaven.dherror import (
    CallCancelledError,
    DHError,
    SessionClosedError,
    UnreachableError,
    error_class,
)

log = logging.getLogger("pydeephaven")

#: Seconds the first call may take before a host/port is declared not a Deephaven server.
CONNECT_TIMEOUT = 10.0

#: Seconds after connecting the keep-alive thread starts the termination watch (a session closed
#: sooner needs none; a pipelined call or a session without keep-alive starts it at once).
WATCH_DELAY = 0.05

_open_transports: "weakref.WeakSet[Transport]" = weakref.WeakSet()


def auth_header(auth_type: str, auth_token: str) -> str:
    """The value of the ``authorization`` header that opens a session."""
    if auth_type == "Anonymous":
        return "Anonymous"
    if auth_type == "Basic":
        return "Basic " + base64.b64encode(auth_token.encode("utf-8")).decode("ascii")
    return f"{auth_type} {auth_token}"


_CONNECTION_WORDS = ("failed to connect", "connection refused", "socket closed", "goaway", "stream removed",
                     "broken pipe", "connection reset", "unreachable", "no route", "end of tcp stream")


def _hint(code: grpc.StatusCode, target: str, details: str = "") -> str:
    if code == grpc.StatusCode.UNAVAILABLE:
        d = details.lower()
        if not d or any(w in d for w in _CONNECTION_WORDS):
            return f"the server at {target} is unreachable"
        return ""
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return "not authenticated: the credentials were refused, or the session expired or was closed"
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return f"no answer from {target} in time"
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return "a message was larger than the server or client accepts"
    return ""


def tls_hint(details: str, use_tls: bool, has_client_cert: bool) -> str:
    """The cause of a failed first connection, in words, from gRPC's details when TLS is the
    cause ("" otherwise). Each case was seen against a real server: gRPC's details carry the
    OpenSSL reason on the client's side of the handshake (WRONG_VERSION_NUMBER,
    CERTIFICATE_VERIFY_FAILED, "Hostname Verification Check failed"), "Failed to create security
    handshaker" for PEM the client cannot use, but only TSI_DATA_CORRUPTED when the server refused
    the client's certificate (or its lack of one)."""
    d = details.lower()
    if use_tls:
        if "wrong_version_number" in d:
            return ("TLS handshake failed: the server does not speak TLS (it answered in plain text); "
                    "connect with use_tls=False, or check the port")
        if "hostname verification" in d:
            return ("TLS handshake failed: the server's certificate does not name this host (connect with a "
                    "host name the certificate lists)")
        if "certificate_verify_failed" in d or "certificate verify failed" in d:
            return ("TLS handshake failed: the server's certificate is not signed by a CA in tls_root_certs "
                    "(or the system roots when tls_root_certs is None), or does not name this host")
        if "security handshaker" in d:
            return ("the TLS settings cannot be used (on the client, before any connection): tls_root_certs, "
                    "client_cert_chain or client_private_key is not valid PEM, or the private key does not belong "
                    "to the certificate")
        if "tsi_data_corrupted" in d or "tsi_" in d or "handshake" in d or "ssl" in d:
            if not has_client_cert:
                return ("TLS handshake failed: the server refused the connection during the handshake; it may "
                        "require a client certificate (client_cert_chain and client_private_key)")
            return ("TLS handshake failed: the server refused the client certificate (not signed by a CA it "
                    "trusts, or not valid for client authentication)")
        return ""
    if "socket closed" in d or "tsi_" in d or "ssl" in d or "tls" in d:
        return ("the server closed the connection at once: it may require TLS "
                "(use_tls=True, tls_root_certs=...)")
    return ""


def sent_by_server(err: grpc.RpcError) -> bool:
    """Whether the server itself sent this status. A Deephaven server attaches the status as a
    ``grpc-status-details-bin`` trailer to every error it raises; a status gRPC's library makes
    on the client (a connection that failed or broke) comes without trailers."""
    try:
        trailers = err.trailing_metadata() if hasattr(err, "trailing_metadata") else None
    except Exception:
        return False
    return any(key == "grpc-status-details-bin" for key, _ in (trailers or ()))


def connect_error(target: str, why: str, code: Optional[grpc.StatusCode]) -> DHError:
    """The error of a first call (the one that opens the session) that failed: refused
    credentials, or no Deephaven server there (see ``error_class``)."""
    name = code.name if code is not None else None
    cls = error_class(name, connecting=True) if name else UnreachableError
    return cls(f"connect to {target} failed: {why}", code=name)


def closed_error(message: str) -> SessionClosedError:
    """The error of a call on a session that is closed or no longer usable."""
    return SessionClosedError(message)


def cancelled_error(op: str, args: Optional[dict[str, Any]]) -> CallCancelledError:
    """The error of a call whose answer was cancelled because the session was closed meanwhile."""
    return CallCancelledError(f"{op}({describe_args(args)}) failed: cancelled (the session was closed)",
                              code="CANCELLED")


def is_expired(err: DHError) -> bool:
    """Whether the server refused the session's token (expired, or ended on the server)."""
    return err.code == "UNAUTHENTICATED"


def not_yet_defined(err: DHError) -> bool:
    """Whether the server answered that the export asked for does not exist yet (a number no op
    has used so far, or whose op has not reached the server): it says so with an UNAVAILABLE
    of its own, which ``error_class`` makes a ServerError (an UNAVAILABLE of a broken connection
    is an UnreachableError)."""
    return err.code == "UNAVAILABLE" and not isinstance(err, UnreachableError)


def rpc_error(op: str, args: Optional[dict[str, Any]], err: BaseException, target: str) -> DHError:
    """A DHError naming the operation, its arguments and the server's own words; its class is the
    cause (``error_class``), its ``code`` the gRPC status name."""
    where = f"{op}({describe_args(args)})"
    if isinstance(err, grpc.RpcError) and hasattr(err, "code"):
        code = err.code()
        details = err.details() or ""
        hint = _hint(code, target, details)
        if "Details Logged w/ID" in details:
            hint = ("the server keeps the cause in its log under that ID; an unknown column or a formula "
                    "that does not compile are the usual causes")
        text = f"{where} failed: {code.name}: {details}" if details else f"{where} failed: {code.name}"
        if hint and hint not in text:
            text += f" ({hint})"
        return error_class(code.name, from_server=sent_by_server(err))(text, code=code.name)
    return DHError(f"{where} failed: {type(err).__name__}: {err}")


@dataclass
class CallStats:
    """Counts and total time of the round trips a session made, by operation."""

    calls: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    errors: int = 0

    def add(self, op: str, seconds: float, ok: bool) -> None:
        self.calls[op] = self.calls.get(op, 0) + 1
        self.seconds[op] = self.seconds.get(op, 0.0) + seconds
        if not ok:
            self.errors += 1

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())

    @property
    def total_seconds(self) -> float:
        return sum(self.seconds.values())

    # -- rows/bytes of transfers and a readable summary (issue 5) --

    rows: dict[str, int] = field(default_factory=dict)
    nbytes: dict[str, int] = field(default_factory=dict)

    def add_transfer(self, op: str, rows: int, nbytes: int) -> None:
        """Count the rows and bytes an Arrow transfer ``op`` moved (its call is counted by ``add``)."""
        self.rows[op] = self.rows.get(op, 0) + int(rows)
        self.nbytes[op] = self.nbytes.get(op, 0) + int(nbytes)

    def summary(self) -> str:
        """A table of the round trips by operation: calls, total and mean milliseconds, and the
        rows and bytes moved where known; slowest first."""
        total = self.total_calls
        head = (f"{total} call{'' if total == 1 else 's'}, {self.errors} error{'' if self.errors == 1 else 's'}, "
                f"{self.total_seconds * 1e3:.1f} ms in total")
        if not total:
            return head
        ops = sorted(self.calls, key=lambda o: -self.seconds.get(o, 0.0))
        width = max(9, *(len(o) for o in ops))
        lines = [head,
                 f"{'operation':<{width}} {'calls':>7} {'total ms':>10} {'mean ms':>9} {'rows':>12} {'bytes':>10}"]
        for op in ops:
            n, secs = self.calls[op], self.seconds.get(op, 0.0)
            rows = f"{self.rows[op]:,}" if op in self.rows else ""
            size = human_bytes(self.nbytes[op]) if op in self.nbytes else ""
            lines.append(f"{op:<{width}} {n:>7,} {secs * 1e3:>10.1f} {secs * 1e3 / n:>9.2f} {rows:>12} "
                         f"{size:>10}".rstrip())
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


def human_bytes(n: int) -> str:
    """Bytes for a person: 1.5 GiB, 300.0 MiB ..."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


class _Stub:
    """A gRPC service stub on the transport's channel, made the first time it is read. Only
    ``__get__`` is defined, so once made the stub sits in the instance's ``__dict__`` and later
    reads find it there at no cost; two threads reading it first at once make one each, which is
    harmless (a stub holds nothing but the channel)."""

    names: list[str] = []

    def __init__(self, make: Callable[[Any], Any]) -> None:
        self.make = make

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name
        _Stub.names.append(name)

    def __get__(self, obj: Any, owner: Optional[type] = None) -> Any:
        if obj is None:
            return self
        with obj._stub_lock:  # never made on a closed channel: gRPC crashes the process then
            stub = obj.__dict__.get(self.name)
            if stub is None:
                if obj.channel is None or obj.is_closed:
                    return _CLOSED_STUB
                stub = obj.__dict__[self.name] = self.make(obj.channel)
            return stub


class _ClosedStub:
    """Stands in for the stubs of a closed transport; its methods are never called, because every
    call checks first that the transport is open."""

    def __getattr__(self, name: str) -> Any:
        return _never_called


def _never_called(*args: Any, **kwargs: Any) -> Any:
    raise closed_error("the session is closed")


_CLOSED_STUB = _ClosedStub()


class TransportBase:
    """What the blocking and the asyncio transports share, without I/O: the target, the bearer
    token and the headers sent with every call, the server's configuration, the gRPC service stubs
    and the call counters."""

    def __init__(
        self,
        host: str,
        port: int,
        auth_type: str = "Anonymous",
        auth_token: str = "",
        never_timeout: bool = True,
        use_tls: bool = False,
        tls_root_certs: Optional[bytes] = None,
        client_cert_chain: Optional[bytes] = None,
        client_private_key: Optional[bytes] = None,
        client_opts: Optional[Sequence[tuple[str, Union[int, str]]]] = None,
        extra_headers: Optional[dict[bytes, bytes]] = None,
        connect_timeout: float = CONNECT_TIMEOUT,
    ) -> None:
        self.host, self.port = host, port
        self.target = f"{host}:{port}"
        self.use_tls = use_tls
        self.stats = CallStats()
        self.session_duration_ms = 300_000
        self.config: dict[str, str] = {}
        self._auth = (auth_type, auth_token)
        self._never_timeout = never_timeout
        self._tls = (tls_root_certs, client_cert_chain, client_private_key)
        self._client_opts = list(client_opts or [])
        self._connect_timeout = connect_timeout
        self._extra_headers = [
            ((k.decode() if isinstance(k, bytes) else str(k)).lower(), v.decode() if isinstance(v, bytes) else str(v))
            for k, v in (extra_headers or {}).items()
        ]
        self._token: Optional[str] = None
        self._token_time = 0.0
        self._dead: Optional[str] = None
        #: called (from a background thread or task) with the reason when the keep-alive or the
        #: termination watch finds the connection gone; set by sessions that reconnect
        self.on_lost: Optional[Callable[[str], None]] = None
        self._stub_lock = threading.Lock()  # the stubs' making and the channel's closing (_Stub)
        self.known_schemas = KnownSchemas()  # the server's schemas of the uploads so far (_confirm)
        #: the streams read in the background (``watch``), ended when the session closes
        self.watches: "weakref.WeakSet[Any]" = weakref.WeakSet()

    def _open_channel(self, grpc_module: Any) -> None:
        """Make the channel (of ``grpc`` or ``grpc.aio``) the stubs call on."""
        options = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1),
                   *self._client_opts]
        if self.use_tls:
            roots, chain, key = self._tls
            creds = grpc.ssl_channel_credentials(roots, key, chain)
            self._make_stubs(grpc_module.secure_channel(self.target, creds, options=options))
        else:
            self._make_stubs(grpc_module.insecure_channel(self.target, options=options))

    def _connect_failure(self, e: grpc.RpcError) -> str:
        """Why the first call failed, in words (its class and code come from the status)."""
        code = e.code() if hasattr(e, "code") else None
        details = (e.details() if hasattr(e, "details") else "") or ""
        if "http1" in details.lower() or "failed parsing http/2" in details.lower():
            return f"the server at {self.target} is not a Deephaven server: it answered in HTTP/1, not gRPC ({details})"
        if code == grpc.StatusCode.UNAUTHENTICATED:
            return (f"authentication failed for auth_type {self._auth[0]!r}: the server refused the credentials "
                    f"({details})")
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return f"no Deephaven server answered at {self.target} within {self._connect_timeout:g} s"
        if code == grpc.StatusCode.UNAVAILABLE:
            hint = tls_hint(details, self.use_tls, all(self._tls[1:]))
            return f"{hint} ({details})" if hint else f"cannot reach a Deephaven server at {self.target}: {details}"
        name = code.name if code is not None else ""
        return f"the server at {self.target} did not answer as a Deephaven server does: {name} {details}"

    def _keepalive_wait(self, failures: int) -> float:
        """Seconds before the next token refresh: a third of the session duration, sooner (with
        backoff) after failures."""
        period = max(self.session_duration_ms / 3000.0, 1.0)
        return period if failures == 0 else min(2.0 ** (failures - 1), period)

    def _refresh_failed(self, err: DHError) -> bool:
        """After a failed refresh: whether the session is over (the token must have expired, or the
        server refused it); it is then marked dead."""
        if time.monotonic() - self._token_time > self.session_duration_ms / 1000.0 or is_expired(err):
            self.mark_dead(f"keep-alive could not refresh the session token: {err}")
            return True
        return False

    def mark_dead(self, reason: str) -> None:
        raise NotImplementedError

    def _report_lost(self, reason: str) -> None:
        """Tell ``on_lost`` (when set) that the connection looks gone."""
        hook = self.on_lost
        if hook is not None and not self.is_closed:
            try:
                hook(reason)
            except Exception:  # noqa: BLE001 (a background path: nothing to raise to)
                log.debug("on_lost hook failed", exc_info=True)

    @property
    def is_closed(self) -> bool:
        raise NotImplementedError

    # the service stubs, each made on first use (making all seven took about 0.5 ms of a connect)
    session_stub = _Stub(session_pb2_grpc.SessionServiceStub)
    table_stub = _Stub(table_pb2_grpc.TableServiceStub)
    console_stub = _Stub(console_pb2_grpc.ConsoleServiceStub)
    config_stub = _Stub(config_pb2_grpc.ConfigServiceStub)
    app_stub = _Stub(application_pb2_grpc.ApplicationServiceStub)
    input_table_stub = _Stub(inputtable_pb2_grpc.InputTableServiceStub)
    object_stub = _Stub(object_pb2_grpc.ObjectServiceStub)
    partitioned_table_stub = _Stub(partitionedtable_pb2_grpc.PartitionedTableServiceStub)
    storage_stub = _Stub(storage_pb2_grpc.StorageServiceStub)
    hierarchical_table_stub = _Stub(hierarchicaltable_pb2_grpc.HierarchicalTableServiceStub)

    def _make_stubs(self, channel: Any) -> None:
        """Take ``channel`` as the one the stubs call on (they are made on first use)."""
        self.channel = channel
        for name in _Stub.names:
            self.__dict__.pop(name, None)

    def _read_config(self, resp: config_pb2.ConfigurationConstantsResponse) -> None:
        self.config = {k: v.string_value for k, v in resp.config_values.items()}
        try:
            self.session_duration_ms = int(self.config["http.session.durationMs"])
        except (KeyError, ValueError):
            pass

    def _take_token(self, md: Optional[Sequence[tuple[str, Any]]]) -> bool:
        for key, value in md or ():
            if key == "authorization":
                v = value.decode() if isinstance(value, bytes) else value
                if v.startswith("Bearer "):
                    self._token = v[len("Bearer "):]
                    self._token_time = time.monotonic()
                    return True
        return False

    # thread-safe: FlightPath reads them from worker threads
    @property
    def metadata(self) -> list[tuple[str, str]]:
        return [("authorization", f"Bearer {self._token}"), *self._extra_headers]

    @property
    def flight_headers(self) -> list[tuple[bytes, bytes]]:
        return [(k.encode(), v.encode()) for k, v in self.metadata]

    def record(self, op: str, seconds: float, ok: bool, detail: str = "") -> None:
        """Count a round trip made outside gRPC stubs (Arrow Flight)."""
        self.stats.add(op, seconds, ok)
        log.debug("%s %s %.2f ms", op, detail, seconds * 1e3)

    @property
    def dead_reason(self) -> Optional[str]:
        return self._dead


class Transport(TransportBase):
    """One authenticated gRPC channel to a Deephaven server.

    Holds no reference to the Session above it, so a Session nobody uses can be collected; its
    finalizer closes the transport, which stops the keep-alive thread.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._closed = threading.Event()
        self._open_channel(grpc)
        try:
            self._authenticate()
        except BaseException:
            self.channel.close()
            raise
        _open_transports.add(self)
        self._releases: "queue.Queue[Any]" = queue.Queue()
        self._releaser: Optional[threading.Thread] = None
        self._releaser_lock = threading.Lock()
        # The termination watch (see _watch_termination) is started by the keep-alive thread
        # (WATCH_DELAY), by the first pipelined call, or by the first call when there is no
        # keep-alive: not here, where it cost about a fifth of a connect.
        self._termination: Optional[Any] = None
        self._termination_lock = threading.Lock()
        self._keepalive: Optional[threading.Thread] = None
        if self._never_timeout:
            self._keepalive = threading.Thread(
                target=_keepalive_loop, args=(weakref.ref(self),), name="pydeephaven-keepalive", daemon=True
            )
            self._keepalive.start()

    def _watch_termination(self) -> None:
        """Open the call that stays open for the session's life: the server answers it only when
        it shuts down, and the answer marks the session dead. Besides telling us so, it keeps
        gRPC's polling thread alive, so that asynchronous calls (pipelined ops) do not each start
        a thread. Once per transport; not after close()."""
        with self._termination_lock:
            if self._termination is not None or self._closed.is_set():
                return
            try:
                call = self.session_stub.TerminationNotification.future(
                    session_pb2.TerminationNotificationRequest(), metadata=self.metadata)
            except Exception:  # the channel is unusable: the calls will say why
                return
            call.add_done_callback(_on_termination(weakref.ref(self)))
            self._termination = call

    # -- authentication -------------------------------------------------------------------------

    def _authenticate(self) -> None:
        start = time.perf_counter()
        try:
            resp, call = self.config_stub.GetConfigurationConstants.with_call(
                config_pb2.ConfigurationConstantsRequest(),
                metadata=[("authorization", auth_header(*self._auth)), *self._extra_headers],
                timeout=self._connect_timeout,
            )
        except grpc.RpcError as e:
            self.stats.add("Connect", time.perf_counter() - start, False)
            raise connect_error(self.target, self._connect_failure(e), e.code() if hasattr(e, "code") else None
                                ) from None
        self.stats.add("Connect", time.perf_counter() - start, True)
        if not self._take_token(call.initial_metadata()):
            raise connect_error(self.target, "the server sent no session token", None)
        self._read_config(resp)
        log.debug("connected to %s (session duration %d ms)", self.target, self.session_duration_ms)

    def refresh(self, timeout: float = CONNECT_TIMEOUT) -> None:
        """Ask for a fresh token (the keep-alive's work; also a cheap liveness probe)."""
        resp = self.unary(
            "RefreshToken", self.config_stub.GetConfigurationConstants, config_pb2.ConfigurationConstantsRequest(),
            timeout=timeout,
        )
        self._read_config(resp)

    # -- calls ----------------------------------------------------------------------------------

    def check_open(self, op: str) -> None:
        if self._closed.is_set():
            raise closed_error(f"{op} failed: the session is closed")
        if self._dead:
            raise closed_error(f"{op} failed: the session is no longer usable: {self._dead}")
        if self._termination is None and self._keepalive is None:
            self._watch_termination()  # no keep-alive thread to start it

    def unary(self, op: str, method: Any, request: Any, *, args: Optional[dict[str, Any]] = None,
              timeout: Optional[float] = DEFAULT_TIMEOUT) -> Any:
        """One unary call; gRPC errors become DHError naming the op and its arguments."""
        self.check_open(op)
        start = time.perf_counter()
        try:
            resp, call = method.with_call(request, metadata=self.metadata, timeout=timeout)
        except grpc.RpcError as e:
            elapsed = time.perf_counter() - start
            self.stats.add(op, elapsed, False)
            log.debug("%s(%s) failed after %.2f ms", op, describe_args(args), elapsed * 1e3)
            raise rpc_error(op, args, e, self.target) from None
        elapsed = time.perf_counter() - start
        self.stats.add(op, elapsed, True)
        self._take_token(call.initial_metadata())
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s(%s) %.2f ms", op, describe_args(args), elapsed * 1e3)
        return resp

    def perform(self, call: Any) -> Any:
        """Make a ``_core.calls.Unary`` or ``Stream`` call."""
        # the method is never a local of this frame: a failure's traceback would keep the
        # channel it belongs to alive (see unary)
        if isinstance(call, Unary):
            return self.unary(call.op, getattr(getattr(self, call.stub), call.method), call.request,
                                   args=call.args, timeout=call.timeout)
        if isinstance(call, Follow):
            return self.follow(call)
        out: list[Any] = []
        stream = self.stream(call.op, getattr(getattr(self, call.stub), call.method), call.request, args=call.args,
                             timeout=call.timeout)
        try:
            for item in stream:
                out.append(item)
                if call.until is not None and call.until(item):
                    break
        except DHError as e:
            if not call.partial:
                raise
            return out, e
        finally:
            stream.close()
        return (out, None) if call.partial else out

    def watch(self, call: Watch) -> "StreamWatch":
        """Read a server stream in a daemon thread (see ``_core.calls.Watch``)."""
        self.check_open(call.op)
        watch = StreamWatch(self, call)
        self.watches.add(watch)
        return watch

    def unary_future(self, op: str, method: Any, request: Any, *,
                     args: Optional[dict[str, Any]] = None) -> "PendingCall":
        """Send a unary call without waiting for its answer (pipelined operations)."""
        self.check_open(op)
        if self._termination is None:
            self._watch_termination()  # before the first asynchronous call (see _watch_termination)
        return PendingCall(self, op, args, method.future(request, metadata=self.metadata), time.perf_counter())

    def release_later(self, ticket: Any) -> None:
        """Queue a Release of ``ticket`` (a protobuf Ticket) for a background thread: for
        finalizers, which must not block."""
        if self._closed.is_set() or self._dead:
            return
        self._releases.put(ticket)
        if self._releaser is None:
            with self._releaser_lock:
                if self._releaser is None:
                    self._releaser = threading.Thread(target=_release_loop, args=(weakref.ref(self), self._releases),
                                                      name="pydeephaven-release", daemon=True)
                    self._releaser.start()

    def flush_releases(self, timeout: float = 10.0) -> None:
        """Wait (at most ``timeout``) until the queued releases have been sent."""
        deadline = time.monotonic() + timeout
        while self._releases.unfinished_tasks and time.monotonic() < deadline and not self._closed.is_set():
            time.sleep(0.005)

    def stream(self, op: str, method: Any, request: Any, *, args: Optional[dict[str, Any]] = None,
               timeout: Optional[float] = DEFAULT_TIMEOUT) -> Generator[Any, None, None]:
        """Iterate a server stream; errors become DHError. The call is cancelled when the iterator
        is closed early."""
        self.check_open(op)
        start = time.perf_counter()
        ok = False
        call = method(request, metadata=self.metadata, timeout=timeout)
        try:
            for item in call:
                yield item
            ok = True
        except grpc.RpcError as e:
            raise rpc_error(op, args, e, self.target) from None
        finally:
            call.cancel()
            elapsed = time.perf_counter() - start
            self.stats.add(op, elapsed, ok)
            log.debug("%s(%s) stream %.2f ms", op, describe_args(args), elapsed * 1e3)

    def follow(self, call: Follow) -> Optional[DHError]:
        """Read a server stream kept open, handing each message to ``call.each`` as it arrives
        (blocks this thread until the stream ends); ``call.opened`` gets the call's ``cancel``,
        which works from any thread. None when the server ended the stream, else the DHError that
        ended it (``CallCancelledError`` after a cancel or a close of the session)."""
        self.check_open(call.op)
        start = time.perf_counter()
        error: Optional[DHError] = None
        rpc = getattr(getattr(self, call.stub), call.method)(call.request, metadata=self.metadata)
        try:
            call.opened(rpc.cancel)
            for item in rpc:
                call.each(item)
        except grpc.RpcError as e:
            error = rpc_error(call.op, call.args, e, self.target)
        finally:
            rpc.cancel()
            self.stats.add(call.op, time.perf_counter() - start, error is None)
            log.debug("%s(%s) followed for %.2f ms", call.op, describe_args(call.args),
                      (time.perf_counter() - start) * 1e3)
        return error

    # -- lifecycle ------------------------------------------------------------------------------

    @property
    def is_closed(self) -> bool:
        return self._closed.is_set()

    def mark_dead(self, reason: str) -> None:
        if not self._dead:
            self._dead = reason
            log.warning("pydeephaven session to %s is no longer usable: %s", self.target, reason)
            self._report_lost(reason)

    def close(self, timeout: float = 2.0) -> None:
        """End the server session and the channel; never raises, idempotent."""
        if self._closed.is_set():
            return
        for watch in list(self.watches):
            watch.cancel()
        if not self._dead and self._token is not None:
            try:
                self.session_stub.CloseSession(session_pb2.HandshakeRequest(), metadata=self.metadata, timeout=timeout)
            except Exception:  # the server may be gone or the session expired: nothing to end then
                pass
        with self._termination_lock:
            self._closed.set()
            termination = self._termination
        self._releases.put(None)
        # closing the channel ends every call on it, the termination watch too (cancelling the
        # watch first only made the close wait for gRPC's polling thread to handle that)
        with self._stub_lock:
            try:
                self.channel.close()
            except Exception:
                try:
                    if termination is not None:
                        termination.cancel()
                except Exception:
                    pass
        _open_transports.discard(self)


class StreamWatch:
    """A server stream read in a daemon thread through ``Transport.follow``, each message handed to
    the description's ``on_message`` (``Transport.watch``). The call is made before the constructor
    returns; ``cancel()`` ends it and, from another thread, waits (briefly) for the reading thread,
    so that no message is handed on after it returns."""

    def __init__(self, transport: Transport, call: Watch) -> None:
        self._lock = threading.Lock()
        self._cancel: Optional[Callable[[], None]] = None
        self._cancelled = False
        self._opened = threading.Event()
        self._done = threading.Event()
        follow = Follow(call.op, call.stub, call.method, call.request, each=lambda msg: self._each(call, msg),
                        opened=self._took, args=call.args)
        self._thread = threading.Thread(target=self._read, args=(transport, follow, call), daemon=True,
                                        name=f"pydeephaven-{call.op}")
        self._thread.start()
        self._opened.wait(CONNECT_TIMEOUT)

    def _took(self, cancel: Callable[[], None]) -> None:
        with self._lock:
            self._cancel = cancel
            cancelled = self._cancelled
        self._opened.set()
        if cancelled:
            cancel()

    def _each(self, desc: Watch, msg: Any) -> None:
        if not self._cancelled:
            desc.on_message(msg)

    def _read(self, transport: Transport, follow: Follow, desc: Watch) -> None:
        error: Optional[DHError] = None
        try:
            error = transport.follow(follow)
        except DHError as e:  # the session closed before the call was made
            error = e
        finally:
            self._opened.set()
            self._done.set()
            if desc.on_end is not None:
                desc.on_end(None if self._cancelled else error)

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def cancel(self) -> None:
        with self._lock:
            self._cancelled = True
            cancel = self._cancel
        if cancel is not None:
            cancel()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=5)


class PendingCall:
    """The answer to a unary call still in flight; ``result()`` waits for it (once)."""

    def __init__(self, transport: Transport, op: str, args: Optional[dict[str, Any]], future: Any,
                 start: float) -> None:
        self.transport, self.op, self.args, self.future, self.start = transport, op, args, future, start
        self._done = False

    def result(self) -> Any:
        t = self.transport
        try:
            resp = self.future.result()
        except grpc.RpcError as e:
            if not self._done:
                self._done = True
                t.stats.add(self.op, time.perf_counter() - self.start, False)
            raise rpc_error(self.op, self.args, e, t.target) from None
        except grpc.FutureCancelledError:
            raise cancelled_error(self.op, self.args) from None
        if not self._done:
            self._done = True
            elapsed = time.perf_counter() - self.start
            t.stats.add(self.op, elapsed, True)
            t._take_token(self.future.initial_metadata())
            if log.isEnabledFor(logging.DEBUG):
                log.debug("%s(%s) %.2f ms (pipelined)", self.op, describe_args(self.args), elapsed * 1e3)
        return resp


def _on_termination(ref: "weakref.ref[Transport]") -> Any:
    def done(future: Any) -> None:
        t = ref()
        if t is None or t.is_closed or future.cancelled():
            return
        try:
            resp = future.result()
            reason = f"the server is shutting down ({resp.reason or 'no reason given'})"
        except Exception as e:  # the watch itself failed (e.g. the connection dropped); calls will say why
            t._report_lost(f"the server's termination stream ended: {e}")
            return
        t.mark_dead(reason)
    return done


def _release_loop(ref: "weakref.ref[Transport]", releases: "queue.Queue[Any]") -> None:
    while True:
        ticket = releases.get()
        try:
            t = ref()
            if ticket is None or t is None or t.is_closed:
                return
            try:
                t.session_stub.Release(session_pb2.ReleaseRequest(id=ticket), metadata=t.metadata, timeout=10)
            except Exception:
                pass  # the server may have dropped it already (session ended, export failed)
            del t
        finally:
            releases.task_done()


def _keepalive_loop(ref: "weakref.ref[Transport]") -> None:
    """Start the termination watch, then refresh the token at a third of the session duration;
    on failure retry with backoff, and once the token must have expired, mark the session dead."""
    t = ref()
    if t is None:
        return
    closed = t._closed
    del t
    if closed.wait(WATCH_DELAY):
        return  # closed at once: no watch needed (and none to compete with the close)
    t = ref()
    if t is not None:
        t._watch_termination()
    del t
    failures = 0
    while True:
        t = ref()
        if t is None or t.is_closed or t.dead_reason:
            return
        wait = t._keepalive_wait(failures)
        closed = t._closed
        del t
        if closed.wait(wait):
            return
        t = ref()
        if t is None or t.is_closed:
            return
        try:
            t.refresh()
            failures = 0
        except DHError as e:
            failures += 1
            if t._refresh_failed(e):
                return
            t._report_lost(f"keep-alive failed: {e}")
        del t


def close_all() -> None:
    """Close every transport still open (at interpreter exit)."""
    for t in list(_open_transports):
        t.close(timeout=0.5)

