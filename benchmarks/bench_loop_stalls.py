"""How long the asyncio event loop goes without running, while an AsyncSession keeps its session
alive and while it moves a large table.

    python benchmarks/bench_loop_stalls.py                 # starts its own server (10 s session duration)
    python benchmarks/bench_loop_stalls.py --idle 35 --rows 5000000

A 10 ms ticker runs on the loop; its longest gap is printed for three stretches: the loop alone
(the machine's own noise, the reference), an idle AsyncSession whose keep-alive refreshes the token
every third of the 10 s session duration, and an import_table + to_arrow of ``--rows`` x 3 columns.
Ratios are against the reference gap measured in the same run. These figures depend on the
machine's load: they were thresholds inside tests (tests/test_aio_keepalive.py) and live here now;
the tests keep the checks that do not depend on speed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import numpy as np
import pyarrow as pa

from pydeephaven.aio import AsyncSession
from pydeephaven.embedded import PSK_AUTH, start_server

KEY = "bench-loop-stalls-key"


async def longest_gap(work, tick: float = 0.01) -> tuple[float, float]:
    """(longest gap between ticks, seconds) while ``work()`` is awaited."""
    gap = [0.0]

    async def ticker() -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(tick)
            now = time.perf_counter()
            gap[0] = max(gap[0], now - last)
            last = now

    task = asyncio.get_running_loop().create_task(ticker())
    await asyncio.sleep(0.05)
    gap[0] = 0.0
    start = time.perf_counter()
    try:
        await work()
    finally:
        seconds = time.perf_counter() - start
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
    return gap[0], seconds


async def run(host: str, port: int, idle: float, rows: int) -> dict:
    out: dict = {}
    out["reference_gap"], _ = await longest_gap(lambda: asyncio.sleep(idle))
    async with AsyncSession(host, port, auth_type=PSK_AUTH, auth_token=KEY) as s:
        before = s.stats.calls.get("RefreshToken", 0)
        out["keepalive_gap"], _ = await longest_gap(lambda: asyncio.sleep(idle))
        out["refreshes"] = s.stats.calls.get("RefreshToken", 0) - before
        data = pa.table({"A": np.arange(rows, dtype=np.int64), "B": np.arange(rows, dtype=np.float64) / 2,
                         "C": np.arange(rows, dtype=np.int64) * -1})

        async def transfer() -> None:
            t = await s.import_table(data)
            back = await t.to_arrow()
            assert back.num_rows == rows
            await t.close()

        out["transfer_gap"], out["transfer_seconds"] = await longest_gap(transfer)
    ref = max(out["reference_gap"], 1e-6)
    out["keepalive_gap_ratio"] = out["keepalive_gap"] / ref
    out["transfer_gap_ratio"] = out["transfer_gap"] / ref
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--idle", type=float, default=35.0, help="seconds of each idle stretch (default 35)")
    ap.add_argument("--rows", type=int, default=5_000_000, help="rows of the transfer (default 5,000,000)")
    args = ap.parse_args()
    srv = start_server(psk=KEY, heap="2g", jvm_args=["-Dhttp.session.durationMs=10000"])
    try:
        out = asyncio.run(run(srv.host, srv.port, args.idle, args.rows))
    finally:
        srv.stop()
    print(f"loop alone:         longest gap {out['reference_gap'] * 1000:7.1f} ms (reference)")
    print(f"keep-alive, idle:   longest gap {out['keepalive_gap'] * 1000:7.1f} ms "
          f"({out['keepalive_gap_ratio']:.1f}x), {out['refreshes']} refreshes")
    print(f"{args.rows:,}-row transfer: longest gap {out['transfer_gap'] * 1000:7.1f} ms "
          f"({out['transfer_gap_ratio']:.1f}x) over {out['transfer_seconds']:.2f} s")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
