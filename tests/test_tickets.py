"""Ticket byte formats (no server needed)."""

import struct

import pytest

from pydeephaven import DHError
from pydeephaven.ticket import (
    ApplicationTicket, ExportTicket, ScopeTicket, ServerObject, SharedTicket, _ticket_from_bytes,
)


def test_export_ticket_is_e_and_int32_le() -> None:
    t = ExportTicket.export_ticket(258)
    assert t.bytes == b"e" + struct.pack("<i", 258)
    assert t.ticket_no == 258
    assert t.pb_ticket.ticket == t.bytes
    with pytest.raises(DHError, match=r"export ticket number must be in 1..2\*\*31-1, got 0"):
        ExportTicket.export_ticket(0)


def test_scope_shared_application() -> None:
    assert ScopeTicket.scope_ticket("my_t").bytes == b"s/my_t"
    s1, s2 = SharedTicket.random_ticket(), SharedTicket.random_ticket()
    assert s1.bytes.startswith(b"h") and len(s1.bytes) == 17 and s1 != s2
    a = ApplicationTicket.app_ticket("app", "fld")
    assert a.bytes == b"a/app/f/fld" and (a.app_id, a.field) == ("app", "fld")


@pytest.mark.parametrize("cls, raw", [(ScopeTicket, b"x/a"), (SharedTicket, b""), (ExportTicket, b"h1"),
                                      (ApplicationTicket, b"a/only")])
def test_wrong_bytes_refused(cls, raw) -> None:
    with pytest.raises(DHError, match=r"ticket bytes must|expected b'a/<app_id>/f/<field>'"):
        cls(raw)


def test_kind_from_bytes_and_typed_ticket() -> None:
    assert isinstance(_ticket_from_bytes(b"s/x"), ScopeTicket)
    assert isinstance(_ticket_from_bytes(b"a/x/f/y"), ApplicationTicket)
    with pytest.raises(DHError, match=r"unknown ticket kind: b'zzz'"):
        _ticket_from_bytes(b"zzz")
    so = ServerObject("Figure", ScopeTicket.scope_ticket("f"))
    assert so.pb_typed_ticket.type == "Figure" and so.pb_typed_ticket.ticket.ticket == b"s/f"
