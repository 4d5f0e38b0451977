"""Uploads for the tests of failed and confirmed uploads: readers that fail part-way, and waits
for the server's export list."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Iterator, Optional

import numpy as np
import pyarrow as pa

from pydeephaven import Session
from pydeephaven.aio import AsyncSession

SCHEMA = pa.schema({"A": pa.int64(), "S": pa.string()})


def batch(start: int, n: int) -> pa.RecordBatch:
    return pa.record_batch({"A": pa.array(np.arange(start, start + n, dtype=np.int64)),
                            "S": pa.array([f"s{i}" for i in range(start, start + n)])}, schema=SCHEMA)


def failing_reader(good_batches: int, rows: int = 1000, error: Optional[BaseException] = None) -> Any:
    """A RecordBatchReader that yields ``good_batches`` batches and then raises ``error``
    (ValueError("bad row") by default)."""
    def gen() -> Iterator[pa.RecordBatch]:
        for i in range(good_batches):
            yield batch(i * rows, rows)
        raise error if error is not None else ValueError("bad row")

    return pa.RecordBatchReader.from_batches(SCHEMA, gen())


def wait_exports(session: Session, expected: set[bytes], seconds: float = 20.0) -> set[bytes]:
    """The session's live exports, polled until they are ``expected`` or the deadline passes (the
    server releases asynchronously)."""
    deadline = time.monotonic() + seconds
    got = {e.bytes for e in session.live_exports()}
    while got != expected and time.monotonic() < deadline:
        time.sleep(0.1)
        got = {e.bytes for e in session.live_exports()}
    return got


async def await_exports(session: AsyncSession, expected: set[bytes], seconds: float = 20.0) -> set[bytes]:
    deadline = time.monotonic() + seconds
    got = {e.bytes for e in await session.live_exports()}
    while got != expected and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        got = {e.bytes for e in await session.live_exports()}
    return got
