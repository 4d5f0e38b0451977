"""A fault-injecting TCP proxy on loopback, between a test's client and its server.

``FaultProxy(target_port)`` listens on 127.0.0.1 (``.port``) and relays every connection to the
server at 127.0.0.1:``target_port``. Faults, each made on purpose by the test:

- ``drop_all()``: every open connection is reset at once (the server went away for the client);
  new connections are relayed as before.
- ``blackhole(seconds)``: for that long nothing is carried either way and new connections are held
  unanswered, while the sockets stay open: a half-open network, found only by keep-alive pings.
  Bytes read before the hold are delivered after it, as TCP retransmission would.
- ``delay(seconds, duration)``: for ``duration`` seconds each chunk is delivered ``seconds`` after
  it was read, in order (a slow link; throughput is kept).
- ``cut_after`` (constructor): the first connection that carries more than that many bytes from
  the server is cut there, once; ``cuts`` counts it.
- ``close()``: the proxy stops and every connection is reset (the server is gone for good).

Every thread waits in steps of at most 0.2 s and ends when the proxy closes.
"""

from __future__ import annotations

import collections
import socket
import struct
import threading
import time
from typing import Optional

STEP = 0.2


def _reset(sock: socket.socket) -> None:
    """Close with a TCP reset (SO_LINGER 0), as a crashed peer or a dropped route does."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


class _Link:
    """One relayed connection: two directions, each a reader and a writer thread joined by a queue
    of (due time, bytes)."""

    def __init__(self, proxy: "FaultProxy", client: socket.socket, server: socket.socket) -> None:
        self.proxy = proxy
        self.socks = (client, server)
        self.closed = threading.Event()
        self.threads: list[threading.Thread] = []
        for src, dst, downstream in ((client, server, False), (server, client, True)):
            queue: "collections.deque[tuple[float, bytes]]" = collections.deque()
            ready = threading.Condition()
            for target, args in ((self._read, (src, queue, ready, downstream)), (self._write, (dst, queue, ready))):
                th = threading.Thread(target=target, args=args, name="faultproxy", daemon=True)
                self.threads.append(th)
        for th in self.threads:
            th.start()

    def _read(self, src: socket.socket, queue: "collections.deque[tuple[float, bytes]]",
              ready: threading.Condition, downstream: bool) -> None:
        carried = 0
        while not self.closed.is_set():
            if self.proxy.held():
                time.sleep(STEP / 4)
                continue
            try:
                data = src.recv(1 << 16)
            except socket.timeout:
                continue
            except OSError:
                break
            if not data:
                break
            carried += len(data)
            if downstream and self.proxy._should_cut(carried):
                break
            with ready:
                queue.append((time.monotonic() + self.proxy.current_delay(), data))
                ready.notify()
        self.close()

    def _write(self, dst: socket.socket, queue: "collections.deque[tuple[float, bytes]]",
               ready: threading.Condition) -> None:
        while not self.closed.is_set():
            with ready:
                if not queue:
                    ready.wait(STEP)
                    continue
                due, data = queue[0]
            wait = due - time.monotonic()
            if wait > 0 or self.proxy.held():
                time.sleep(min(max(wait, 0.0), STEP) if wait > 0 else STEP / 4)
                continue
            with ready:
                queue.popleft()
            try:
                dst.sendall(data)
            except OSError:
                break
        self.close()

    def close(self, reset: bool = False) -> None:
        if self.closed.is_set():
            return
        self.closed.set()
        for s in self.socks:
            if reset:
                _reset(s)
            else:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

    def join(self, seconds: float) -> None:
        for th in self.threads:
            if th is not threading.current_thread():
                th.join(seconds)


class FaultProxy:
    def __init__(self, target_port: int, cut_after: Optional[int] = None) -> None:
        self.target_port = target_port
        self.cut_after = cut_after
        self.cuts = 0
        self.connections = 0  # accepted so far
        self._lock = threading.Lock()
        self._hold_until = 0.0
        self._delay = (0.0, 0.0)  # (seconds, until)
        self._links: list[_Link] = []
        self._stopped = threading.Event()
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self._listener.settimeout(STEP)
        self.port: int = self._listener.getsockname()[1]
        self._acceptor = threading.Thread(target=self._accept, name="faultproxy-accept", daemon=True)
        self._acceptor.start()

    # -- the faults -------------------------------------------------------------------------------

    def drop_all(self) -> int:
        """Reset every open connection; returns how many there were."""
        with self._lock:
            links, self._links = self._links, []
        for link in links:
            link.close(reset=True)
        for link in links:
            link.join(2)
        return len(links)

    def blackhole(self, seconds: float) -> None:
        """Carry nothing, either way, for ``seconds`` from now (returns at once)."""
        with self._lock:
            self._hold_until = time.monotonic() + seconds

    def delay(self, seconds: float, duration: float) -> None:
        """Deliver each chunk ``seconds`` late for the next ``duration`` seconds (returns at once)."""
        with self._lock:
            self._delay = (seconds, time.monotonic() + duration)

    def close(self) -> None:
        self._stopped.set()
        try:
            self._listener.close()
        except OSError:
            pass
        self.drop_all()
        self._acceptor.join(2)

    # -- state the links read ---------------------------------------------------------------------

    def held(self) -> bool:
        return time.monotonic() < self._hold_until

    def current_delay(self) -> float:
        seconds, until = self._delay
        return seconds if time.monotonic() < until else 0.0

    def _should_cut(self, carried: int) -> bool:
        with self._lock:
            if self.cut_after is None or self.cuts or carried <= self.cut_after:
                return False
            self.cuts += 1
            return True

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except (socket.timeout, OSError):
                continue
            while self.held() and not self._stopped.is_set():
                time.sleep(STEP / 4)  # held unanswered, as a black hole does
            try:
                server = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                _reset(client)  # the server is not there: refused, as it would be without us
                continue
            for s in (client, server):
                s.settimeout(STEP)
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self.connections += 1
                self._links = [x for x in self._links if not x.closed.is_set()]
                self._links.append(_Link(self, client, server))
