"""The storage and hierarchical-table protocol modules, called directly against the real server over
our transport's channel and bearer token; and the official client's import path for every
generated module (``deephaven_core.proto``)."""

from __future__ import annotations

import importlib
import uuid

import grpc
import pyarrow as pa
import pytest

from pydeephaven import Session
from pydeephaven._proto import (
    hierarchicaltable_pb2,
    hierarchicaltable_pb2_grpc,
    object_pb2,
    object_pb2_grpc,
    storage_pb2,
    storage_pb2_grpc,
    table_pb2,
    ticket_pb2,
)
from pydeephaven.table import Table

# The module names in deephaven_core/proto/ of the official pydeephaven 42.7 wheel.
OFFICIAL_PROTO_MODULES = [
    f"{name}{suffix}"
    for name in ("application", "config", "console", "hierarchicaltable", "inputtable", "object",
                 "partitionedtable", "session", "storage", "table", "ticket")
    for suffix in ("_pb2", "_pb2_grpc")
]

TIMEOUT = 60.0


def _storage(session: Session) -> storage_pb2_grpc.StorageServiceStub:
    return storage_pb2_grpc.StorageServiceStub(session._transport.channel)


def _hier(session: Session) -> hierarchicaltable_pb2_grpc.HierarchicalTableServiceStub:
    return hierarchicaltable_pb2_grpc.HierarchicalTableServiceStub(session._transport.channel)


# -- import path ------------------------------------------------------------------------------------


def test_official_path_gives_the_same_module_objects() -> None:
    import deephaven_core.proto.hierarchicaltable_pb2_grpc as official_hier_grpc
    import deephaven_core.proto.storage_pb2 as official_storage
    import pydeephaven._proto.hierarchicaltable_pb2_grpc as ours_hier_grpc
    import pydeephaven._proto.storage_pb2 as ours_storage

    assert official_storage is ours_storage
    assert official_hier_grpc is ours_hier_grpc
    assert official_storage.ListItemsRequest is storage_pb2.ListItemsRequest
    assert official_hier_grpc.HierarchicalTableServiceStub is hierarchicaltable_pb2_grpc.HierarchicalTableServiceStub


@pytest.mark.parametrize("name", OFFICIAL_PROTO_MODULES)
def test_every_official_module_imports(name: str) -> None:
    official = importlib.import_module(f"deephaven_core.proto.{name}")
    ours = importlib.import_module(f"pydeephaven._proto.{name}")
    assert official is ours
    if name.endswith("_pb2"):
        assert official.DESCRIPTOR.package.startswith("io.deephaven.proto.backplane.")  # console: .script.grpc


def test_descriptors_have_the_server_names_and_numbers() -> None:
    """A few wire facts: service paths, field numbers that are not in sequence, the oneof, the enums."""
    svc = storage_pb2.DESCRIPTOR.services_by_name["StorageService"]
    assert svc.full_name == "io.deephaven.proto.backplane.grpc.StorageService"
    assert sorted(svc.methods_by_name) == sorted(
        ["ListItems", "FetchFile", "SaveFile", "MoveItem", "CreateDirectory", "DeleteItem"])
    assert storage_pb2.ListItemsRequest.DESCRIPTOR.fields_by_name["filter_glob"].number == 4
    assert storage_pb2.ItemType.Value("FILE") == 2
    assert storage_pb2.ItemInfo.DESCRIPTOR.fields_by_name["size"].type == \
        storage_pb2.ItemInfo.DESCRIPTOR.fields_by_name["size"].TYPE_SINT64

    hsvc = hierarchicaltable_pb2.DESCRIPTOR.services_by_name["HierarchicalTableService"]
    assert hsvc.full_name == "io.deephaven.proto.backplane.grpc.HierarchicalTableService"
    assert sorted(hsvc.methods_by_name) == sorted(["Rollup", "Tree", "Apply", "View", "ExportSource"])
    assert hsvc.methods_by_name["ExportSource"].output_type is table_pb2.ExportedTableCreationResponse.DESCRIPTOR
    view = hierarchicaltable_pb2.HierarchicalTableViewRequest.DESCRIPTOR
    assert [f.name for f in view.oneofs_by_name["target"].fields] == ["hierarchical_table_id", "existing_view_id"]
    assert view.fields_by_name["expansions"].number == 4
    assert hierarchicaltable_pb2.RollupNodeType.Value("CONSTITUENT") == 2


# -- StorageService -----------------------------------------------------------------------------------


def test_list_items_of_the_root(session: Session) -> None:
    resp = _storage(session).ListItems(storage_pb2.ListItemsRequest(path="/"),
                                       metadata=session._transport.metadata, timeout=TIMEOUT)
    assert isinstance(resp, storage_pb2.ListItemsResponse)
    assert resp.canonical_path == "/"
    for item in resp.items:
        assert item.path.startswith("/")
        assert item.type in (storage_pb2.DIRECTORY, storage_pb2.FILE)


