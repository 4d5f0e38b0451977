"""pydeephaven: a Python client for Deephaven data servers.

    from pydeephaven import Session
    with Session("localhost", 10000) as session:
        table = session.empty_table(10)
        print(table.to_arrow())
"""

from importlib.metadata import PackageNotFoundError, version

from pydeephaven._table_interface import NaturalJoinType, SortDirection
from pydeephaven.dherror import (
    AuthenticationError,
    CallCancelledError,
    DeadlineExceededError,
    DHError,
    InvalidArgumentError,
    NotFoundError,
    OutcomeUnknownError,
    ScriptTimeoutError,
    ServerError,
    SessionClosedError,
    SessionExpiredError,
    SessionLostError,
    TableLostError,
    UnreachableError,
)
from pydeephaven._core.logs import LogEntry, LogSubscription
from pydeephaven._core.revive import ReconnectPolicy, StateChange
from pydeephaven._core.session_base import ScriptResult
from pydeephaven._core.watch import ScopeChange
from pydeephaven.query import Query
from pydeephaven.session import Session
from pydeephaven.table import Table
from pydeephaven.ticking import TableListener, TableListenerHandle, TableUpdate, listen

try:
    __version__ = version("pydeephaven")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0+unknown"

__all__ = ["Session", "DHError", "SortDirection", "Query", "Table", "NaturalJoinType"]
__all__ += ["listen", "TableListener", "TableUpdate", "TableListenerHandle", "ScriptResult", "ScopeChange", "LogEntry",
            "LogSubscription"]
__all__ += ["UnreachableError", "AuthenticationError", "SessionClosedError", "SessionExpiredError", "NotFoundError",
            "InvalidArgumentError", "ServerError", "CallCancelledError", "DeadlineExceededError", "ScriptTimeoutError"]
__all__ += ["ReconnectPolicy", "StateChange", "SessionLostError", "TableLostError", "OutcomeUnknownError"]
