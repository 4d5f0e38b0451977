"""Tickets: the names by which a client and the server refer to server-side objects.

A ticket is a byte string whose prefix says what kind of name it is:

=====================  ===========================================  ===============================
class                  bytes                                        made by
=====================  ===========================================  ===============================
``ExportTicket``       ``b"e"`` + int32 little-endian               the session, one per result
``ScopeTicket``        ``b"s/"`` + variable name                    ``ScopeTicket.scope_ticket(name)``
``SharedTicket``       ``b"h"`` + any bytes                         ``SharedTicket.random_ticket()``
``ApplicationTicket``  ``b"a/" + app + b"/f/" + field``             ``ApplicationTicket.app_ticket(a, f)``
=====================  ===========================================  ===============================
"""

from __future__ import annotations

import struct
import uuid
from abc import ABC
from typing import ClassVar

from pydeephaven._proto import ticket_pb2
from pydeephaven.dherror import DHError

__all__ = ["Ticket", "ExportTicket", "ScopeTicket", "SharedTicket", "ApplicationTicket", "ServerObject"]


class Ticket(ABC):  # noqa: B024 (abstract by intent, as in the official API; subclasses differ only in data)
    """A server-side name in its raw byte form."""

    _prefix: ClassVar[bytes] = b""

    def __init__(self, ticket_bytes: bytes) -> None:
        if not ticket_bytes:
            raise DHError(f"{type(self).__name__}: ticket bytes must not be empty")
        if not bytes(ticket_bytes).startswith(self._prefix):
            raise DHError(f"{type(self).__name__}: ticket bytes must start with {self._prefix!r}, "
                          f"got {bytes(ticket_bytes)[:16]!r}")
        self._bytes = bytes(ticket_bytes)

    @property
    def bytes(self) -> bytes:
        """The raw ticket bytes."""
        return self._bytes

    @property
    def pb_ticket(self) -> ticket_pb2.Ticket:
        """The ticket as the protobuf message the services take."""
        return ticket_pb2.Ticket(ticket=self._bytes)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Ticket) and other._bytes == self._bytes

    def __hash__(self) -> int:
        return hash(self._bytes)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._bytes!r})"


class ExportTicket(Ticket):
    """A result the session owns; released with ``Session.release`` or ``Table.close``."""

    _prefix = b"e"

    @classmethod
    def export_ticket(cls, ticket_no: int) -> "ExportTicket":
        if not 0 < ticket_no < 2**31:
            raise DHError(f"export ticket number must be in 1..2**31-1, got {ticket_no}")
        return cls(b"e" + struct.pack("<i", ticket_no))

    @property
    def ticket_no(self) -> int:
        return int(struct.unpack("<i", self._bytes[1:5])[0])


class ScopeTicket(Ticket):
    """A variable of the server's global scope, e.g. a table a script made."""

    _prefix = b"s/"

    @classmethod
    def scope_ticket(cls, name: str) -> "ScopeTicket":
        if not name:
            raise DHError("scope ticket: the variable name must not be empty")
        return cls(b"s/" + name.encode("utf-8"))

    @property
    def name(self) -> str:
        return self._bytes[2:].decode("utf-8", errors="replace")


class SharedTicket(Ticket):
    """A name chosen by the client, under which one session publishes an object for others."""

    _prefix = b"h"

    @classmethod
    def random_ticket(cls) -> "SharedTicket":
        return cls(b"h" + uuid.uuid4().int.to_bytes(16, "little"))


class ApplicationTicket(Ticket):
    """A field exported by a server-side application."""

    _prefix = b"a/"

    def __init__(self, ticket_bytes: bytes) -> None:
        super().__init__(ticket_bytes)
        parts = self._bytes.decode("utf-8", errors="replace").split("/", 3)
        if len(parts) != 4 or parts[2] != "f" or not parts[1] or not parts[3]:
            raise DHError(f"ApplicationTicket: expected b'a/<app_id>/f/<field>', got {self._bytes!r}")
        self.app_id, self.field = parts[1], parts[3]

    @classmethod
    def app_ticket(cls, app_id: str, field: str) -> "ApplicationTicket":
        if not app_id or not field:
            raise DHError("application ticket: app_id and field must not be empty")
        return cls(f"a/{app_id}/f/{field}".encode("utf-8"))


_KINDS: tuple[type[Ticket], ...] = (ScopeTicket, ApplicationTicket, ExportTicket, SharedTicket)


def _ticket_from_bytes(raw: bytes) -> Ticket:
    for kind in _KINDS:
        if raw.startswith(kind._prefix):
            return kind(raw)
    raise DHError(f"unknown ticket kind: {raw[:16]!r}")


class ServerObject:
    """A server object of a given type (``"Table"``, ``"Figure"``, a plugin's type ...) and its ticket.
    An empty type means the server cannot hand the object to clients."""

    def __init__(self, type: str, ticket: Ticket) -> None:  # noqa: A002 (official parameter name)
        self.type = type
        self.ticket = ticket

    @property
    def pb_ticket(self) -> ticket_pb2.Ticket:
        return self.ticket.pb_ticket

    @property
    def pb_typed_ticket(self) -> ticket_pb2.TypedTicket:
        return ticket_pb2.TypedTicket(type=self.type, ticket=self.ticket.pb_ticket)

    def __repr__(self) -> str:
        return f"ServerObject(type={self.type!r}, ticket={self.ticket!r})"