def test_list_items_needs_the_bearer_token(session: Session) -> None:
    with pytest.raises(grpc.RpcError) as err:
        _storage(session).ListItems(storage_pb2.ListItemsRequest(path="/"), timeout=TIMEOUT)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_storage_round_trip(session: Session) -> None:
    """Create a directory, save, list, fetch (with and without a matching etag), move, delete."""
    stub, md = _storage(session), session._transport.metadata
    folder = f"/pydh-test-{uuid.uuid4().hex[:12]}"
    payload = b"print('hello')\n" + bytes(range(256))
    stub.CreateDirectory(storage_pb2.CreateDirectoryRequest(path=folder), metadata=md, timeout=TIMEOUT)
    try:
        saved = stub.SaveFile(storage_pb2.SaveFileRequest(path=f"{folder}/a.py", contents=payload),
                              metadata=md, timeout=TIMEOUT)
        with pytest.raises(grpc.RpcError, match=r"File already exists"):  # no overwrite unless allowed
            stub.SaveFile(storage_pb2.SaveFileRequest(path=f"{folder}/a.py", contents=b"x"),
                          metadata=md, timeout=TIMEOUT)

        listed = stub.ListItems(storage_pb2.ListItemsRequest(path=folder), metadata=md, timeout=TIMEOUT)
        items = {i.path: i for i in listed.items}
        assert list(items) == [f"{folder}/a.py"]
        assert items[f"{folder}/a.py"].type == storage_pb2.FILE
        assert items[f"{folder}/a.py"].size == len(payload)

        globbed = stub.ListItems(storage_pb2.ListItemsRequest(path=folder, filter_glob="*.txt"),
                                 metadata=md, timeout=TIMEOUT)
        assert list(globbed.items) == []

        fetched = stub.FetchFile(storage_pb2.FetchFileRequest(path=f"{folder}/a.py"), metadata=md, timeout=TIMEOUT)
        assert fetched.contents == payload
        assert saved.HasField("etag") and fetched.etag == saved.etag
        again = stub.FetchFile(storage_pb2.FetchFileRequest(path=f"{folder}/a.py", etag=saved.etag),
                               metadata=md, timeout=TIMEOUT)
        assert again.etag == saved.etag and again.contents == b""  # unchanged: nothing sent
        stale = stub.FetchFile(storage_pb2.FetchFileRequest(path=f"{folder}/a.py", etag="not-the-etag"),
                               metadata=md, timeout=TIMEOUT)
        assert stale.contents == payload

        stub.MoveItem(storage_pb2.MoveItemRequest(old_path=f"{folder}/a.py", new_path=f"{folder}/b.py"),
                      metadata=md, timeout=TIMEOUT)
        listed = stub.ListItems(storage_pb2.ListItemsRequest(path=folder), metadata=md, timeout=TIMEOUT)
        assert [i.path for i in listed.items] == [f"{folder}/b.py"]
        stub.DeleteItem(storage_pb2.DeleteItemRequest(path=f"{folder}/b.py"), metadata=md, timeout=TIMEOUT)
        listed = stub.ListItems(storage_pb2.ListItemsRequest(path=folder), metadata=md, timeout=TIMEOUT)
        assert list(listed.items) == []
    finally:
        for path in (f"{folder}/a.py", f"{folder}/b.py", folder):
            try:
                stub.DeleteItem(storage_pb2.DeleteItemRequest(path=path), metadata=md, timeout=TIMEOUT)
            except grpc.RpcError:
                pass
    root = stub.ListItems(storage_pb2.ListItemsRequest(path="/"), metadata=md, timeout=TIMEOUT)
    assert folder not in {i.path for i in root.items}


# -- HierarchicalTableService -------------------------------------------------------------------------


def _sum_of(match_pair: str) -> table_pb2.Aggregation:
    return table_pb2.Aggregation(columns=table_pb2.Aggregation.AggregationColumns(
        spec=table_pb2.AggSpec(sum=table_pb2.AggSpec.AggSpecSum()), match_pairs=[match_pair]))


