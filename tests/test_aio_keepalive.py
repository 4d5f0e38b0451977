"""AsyncSession authentication, keep-alive and server loss, against a second real server with a
pre-shared key and a short (10 s) session duration (as in test_auth_keepalive.py for the sync
Session). The test that stops a server on purpose starts one of its own."""

from __future__ import annotations

import asyncio
import time

import pytest

from pydeephaven import DHError
from pydeephaven.aio import AsyncSession
from pydeephaven.embedded import PSK_AUTH

from tests.support.psk import KEY



def test_right_key_works_and_wrong_keys_say_so(psk_server) -> None:
    async def main() -> None:
        async with AsyncSession(psk_server.host, psk_server.port, auth_type=PSK_AUTH, auth_token=KEY) as s:
            assert (await (await s.empty_table(3)).to_arrow()).num_rows == 3
        for auth_type, token in [(PSK_AUTH, "wrong-key-66"), ("Anonymous", ""), ("Basic", "u:wrong-key-66")]:
            start = time.monotonic()
            with pytest.raises(DHError, match="authentication failed") as e:
                await AsyncSession(psk_server.host, psk_server.port, auth_type=auth_type, auth_token=token)
            assert time.monotonic() - start < 5
            assert "wrong-key-66" not in str(e.value)

    asyncio.run(asyncio.wait_for(main(), 60))


def test_keepalive_outlives_the_session_duration_without_blocking_the_loop(psk_server) -> None:
    """Idle for 35 s (3.5x the session duration): the kept session is still usable, the one
    without keep-alive has expired and says so; the refreshes run as a task of the loop while it
    sleeps, and they stop when the session closes. (The loop's longest stall meanwhile depends on
    the machine's load: benchmarks/bench_loop_stalls.py measures it.)"""

    async def main() -> None:
        kept = await AsyncSession(psk_server.host, psk_server.port, auth_type=PSK_AUTH, auth_token=KEY)
        lapsing = await AsyncSession(psk_server.host, psk_server.port, auth_type=PSK_AUTH, auth_token=KEY,
                                     never_timeout=False)
        try:
            assert kept._transport.session_duration_ms == 10000
            assert kept._transport.keepalive_running and not lapsing._transport.keepalive_running
            task = kept._transport._keepalive
            assert isinstance(task, asyncio.Task) and task.get_loop() is asyncio.get_running_loop()
            await asyncio.sleep(35)
            refreshes = kept.stats.calls.get("RefreshToken", 0)
            assert refreshes >= 6, refreshes  # one per third of the duration
            with pytest.raises(DHError, match="UNAUTHENTICATED|not authenticated"):
                await lapsing.empty_table(2)
            assert not await lapsing.is_alive
            start = time.monotonic()
            await lapsing.close()  # closing an expired session does not raise
            assert time.monotonic() - start < 5
            assert await kept.is_alive
            assert (await (await kept.empty_table(2)).to_arrow()).num_rows == 2
        finally:
            await kept.close()
            await lapsing.close()
        assert not kept._transport.keepalive_running
        after = kept.stats.calls.get("RefreshToken", 0)
        await asyncio.sleep(4)  # more than a refresh period
        assert kept.stats.calls.get("RefreshToken", 0) == after

    asyncio.run(asyncio.wait_for(main(), 120))


def test_server_gone_fails_fast_and_close_is_quiet(doomed_server) -> None:
    async def main() -> None:
        s = await AsyncSession(doomed_server.host, doomed_server.port, auth_type=PSK_AUTH, auth_token=KEY)
        t = await s.empty_table(1)
        await asyncio.to_thread(doomed_server.stop)
        start = time.monotonic()
        with pytest.raises(DHError, match="unreachable|shutting down"):
            await s.empty_table(1)
        with pytest.raises(DHError, match="unreachable|shutting down"):
            await t.to_arrow()
        assert time.monotonic() - start < 10
        assert not await s.is_alive
        start = time.monotonic()
        await s.close()
        await s.close()
        assert time.monotonic() - start < 5
        assert not s._transport.keepalive_running

    asyncio.run(asyncio.wait_for(main(), 90))
