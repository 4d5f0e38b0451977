"""The server's log stream (``ConsoleService.SubscribeToLogs``) and what ``run_script`` builds on
it: the output a script printed, and the watchdog that stops a script past its timeout. No I/O:
the flows in ``session_base`` make the calls.

What the server does (deephaven-server 42.7, checked on it):

- The stream carries every log line of the server, of every session and thread (the protocol has
  no console or session to filter by): the server's own log (levels INFO, WARN, ERROR ...) and
  whatever the server process writes to stdout and stderr (levels ``STDOUT`` and ``STDERR``),
  one record per line (a line is recorded when its newline is written: a last line printed
  without one waits until the next newline on that stream, which may come from a later script).
- It first replays the server's recent history (about the last thousand records), then goes on
  live; ``last_seen_log_timestamp`` drops the records up to that time (server clock, micros).
- Records are queued per subscriber as they are logged, in order, and sent about every 100 ms.
  Their times have millisecond resolution (micros, multiples of 1000).
- Scripts run one at a time, server-wide, on one thread; each command first logs (INFO)
  "Evaluating command: <its code>".
- ``CancelCommand`` is not implemented: the server answers UNIMPLEMENTED, whatever the ids.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

from pydeephaven._core.watch import Followed
from pydeephaven._proto import console_pb2
from pydeephaven.dherror import DHError

__all__ = ["LogEntry", "LogFollow", "LogSubscription", "OutputCollector", "StreamEnd", "log_request", "watchdog_script",
           "marker_script", "queue_feed", "tagged", "OUTPUT_LEVELS", "CANCEL_GRACE_SECONDS", "MARKER_WAIT_SECONDS"]

#: The levels of what the server's processes print (Python's print() in a script: STDOUT).
OUTPUT_LEVELS = ("STDOUT", "STDERR")
#: How long past a script's timeout the client waits for the server's own stop to be reported.
CANCEL_GRACE_SECONDS = 2.0
#: How long after a script's answer the client waits for the end of its output to arrive.
MARKER_WAIT_SECONDS = 5.0
#: How far before the client's clock (corrected by what it knows of the server's) a capture asks
#: the replay to start.
_SINCE_MARGIN_US = 5_000_000


@dataclass(frozen=True)
class LogEntry:
    """One record of the server's log stream: ``time`` (microseconds since the epoch, the
    server's clock; millisecond resolution), ``level`` ("STDOUT", "STDERR", "INFO", "WARN",
    "ERROR" ...) and ``message`` (without the line's newline)."""

    time: int
    level: str
    message: str

    @classmethod
    def of(cls, msg: Any) -> "LogEntry":
        text = msg.message
        return cls(int(msg.micros), msg.log_level, text[:-1] if text.endswith("\n") else text)

    @property
    def seconds(self) -> float:
        """``time`` as seconds since the epoch (for ``datetime.fromtimestamp``)."""
        return self.time / 1e6


def log_request(levels: Optional[Sequence[str]] = None, since: Optional[float] = None,
                where: str = "logs") -> console_pb2.LogSubscriptionRequest:
    """The subscription: only ``levels`` (all when None), only records after ``since`` (seconds
    since the epoch; None: the server's whole recent history first)."""
    req = console_pb2.LogSubscriptionRequest()
    if levels is not None:
        if isinstance(levels, str) or not all(isinstance(lv, str) for lv in levels):
            raise DHError(f"{where}: levels must be a list of level names such as ['STDOUT', 'STDERR'], "
                          f"got {levels!r}")
        req.levels.extend(levels)
    if since is not None:
        if isinstance(since, bool) or not isinstance(since, (int, float)):
            raise DHError(f"{where}: since must be seconds since the epoch (time.time()), got {since!r}")
        req.last_seen_log_timestamp = max(0, int(since * 1e6))
    return req


class LogFollow(Followed):
    """The log stream of ``on_log`` and ``logs()``: each record, as a ``LogEntry``, to
    ``on_entry`` (in the reading thread or the event loop), then ``on_end(error or None)`` once.

    Kept through a reconnect (a session with ``reconnect``): the new stream asks for the records
    from the time of the last one delivered, and those of that millisecond already delivered are
    skipped, so what the server logged while the connection was down arrives, once (a restarted
    server has a new log: what the old one logged last may be gone)."""

    stub = "console_stub"
    method = "SubscribeToLogs"

    def __init__(self, op: str, levels: Optional[Sequence[str]], since: Optional[float],
                 on_entry: Callable[[LogEntry], None], on_end: Optional[Callable[[Optional[BaseException]], None]]
                 ) -> None:
        super().__init__()
        self.op = op
        self._first = log_request(levels, since, op)
        self._on_entry = on_entry
        self._on_end = on_end
        self._last_us: Optional[int] = None  # the time of the newest record delivered
        self._at_last: Counter[LogEntry] = Counter()  # the records delivered with that time
        self._skip: Counter[LogEntry] = Counter()  # of those, the ones the new stream sends again

    def _request(self) -> Any:
        req = console_pb2.LogSubscriptionRequest()
        req.CopyFrom(self._first)
        if self._last_us is not None:
            req.last_seen_log_timestamp = self._last_us - 1  # (times are whole milliseconds)
            self._skip = Counter(self._at_last)
        return req

    def _take(self, msg: Any) -> None:
        entry = LogEntry.of(msg)
        if self._skip[entry] > 0:
            self._skip[entry] -= 1
            return
        if self._last_us is None or entry.time > self._last_us:
            self._last_us = entry.time
            self._at_last = Counter()
        if entry.time == self._last_us:
            self._at_last[entry] += 1
        self._on_entry(entry)

    def _ended(self, error: Optional[DHError]) -> None:
        if self._on_end is not None:
            self._on_end(error)


class LogSubscription:
    """A running ``on_log`` subscription: ``close()`` (or ``cancel()``) ends it; also a context
    manager. The session's ``close()`` ends it too. ``error``: why the server or the network ended
    it, if one did; ``resumes``: how many times it was opened again after a reconnect."""

    def __init__(self, following: Any) -> None:
        self._following = following

    @property
    def error(self) -> Optional[BaseException]:
        return self._following.followed.error

    @property
    def resumes(self) -> int:
        return int(self._following.followed.resumes)

    def close(self) -> None:
        """Stop the subscription (idempotent; the callback is not called after this returns when
        called from outside the callback, in the blocking API)."""
        self._following.stop()

    cancel = close

    @property
    def is_active(self) -> bool:
        return not self._following.followed.ended

    def __enter__(self) -> "LogSubscription":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> "LogSubscription":
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"LogSubscription({'active' if self.is_active else 'ended'})"


def start_tag(token: str) -> str:
    """The comment ``tagged`` puts at the end of a Python command: found in the line the server
    logs when it begins the command."""
    return f"pydeephaven-run-{token}"


def end_tag(token: str) -> str:
    return f"pydeephaven-end-{token}"


def tagged(code: str, token: str) -> str:
    """Python ``code`` with a last comment line naming the command (line numbers unchanged)."""
    return f"{code}\n# {start_tag(token)}\n"


class OutputCollector:
    """The log records that arrive while ``run_script`` captures a script's output (fed from the
    reading thread or the event loop, read by the flow).

    A script's output is the STDOUT and STDERR records timed within its run (the server's start
    and end times of the command) and, when the server's line for the command's start was seen
    (a Python command carries ``start_tag``), after that line: records are whole milliseconds, and
    the line of a script that ended in the same millisecond would count otherwise. They are all
    queued for this subscriber by the time the command's answer is sent, so once a later record
    arrives (the start of the no-op ``marker_script`` the client sends after it) the output is
    complete."""

    def __init__(self, token: str) -> None:
        self._start = start_tag(token)
        self._end = end_tag(token)
        self._entries: list[LogEntry] = []
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._done = False
        #: why the stream ended before the capture did (e.g. the server found the client too slow)
        self.error: Optional[BaseException] = None

    def add(self, msg: Any) -> None:
        entry = LogEntry.of(msg)
        with self._lock:
            self._entries.append(entry)
            self._changed.notify_all()

    def end(self, error: Optional[BaseException]) -> None:
        with self._lock:
            self._done = True
            self.error = error
            self._changed.notify_all()

    def _complete(self, after_us: int) -> bool:
        if self._done:
            return True
        return any(e.time > after_us or (e.level not in OUTPUT_LEVELS and self._end in e.message)
                   for e in reversed(self._entries))

    def has_after(self, after_us: int) -> bool:
        """Whether a record later than ``after_us`` has arrived (nothing before it can come)."""
        with self._lock:
            return any(e.time > after_us for e in reversed(self._entries))

    def wait_complete(self, after_us: int, timeout: float = MARKER_WAIT_SECONDS) -> bool:
        """Wait (at most ``timeout``) until a record later than ``after_us``, or the marker
        command's, has arrived; whether it did."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while not self._complete(after_us):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
            return True

    def _after_start(self) -> Optional[list[LogEntry]]:
        for i, e in enumerate(self._entries):
            if e.level not in OUTPUT_LEVELS and self._start in e.message:
                return self._entries[i + 1:]
        return None

    def lines(self, start_ns: int, end_ns: int) -> tuple[LogEntry, ...]:
        """The output records of a command that ran from ``start_ns`` to ``end_ns`` (server clock)."""
        first = start_ns // 1_000_000 * 1000  # the records' times are whole milliseconds
        last = end_ns // 1000
        with self._lock:
            after = self._after_start()
            pool = self._entries if after is None else after
            return tuple(e for e in pool if e.level in OUTPUT_LEVELS and first <= e.time <= last)

    def since_command(self) -> tuple[LogEntry, ...]:
        """The output records after the server's line for the command's start (a command that
        has not answered: its times are unknown); none when that line was not seen."""
        with self._lock:
            return tuple(e for e in self._after_start() or () if e.level in OUTPUT_LEVELS)


def capture_since(clock_offset_us: Optional[int]) -> Optional[float]:
    """Where a capture asks the replay to start (seconds, server clock): a little before now,
    corrected by ``clock_offset_us`` (a lower bound of server clock minus client clock); None (the
    whole history) while the server's clock is unknown."""
    if clock_offset_us is None:
        return None
    return (time.time() * 1e6 + clock_offset_us - _SINCE_MARGIN_US) / 1e6


def marker_script(token: str, language: str = "python") -> str:
    """A command that does nothing (a comment of ``language``); the server logs its start, which
    ends a capture."""
    comment = "#" if language == "python" else "//"
    return f"{comment} {end_tag(token)}: the end of the output of the command before\n"


def watchdog_script(script: str, timeout: float, token: str) -> str:
    """``script`` run under a watchdog on the server: ``timeout`` seconds after the script starts
    (the time it waits behind other scripts is not counted) a thread of the server's Python raises
    an exception in the script's thread (``CommandTimeout_<token>``, a BaseException, so that an
    ``except Exception`` in the script does not swallow it). Python checks for it between two
    instructions: a loop stops at once, a blocking call (time.sleep, a read) first returns. The
    script runs in the global scope as it would alone; its tracebacks gain two lines of the
    watchdog."""
    return f'''def __pydeephaven_watchdog(code, seconds, token):
    import ctypes, threading
    stop = type("CommandTimeout_" + token, (BaseException,), {{}})
    thread = ctypes.c_ulong(threading.get_ident())
    lock = threading.Lock()
    state = [False]
    def fire():
        with lock:
            if not state[0]:
                ctypes.pythonapi.PyThreadState_SetAsyncExc(thread, ctypes.py_object(stop))
    timer = threading.Timer(seconds, fire)
    timer.daemon = True
    timer.start()
    try:
        exec(compile(code, "<string>", "exec"), globals())
    finally:
        with lock:
            state[0] = True
        timer.cancel()
        ctypes.pythonapi.PyThreadState_SetAsyncExc(thread, None)
try:
    __pydeephaven_watchdog({script!r}, {float(timeout)!r}, {token!r})
finally:
    del __pydeephaven_watchdog
'''


def stopped_by_watchdog(error_message: str, token: str) -> bool:
    """Whether a failed command's error is the watchdog's exception (its class name holds the
    command's token, which nothing else knows)."""
    return f"CommandTimeout_{token}" in error_message


@dataclass(frozen=True)
class StreamEnd:
    """Queued by ``logs()`` iterators when the stream ends: None, or why (a DHError)."""

    error: Optional[BaseException]


def queue_feed(put: Callable[[Any], None]) -> tuple[Callable[[Any], None], Callable[[Optional[BaseException]], None]]:
    """The ``on_entry`` and ``on_end`` of a ``logs()`` iterator feeding a queue by ``put``
    (functions of the queue only: the reading thread or task keeps no iterator alive)."""
    return put, (lambda error: put(StreamEnd(error)))
