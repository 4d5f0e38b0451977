"""The plugin client: a fetch-only object type (a figure) on the shared server, and a
bidirectional one (the echo plugin of tests/plugins) on a second server that loads it."""

from __future__ import annotations

import os

import pyarrow as pa
import pytest

from pydeephaven import DHError, Session, Table
from pydeephaven.embedded import start_server
from pydeephaven.experimental.plugin_client import Fetchable, PluginClient
from pydeephaven.ticket import ExportTicket, ScopeTicket
from tests.support.bounded import next_within

PLUGIN_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "plugins")

FIGURE_SCRIPT = """
from deephaven import empty_table
from deephaven.plot.figure import Figure
plugin_src = empty_table(6).update(["X = i", "Y = i * i"])
plugin_fig = Figure().plot_xy(series_name="SquaresSeries", t=plugin_src, x="X", y="Y").show()
"""


@pytest.fixture(scope="module")
def echo_server():
    """A server whose Python finds the echo plugin (PYTHONPATH is passed on to the server)."""
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = PLUGIN_DIR + (os.pathsep + old if old else "")
    try:
        srv = start_server(heap="1g")
    finally:
        if old is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = old
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def echo_session(echo_server):
    with Session(echo_server.host, echo_server.port) as s:
        s.run_script("""
from deephaven import empty_table
from pydh_test_echo_plugin import EchoTarget
echo_obj = EchoTarget(b"hello from the server", empty_table(3).update("V = i * 10"))
""")
        yield s


def test_fetch_only_figure(session):
    session.run_script(FIGURE_SCRIPT)
    obj = session.exportable_objects["plugin_fig"]
    assert obj.type == "Figure" and isinstance(obj.ticket, ScopeTicket)
    client = session.plugin_client(obj)
    assert isinstance(client, PluginClient)
    assert isinstance(client.export_ticket, ExportTicket)  # fetched from the scope ticket
    payload, refs = next_within(client.resp_stream)
    assert b"SquaresSeries" in payload  # the figure's descriptor names its series
    assert len(refs) == 1 and isinstance(refs[0], Fetchable) and refs[0].type == "Table"
    data = refs[0].fetch()
    assert isinstance(data, Table)
    assert data.to_arrow().to_pydict() == {"X": list(range(6)), "Y": [i * i for i in range(6)]}
    with pytest.raises(StopIteration):  # a fetch-only type sends one message, then ends
        next_within(client.resp_stream)
    export = client.export_ticket
    client.close()
    client.close()  # idempotent
    with pytest.raises(DHError, match=r"fetch.*DEPENDENCY_RELEASED"):  # the export the client made is released
        session.fetch(export)


def test_bidirectional_echo(echo_session):
    s = echo_session
    obj = s.exportable_objects["echo_obj"]
    assert obj.type == "pydeephaven.test.Echo"
    with s.plugin_client(obj) as client:
        payload, refs = next_within(client.resp_stream)
        assert payload == b"hello from the server"
        assert [r.type for r in refs] == ["Table"]
        assert refs[0].fetch().to_arrow().to_pydict() == {"V": [0, 10, 20]}

        mine = s.import_table(pa.table({"Q": [7, 8, 9]}))
        client.req_stream.write(b"ping", [mine])
        client.req_stream.write(b"second", [])
        payload, refs = next_within(client.resp_stream)
        assert payload == b"echo:ping"
        assert len(refs) == 1
        echoed = refs[0].fetch()
        assert echoed.to_arrow().to_pydict() == {"Q": [7, 8, 9]}
        assert next_within(client.resp_stream) == (b"echo:second", [])
    with pytest.raises(RuntimeError, match=r"PluginResponseStream: the stream is closed"):
        next_within(client.resp_stream)
    with pytest.raises(DHError, match=r"PluginRequestStream.write: the stream is closed"):
        client.req_stream.write(b"late", [])


def test_reference_to_another_plugin_object(echo_session):
    s = echo_session
    s.run_script(FIGURE_SCRIPT)
    objs = s.exportable_objects
    with s.plugin_client(objs["echo_obj"]) as client:
        next_within(client.resp_stream)
        client.req_stream.write(b"fig", [objs["plugin_fig"]])
        payload, refs = next_within(client.resp_stream)
        assert payload == b"echo:fig" and [r.type for r in refs] == ["Figure"]
        inner = refs[0].fetch()
        assert isinstance(inner, PluginClient)
        fig_payload, fig_refs = next_within(inner.resp_stream)
        assert b"SquaresSeries" in fig_payload and fig_refs[0].type == "Table"
        inner.close()
        refs[0].close()


def test_plugin_client_argument_errors(session):
    with pytest.raises(DHError, match=r"PluginClient: server_obj must be a ServerObject, got str"):
        session.plugin_client("not a server object")
    from pydeephaven.ticket import ServerObject

    with pytest.raises(DHError, match=r"PluginClient: the object has no type"):
        session.plugin_client(ServerObject("", ScopeTicket.scope_ticket("x")))
    session.run_script(FIGURE_SCRIPT)
    with session.plugin_client(session.exportable_objects["plugin_fig"]) as client:
        with pytest.raises(DHError, match=r"PluginRequestStream.write: payload must be bytes, got str"):
            client.req_stream.write("text, not bytes", [])
        with pytest.raises(DHError, match=r"PluginRequestStream.write: references must be ServerObjects.*got str"):
            client.req_stream.write(b"x", ["not a server object"])


def test_dropped_client_ends_its_request_thread(session):
    import gc
    import threading
    import time

    session.run_script(FIGURE_SCRIPT)
    obj = session.exportable_objects["plugin_fig"]
    session._transport._watch_termination()  # opened by now anyway; its polling thread stays
    before = set(threading.enumerate())
    client = session.plugin_client(obj)
    # gRPC reads the request queue in a thread of its own, started with the call (told by identity:
    # the session's other threads may start or end meanwhile, so a count proves nothing). Taken
    # before the first answer: a server that ends its side early lets that thread end at once.
    started = set(threading.enumerate()) - before
    assert started
    next_within(client.resp_stream)
    del client
    gc.collect()
    deadline = time.monotonic() + 10
    while any(th.is_alive() for th in started) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [th.name for th in started if th.is_alive()]
