"""The asyncio API: upload data, run several queries at once on one session, and stream a result
batch by batch.

    python examples/async_example.py                    # starts an embedded server (needs Java 17+)
    DH_PORT=10000 python examples/async_example.py      # or uses the server at DH_HOST:DH_PORT
"""

import asyncio
import os
from contextlib import nullcontext

import pyarrow as pa

from pydeephaven.aio import AsyncSession
from pydeephaven.embedded import start_server

trades = pa.table({
    "Sym": ["AAPL", "MSFT", "AAPL", "GOOG", "MSFT", "AAPL"],
    "Price": [189.5, 410.0, 190.25, 140.1, 412.5, 188.0],
    "Qty": [100, 50, 200, 75, 25, 300],
})


async def main(host, port):
    async with AsyncSession(host, port) as session:
        table = await session.import_table(trades)

        # A chain of operations is sent at once and awaited once.
        notional = await table.update("Notional = Price * Qty").where("Qty >= 50")

        # Independent queries run concurrently on the same session.
        by_sym, biggest = await asyncio.gather(
            notional.view(["Sym", "Qty", "Notional"]).sum_by("Sym").sort("Sym"),
            notional.sort_descending("Notional").head(1),
        )

        print(f"{'Sym':<6}{'Qty':>6}{'Notional':>12}")
        async for batch in by_sym.iter_batches():
            for row in batch.to_pylist():
                print(f"{row['Sym']:<6}{row['Qty']:>6}{row['Notional']:>12.2f}")
        top = (await biggest.to_arrow()).to_pylist()[0]
        print(f"largest trade: {top['Sym']} {top['Notional']:.2f}")


server = nullcontext() if os.environ.get("DH_PORT") else start_server()
with server as srv:
    asyncio.run(main(srv.host if srv else None, srv.port if srv else None))
