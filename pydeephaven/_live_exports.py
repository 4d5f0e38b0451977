"""The count of a session's live exports from the server's ``ExportNotifications`` stream, written
once for ``Session.live_exports`` and ``AsyncSession.live_exports`` (each only drives the stream).

The server first streams the state of every export the session holds, then marks the end of that
first run with a notification for export number 0 (a number no client ever uses: client ids start
at 1); later notifications are changes, which ``live_exports`` does not wait for.
"""

from __future__ import annotations

import struct
from typing import Any, Optional

from pydeephaven._proto import session_pb2
from pydeephaven.ticket import ExportTicket

__all__ = ["END_OF_FIRST_RUN", "ExportTally"]

#: the ticket bytes of the server's end-of-first-run marker: export number 0
END_OF_FIRST_RUN = ExportTicket._prefix + struct.pack("<i", 0)

_N = session_pb2.ExportNotification
#: states of an export that is gone or will never be (not live)
_GONE = frozenset({_N.RELEASED, _N.CANCELLED, _N.FAILED, _N.DEPENDENCY_FAILED, _N.DEPENDENCY_NEVER_FOUND,
                   _N.DEPENDENCY_CANCELLED, _N.DEPENDENCY_RELEASED})


class ExportTally:
    """Feed it the notifications in order (``take``) until it says the first run is over; then
    ``live(console)`` is the list of live exports without the console's own."""

    def __init__(self) -> None:
        self._live: dict[bytes, ExportTicket] = {}

    def take(self, note: Any) -> bool:
        """Count one notification; True when it is the end marker (stop reading)."""
        raw = note.ticket.ticket
        if raw == END_OF_FIRST_RUN:
            return True
        if note.export_state in _GONE:
            self._live.pop(raw, None)
        else:
            self._live[raw] = ExportTicket(raw)
        return False

    def live(self, console: Optional[Any]) -> list[ExportTicket]:
        skip = console.ticket if console is not None else None
        return [tk for raw, tk in self._live.items() if raw != skip]
