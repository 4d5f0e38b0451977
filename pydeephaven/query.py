"""``Query``: table operations recorded now and sent to the server later as one batch.

    result = session.query(trades).where("Qty > 100").update("Value = Qty * Price").sort("Sym").exec()

Each method checks its arguments at once (so mistakes show where they are made) and returns the
Query itself. ``exec()`` sends every operation in one ``Batch`` request: the server runs them as a
chain, and only the last result is exported to the client, as the returned Table. The recording
and ``exec`` are written once for both APIs, in ``pydeephaven._core.table_base.QueryBase``.
"""

from __future__ import annotations

from pydeephaven._compat import QueryCompat
from pydeephaven._core.session_base import sync_api
from pydeephaven._core.table_base import QueryBase
from pydeephaven._table_interface import TableInterface

# names the official client's module also offers (pydeephaven._compat)
from pydeephaven.agg import Aggregation  # noqa: F401
from pydeephaven.dherror import DHError  # noqa: F401
from pydeephaven.filters import Filter  # noqa: F401
from pydeephaven.table import Table  # noqa: F401
from pydeephaven.updateby import UpdateByOperation  # noqa: F401

__all__ = ["Query"]


class Query(QueryCompat, QueryBase, TableInterface["Query"]):  # QueryCompat: see pydeephaven._compat
    """A chain of table operations on ``table``, run as one batch by ``exec()``. Made by
    ``Session.query(table)``."""

    exec = sync_api(QueryBase._exec_flow)