def test_rollup_into_an_export_ticket(session: Session) -> None:
    data = pa.table({"Sym": ["a", "b", "a", "c", "b", "a"], "V": pa.array([1, 2, 3, 4, 5, 6], pa.int64())})
    source = session.import_table(data)
    md = session._transport.metadata
    hier = _hier(session)
    rollup = session.make_export_ticket()
    exported = session.make_export_ticket()
    resp = hier.Rollup(hierarchicaltable_pb2.RollupRequest(
        result_rollup_table_id=rollup.pb_ticket, source_table_id=source.ticket.pb_ticket,
        aggregations=[_sum_of("Total = V")], group_by_columns=["Sym"]), metadata=md, timeout=TIMEOUT)
    assert isinstance(resp, hierarchicaltable_pb2.RollupResponse)
    try:
        # the ticket holds a hierarchical table: the object service describes it
        obj = object_pb2_grpc.ObjectServiceStub(session._transport.channel).FetchObject(
            object_pb2.FetchObjectRequest(
                source_id=ticket_pb2.TypedTicket(ticket=rollup.pb_ticket, type="HierarchicalTable")),
            metadata=md, timeout=TIMEOUT)
        assert obj.type == "HierarchicalTable"
        desc = hierarchicaltable_pb2.HierarchicalTableDescriptor.FromString(obj.data)
        assert desc.is_static
        schema = pa.ipc.read_schema(pa.py_buffer(desc.snapshot_schema))
        assert {"Sym", "Total"} <= set(schema.names)
        marked = lambda key: [f.name for f in schema if (f.metadata or {}).get(b"deephaven:" + key) == b"true"]
        depth = marked(b"hierarchicalTable.isRowDepthColumn")
        assert len(depth) == 1 and depth[0] not in ("Sym", "Total")
        assert marked(b"rollupTable.isGroupByColumn") == ["Sym"]

        # ExportSource hands back the table the rollup was made from
        made = hier.ExportSource(hierarchicaltable_pb2.HierarchicalTableSourceExportRequest(
            result_table_id=exported.pb_ticket, hierarchical_table_id=rollup.pb_ticket), metadata=md, timeout=TIMEOUT)
        assert made.success, made.error_info
        assert made.size == data.num_rows and made.is_static
        back = Table(session, exported).to_arrow()
        assert back.select(["Sym", "V"]).sort_by("V").equals(data.sort_by("V"))
    finally:
        session.release(rollup)

    # released: the ticket no longer names anything
    with pytest.raises(grpc.RpcError, match=r"DEPENDENCY_RELEASED"):
        hier.ExportSource(hierarchicaltable_pb2.HierarchicalTableSourceExportRequest(
            result_table_id=session.make_export_ticket().pb_ticket, hierarchical_table_id=rollup.pb_ticket),
            metadata=md, timeout=TIMEOUT)


def test_tree_apply_and_view(session: Session) -> None:
    data = pa.table({"ID": pa.array([1, 2, 3, 4], pa.int32()), "Parent": pa.array([None, 1, 1, 2], pa.int32()),
                     "X": pa.array([10.0, 20.0, 30.0, 40.0])})
    source = session.import_table(data)
    md = session._transport.metadata
    hier = _hier(session)
    tree, applied, view, view2 = (session.make_export_ticket() for _ in range(4))
    hier.Tree(hierarchicaltable_pb2.TreeRequest(
        result_tree_table_id=tree.pb_ticket, source_table_id=source.ticket.pb_ticket,
        identifier_column="ID", parent_identifier_column="Parent"), metadata=md, timeout=TIMEOUT)
    try:
        hier.Apply(hierarchicaltable_pb2.HierarchicalTableApplyRequest(
            result_hierarchical_table_id=applied.pb_ticket, input_hierarchical_table_id=tree.pb_ticket,
            sorts=[table_pb2.SortDescriptor(column_name="X", direction=table_pb2.SortDescriptor.DESCENDING)]),
            metadata=md, timeout=TIMEOUT)
        hier.View(hierarchicaltable_pb2.HierarchicalTableViewRequest(
            result_view_id=view.pb_ticket, hierarchical_table_id=applied.pb_ticket), metadata=md, timeout=TIMEOUT)
        # the other branch of the oneof: a view re-targeted from the existing one (the server waits
        # for a ticket that does not exist yet, so success proves the first view is there)
        again = hierarchicaltable_pb2.HierarchicalTableViewRequest(
            result_view_id=view2.pb_ticket, existing_view_id=view.pb_ticket)
        assert again.WhichOneof("target") == "existing_view_id"
        hier.View(again, metadata=md, timeout=TIMEOUT)

        # a tree over an unknown identifier column is refused by the server
        with pytest.raises(grpc.RpcError, match=r"INVALID_ARGUMENT"):
            hier.Tree(hierarchicaltable_pb2.TreeRequest(
                result_tree_table_id=session.make_export_ticket().pb_ticket, source_table_id=source.ticket.pb_ticket,
                identifier_column="Nope", parent_identifier_column="Parent"), metadata=md, timeout=TIMEOUT)

        made = hier.ExportSource(hierarchicaltable_pb2.HierarchicalTableSourceExportRequest(
            result_table_id=session.make_export_ticket().pb_ticket, hierarchical_table_id=applied.pb_ticket),
            metadata=md, timeout=TIMEOUT)
        assert made.success and made.size == data.num_rows
    finally:
        for t in (view2, view, applied, tree):
            session.release(t)

