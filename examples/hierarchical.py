"""Rollup and tree tables: grouped totals you open level by level, and id/parent hierarchies.

    python examples/hierarchical.py       # DH_HOST / DH_PORT name the server (localhost:10000)
"""

import pyarrow as pa

from pydeephaven import Session, SortDirection, agg

trades = pa.table({"Sym": ["AAPL", "MSFT", "AAPL", "GOOG", "MSFT", "AAPL"],
                   "Day": pa.array([1, 1, 2, 1, 2, 2], pa.int32()),
                   "Qty": [100, 50, 200, 75, 25, 300]})
staff = pa.table({"Id": pa.array([1, 2, 3, 4], pa.int32()), "Boss": pa.array([None, 1, 1, 3], pa.int32()),
                  "Name": ["Ada", "Bob", "Cy", "Di"]})

with Session() as session:
    t = session.import_table(trades)
    with t.rollup([agg.sum_("Qty"), agg.count_("N")], by=["Sym", "Day"]) as rollup:
        for row in rollup.snapshot(expand=["AAPL"]).to_pylist():   # the grand total, each Sym, AAPL's days
            print("  " * (row["Depth"] - 1) + f"{row['Sym'] or 'all'} {row['Day'] or ''} {row['Qty']} {row['N']}")
        top = rollup.sort("Qty", SortDirection.DESCENDING).snapshot(rows=(1, 1))
        print("largest:", top["Sym"][0], top["Qty"][0])
        print("filtered:", rollup.with_filters("Qty >= 75").snapshot()["Qty"][0])
    with session.import_table(staff).tree("Id", "Boss") as tree:
        for row in tree.snapshot(expand_all=True).to_pylist():
            print("  " * (row["Depth"] - 1) + row["Name"], row["Expanded"])
