"""Reads with a bounded wait, and child processes that are always stopped: a test that waits on a
stream or a child fails after a deadline instead of hanging the run."""

from __future__ import annotations

import os
import select
import subprocess
import threading
import time
from typing import IO, Any, Iterator, TypeVar

T = TypeVar("T")


def next_within(it: Iterator[T], seconds: float = 30.0) -> T:
    """``next(it)``, waiting at most ``seconds``; whatever ``next`` raises (StopIteration too) is
    raised here. The read runs in a daemon thread, which a timed-out read leaves behind."""
    box: dict[str, Any] = {}

    def read() -> None:
        try:
            box["value"] = next(it)
        except BaseException as e:  # handed to the caller
            box["error"] = e

    th = threading.Thread(target=read, name="test-bounded-next", daemon=True)
    th.start()
    th.join(seconds)
    if th.is_alive():
        raise AssertionError(f"no item within {seconds} s")
    if "error" in box:
        raise box["error"]
    return box["value"]


def readline_within(stream: IO[str], seconds: float = 30.0) -> str:
    """One line of a child's text pipe, waiting at most ``seconds`` (select on its descriptor, so
    the pipe must not be read through another buffered reader at the same time)."""
    deadline = time.monotonic() + seconds
    fd = stream.fileno()
    chunks: list[bytes] = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no complete line within {seconds} s (got {b''.join(chunks)!r})")
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            continue
        byte = os.read(fd, 1)  # one byte at a time: nothing past the newline is taken from the pipe
        if not byte or byte == b"\n":
            return b"".join(chunks + [byte]).decode()
        chunks.append(byte)


def stop_child(proc: subprocess.Popen, grace: float = 5.0) -> None:
    """Stop a child by its pid if it still runs (terminate, then kill), and reap it."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=grace)
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None:
            try:
                stream.close()
            except OSError:
                pass
