"""A loopback TCP relay in front of the test server, to make the network fail on purpose."""

from __future__ import annotations

import socket
import threading
from typing import Optional


class Relay:
    """Relays 127.0.0.1:``port`` to the server at ``target``. ``kill()`` makes the server vanish for
    the client; with ``cut_after`` the first connection that carries more than that many bytes
    from the server is cut there, once (the next connections are relayed whole)."""

    def __init__(self, target: int, cut_after: Optional[int] = None) -> None:
        self.target = target
        self.cut_after = cut_after
        self.cuts = 0
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(16)
        self.lsock.settimeout(0.2)
        self.port = self.lsock.getsockname()[1]
        self.stopped = threading.Event()
        self.socks: list[socket.socket] = []
        self._lock = threading.Lock()
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                c, _ = self.lsock.accept()
            except (socket.timeout, OSError):
                continue
            s = socket.create_connection(("127.0.0.1", self.target))
            for a in (c, s):
                a.settimeout(0.2)
                self.socks.append(a)
            for a, b, downstream in ((c, s, False), (s, c, True)):
                th = threading.Thread(target=self._pump, args=(a, b, downstream), daemon=True)
                th.start()
                self.threads.append(th)

    def _should_cut(self, carried: int) -> bool:
        with self._lock:
            if self.cut_after is None or self.cuts or carried <= self.cut_after:
                return False
            self.cuts += 1
            return True

    def _pump(self, a: socket.socket, b: socket.socket, downstream: bool) -> None:
        carried = 0
        while not self.stopped.is_set():
            try:
                data = a.recv(1 << 16)
            except socket.timeout:
                continue
            except OSError:
                break
            if not data:
                break
            carried += len(data)
            if downstream and self._should_cut(carried):
                break
            try:
                b.sendall(data)
            except OSError:
                break
        for x in (a, b):
            try:
                x.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def kill(self) -> None:
        self.stopped.set()
        for s in [self.lsock, *self.socks]:
            try:
                s.close()
            except OSError:
                pass
        for th in self.threads:
            th.join(2)
