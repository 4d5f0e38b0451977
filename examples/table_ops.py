"""The README's table-operation, Query, input-table and pipelined-mode snippets, as one script.

    DH_HOST=localhost DH_PORT=10000 python examples/table_ops.py
"""

import os

import pyarrow as pa

from pydeephaven import Session, SortDirection, agg
from pydeephaven import updateby as uby
from pydeephaven.filters import ColumnName, and_, gt, in_

trades = pa.table({
    "Sym": ["AAPL", "MSFT", "AAPL", "GOOG", "MSFT", "AAPL"],
    "Price": [189.5, 410.0, 190.25, 140.1, 412.5, 188.0],
    "Qty": [100, 50, 200, 75, 25, 300],
})
quote_data = pa.table({"Sym": ["AAPL", "MSFT", "GOOG"], "Bid": [189.0, 409.5, 140.0]})

with Session(os.environ.get("DH_HOST", "localhost"), int(os.environ.get("DH_PORT", "10000"))) as session:
    t = session.import_table(trades)
    quotes = session.import_table(quote_data)

    big = t.update(["Notional = Price * Qty"]).where("Qty >= 50").sort(
        ["Sym", "Qty"], [SortDirection.ASCENDING, SortDirection.DESCENDING])
    print("sorted:", big.to_arrow().column("Qty").to_pylist())
    picked = t.where(and_([gt(ColumnName("Qty"), 10), in_(ColumnName("Sym"), ["AAPL", "MSFT"])]))
    print("filtered rows:", picked.size)
    by_sym = t.agg_by([agg.sum_("Q = Qty"), agg.avg("AvgPx = Price"), agg.count_("N")], by=["Sym"]).sort("Sym")
    print("agg:", by_sym.to_arrow().to_pydict())
    running = t.update_by([uby.cum_sum("CumQty = Qty"), uby.ema_tick(10, "EmaPx = Price")], by="Sym")
    print("cum:", running.to_arrow().column("CumQty").to_pylist())
    joined = t.natural_join(quotes, on="Sym", joins="Bid")
    print("bids:", joined.to_arrow().column("Bid").to_pylist())
    print("sizes:", [x.size for x in (t.head(5), t.tail(5), t.slice(1, 3), t.head_by(2, "Sym"),
                                      t.group_by("Sym").ungroup(), t.sum_by("Sym"), t.count_by("N", "Sym"))])

    result = session.query(t).where("Qty > 100").update("Value = Qty * Price").sort("Sym").exec()
    print("query:", result.to_arrow().column("Value").to_pylist())

    it = session.input_table(schema=pa.schema([("Sym", pa.string()), ("Px", pa.float64())]), key_cols="Sym")
    it.add(session.import_table(pa.table({"Sym": ["A", "B"], "Px": [1.5, 2.5]})))
    it.delete(session.import_table(pa.table({"Sym": ["A"]})))

    with session.pipelined():
        top = t.where("Qty > 10").update(["V = Qty * Price"]).sort_descending("V").head(2)
    print("top:", top.to_arrow().column("Sym").to_pylist())
