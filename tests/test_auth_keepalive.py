"""Authentication and session keep-alive against a second real server that uses a pre-shared key
and a short (10 s) session duration. The test that stops a server on purpose starts one of its
own."""

from __future__ import annotations

import logging
import time

import pytest

from pydeephaven import DHError, Session
from pydeephaven._transport import auth_header
from pydeephaven.embedded import PSK_AUTH

from tests.support.psk import KEY



def test_auth_header_forms() -> None:
    assert auth_header("Anonymous", "") == "Anonymous"
    assert auth_header("Basic", "user:pw") == "Basic dXNlcjpwdw=="
    assert auth_header(PSK_AUTH, "k") == f"{PSK_AUTH} k"


def test_right_key_works_and_never_shows(psk_server, caplog) -> None:
    with caplog.at_level(logging.DEBUG):
        with Session(psk_server.host, psk_server.port, auth_type=PSK_AUTH, auth_token=KEY) as s:
            assert s.empty_table(3).to_arrow().num_rows == 3
            token = s._transport._token
            with pytest.raises(DHError) as e:
                s.open_table("no_such_table_psk")
            text = f"{e.value} {s.stats.summary()} {s!r} {s._transport.metadata!r}"
    assert KEY not in str(e.value) and token not in str(e.value)
    assert KEY not in caplog.text and token not in caplog.text
    assert KEY not in text.replace(repr(s._transport.metadata), "")
    assert len(caplog.records) > 3  # the log did record the calls


@pytest.mark.parametrize("auth_type, token",
                         [(PSK_AUTH, "wrong-key-55"), ("Anonymous", ""), ("Basic", "u:wrong-key-55")])
def test_refused_credentials_say_so(psk_server, auth_type, token) -> None:
    start = time.monotonic()
    with pytest.raises(DHError, match="authentication failed") as e:
        Session(psk_server.host, psk_server.port, auth_type=auth_type, auth_token=token)
    assert time.monotonic() - start < 5
    assert "wrong-key-55" not in str(e.value)


def test_keepalive_outlives_the_session_duration(psk_server) -> None:
    """The server's session duration is 10 s: the kept session is idle for 100 s (10x) and still
    usable; the one without keep-alive has expired after 25 s, and says so."""
    kept = Session(psk_server.host, psk_server.port, auth_type=PSK_AUTH, auth_token=KEY)
    lapsing = Session(psk_server.host, psk_server.port, auth_type=PSK_AUTH, auth_token=KEY, never_timeout=False)
    try:
        assert kept._transport.session_duration_ms == 10000
        start = time.monotonic()
        time.sleep(25)
        with pytest.raises(DHError, match="UNAUTHENTICATED|not authenticated"):
            lapsing.empty_table(2)
        assert not lapsing.is_alive
        lapsing.close()  # closing an expired session does not raise
        time.sleep(max(0.0, 100 - (time.monotonic() - start)))
        assert kept.is_alive
        assert kept.empty_table(2).to_arrow().num_rows == 2
        print(f"\n[duration] kept session usable after {time.monotonic() - start:.0f} s idle (server duration 10 s)")
    finally:
        kept.close()
        lapsing.close()


def test_server_gone_fails_fast_and_close_is_quiet(doomed_server) -> None:
    s = Session(doomed_server.host, doomed_server.port, auth_type=PSK_AUTH, auth_token=KEY)
    t = s.empty_table(1)
    doomed_server.stop()
    start = time.monotonic()
    with pytest.raises(DHError, match="unreachable"):
        s.empty_table(1)
    with pytest.raises(DHError, match="unreachable"):
        t.to_arrow()
    assert time.monotonic() - start < 10
    assert not s.is_alive
    # the keep-alive retries with backoff, then gives the session up once its token has expired
    deadline = time.monotonic() + 30
    while s._transport.dead_reason is None and time.monotonic() < deadline:
        time.sleep(0.5)
    assert s._transport.dead_reason and "keep-alive" in s._transport.dead_reason
    with pytest.raises(DHError, match="no longer usable.*keep-alive"):
        s.empty_table(1)
    s.close()
