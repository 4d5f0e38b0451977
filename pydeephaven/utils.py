"""Helpers of the official client's ``pydeephaven.utils`` module."""

from __future__ import annotations

import pyarrow as pa

from pydeephaven import _arrow
from pydeephaven.dherror import DHError

__all__ = ["is_deephaven_compatible"]


def is_deephaven_compatible(data_type: pa.DataType) -> bool:
    """Whether a column of Arrow type ``data_type`` can be imported (``Session.import_table``).

    True also for the types this client converts on the way in (large and view strings and
    binaries, large lists, 32/64-bit decimals, dictionaries), which the official client refuses.
    """
    if not isinstance(data_type, pa.DataType):
        return False
    try:
        _arrow.server_type(data_type, "column")
        return True
    except DHError:
        return False
