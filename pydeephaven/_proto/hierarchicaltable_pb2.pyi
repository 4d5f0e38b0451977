from pydeephaven._proto import table_pb2 as _table_pb2
from pydeephaven._proto import ticket_pb2 as _ticket_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RollupNodeType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TYPE_NOT_SPECIFIED: _ClassVar[RollupNodeType]
    AGGREGATED: _ClassVar[RollupNodeType]
    CONSTITUENT: _ClassVar[RollupNodeType]
TYPE_NOT_SPECIFIED: RollupNodeType
AGGREGATED: RollupNodeType
CONSTITUENT: RollupNodeType

class RollupRequest(_message.Message):
    __slots__ = ("result_rollup_table_id", "source_table_id", "aggregations", "include_constituents", "group_by_columns")
    RESULT_ROLLUP_TABLE_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_TABLE_ID_FIELD_NUMBER: _ClassVar[int]
    AGGREGATIONS_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_CONSTITUENTS_FIELD_NUMBER: _ClassVar[int]
    GROUP_BY_COLUMNS_FIELD_NUMBER: _ClassVar[int]
    result_rollup_table_id: _ticket_pb2.Ticket
    source_table_id: _ticket_pb2.Ticket
    aggregations: _containers.RepeatedCompositeFieldContainer[_table_pb2.Aggregation]
    include_constituents: bool
    group_by_columns: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, result_rollup_table_id: _Optional[_Union[_ticket_pb2.Ticket, _Mapping]] = ..., source_table_id: _Optional[_Union[_ticket_pb2.Ticket, _Mapping]] = ..., aggregations: _Optional[_Iterable[_Union[_table_pb2.Aggregation, _Mapping]]] = ..., include_constituents: _Optional[bool] = ..., group_by_columns: _Optional[_Iterable[str]] = ...) -> None: ...

class RollupResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class TreeRequest(_message.Message):
    __slots__ = ("result_tree_table_id", "source_table_id", "identifier_column", "parent_identifier_column", "promote_orphans")
    RESULT_TREE_TABLE_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_TABLE_ID_FIELD_NUMBER: _ClassVar[int]
    IDENTIFIER_COLUMN_FIELD_NUMBER: _ClassVar[int]
    PARENT_IDENTIFIER_COLUMN_FIELD_NUMBER: _ClassVar[int]
    PROMOTE_ORPHANS_FIELD_NUMBER: _ClassVar[int]
    result_tree_table_id: _ticket_pb2.Ticket
    source_table_id: _ticket_pb2.Ticket
    identifier_column: str
    parent_identifier_column: str
    promote_orphans: bool
    def __init__(self, result_tree_table_id: _Optional[_Union[_ticket_pb2.Ticket, _Mapping]] = ..., source_table_id: _Optional[_Union[_ticket_pb2.Ticket, _Mapping]] = ..., identifier_column: _Optional[str] = ..., parent_identifier_column: _Optional[str] = ..., promote_orphans: _Optional[bool] = ...) -> None: ...

class TreeResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class UpdateViewRequest(_message.Message):
    __slots__ = ("column_spec", "node_type")
    COLUMN_SPEC_FIELD_NUMBER: _ClassVar[int]
    NODE_TYPE_FIELD_NUMBER: _ClassVar[int]
    column_spec: _table_pb2.Selectable
    node_type: RollupNodeType
    def __init__(self, column_spec: _Optional[_Union[_table_pb2.Selectable, _Mapping]] = ..., node_type: _Optional[_Union[RollupNodeType, str]] = ...) -> None: ...

class HierarchicalTableApplyRequest(_message.Message):
    __slots__ = ("result_hierarchical_table_id", "input_hierarchical_table_id", "filters", "sorts", "format_views", "update_views")
    RESULT_HIERARCHICAL_TABLE_ID_FIELD_NUMBER: _ClassVar[int]
    INPUT_HIERARCHICAL_TABLE_ID_FIELD_NUMBER: _ClassVar[int]
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    SORTS_FIELD_NUMBER: _ClassVar[int]
    FORMAT_VIEWS_FIELD_NUMBER: _ClassVar[int]
    UPDATE_VIEWS_FIELD_NUMBER: _ClassVar[int]
    result_hierarchical_table_id: _ticket_pb2.Ticket
    input_hierarchical_table_id: _ticket_pb2.Ticket
    filters: _containers.RepeatedCompositeFieldContainer[_table_pb2.Condition]
    sorts: _containers.RepeatedCompositeFieldContainer[_table_pb2.SortDescriptor]
    format_views: _containers.RepeatedCompositeFieldContainer[UpdateViewRequest]
    update_views: _containers.RepeatedCompositeFieldContainer[UpdateViewRequest]
    def __init__(self, result_hierarchical_table_id: _Optional[_Union[_ticket_pb2.Ticket, _Mapping]] = ..., input_hierarchical_table_id: _Optional[_Union[_ticket_pb2.Ticket, _Mapping]] = ..., filters: _Optional[_Iterable[_Union[_table_pb2.Condition, _Mapping]]] = ..., sorts: _Optional[_Iterable[_Union[_table_pb2.SortDescriptor, _Mapping]]] = ..., format_views: _Optional[_Iterable[_Union[UpdateViewRequest, _Mapping]]] = ..., update_views: _Optional[_Iterable[_Union[UpdateViewRequest, _Mapping]]] = ...) -> None: ...

class HierarchicalTableApplyResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class HierarchicalTableDescriptor(_message.Message):
    __slots__ = ("snapshot_schema", "is_static")
    SNAPSHOT_SCHEMA_FIELD_NUMBER: _ClassVar[int]
    IS_STATIC_FIELD_NUMBER: _ClassVar[int]
    snapshot_schema: bytes
    is_static: bool
    def __init__(self, snapshot_schema: _Optional[bytes] = ..., is_static: _Optional[bool] = ...) -> None: ...

class HierarchicalTableViewRequest(_message.Message):
    __slots__ = ("result_view_id", "hierarchical_table_id", "existing_view_id", "expansions")
    RESULT_VIEW_ID_FIELD_NUMBER: _ClassVar[int]
    HIERARCHICAL_TABLE_ID_FIELD_NUMBER: _ClassVar[int]
    EXISTING_VIEW_ID_FIELD_NUMBER: _ClassVar[int]
    EXPANSIONS_FIELD_NUMBER: _ClassVar[int]
    result_view_id: _ticket_pb2.Ticket
    hierarchical_table_id: _ticket_pb2.Ticket
    existing_view_id: _ticket_pb2.Ticket
    expansions: HierarchicalTableViewKeyTableDescriptor
    def __init__(self, result_view_id: _Optional[_Union[_ticket_pb2.Ticket, _Mapping]] = ..., hierarchical_table_id: _Optional[_Union[_ticket_pb2.Ticket, _Mapping]] = ..., existing_view_id: _Optional[_Union[_ticket_pb2.Ticket, _Mapping]] = ..., expansions: _Optional[_Union[HierarchicalTableViewKeyTableDescriptor, _Mapping]] = ...) -> None: ...

class HierarchicalTableViewKeyTableDescriptor(_message.Message):
    __slots__ = ("key_table_id", "key_table_action_column")
    KEY_TABLE_ID_FIELD_NUMBER: _ClassVar[int]
    KEY_TABLE_ACTION_COLUMN_FIELD_NUMBER: _ClassVar[int]
    key_table_id: _ticket_pb2.Ticket
    key_table_action_column: str
    def __init__(self, key_table_id: _Optional[_Union[_ticket_pb2.Ticket, _Mapping]] = ..., key_table_action_column: _Optional[str] = ...) -> None: ...

class HierarchicalTableViewResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class HierarchicalTableSourceExportRequest(_message.Message):
    __slots__ = ("result_table_id", "hierarchical_table_id")
    RESULT_TABLE_ID_FIELD_NUMBER: _ClassVar[int]
    HIERARCHICAL_TABLE_ID_FIELD_NUMBER: _ClassVar[int]
    result_table_id: _ticket_pb2.Ticket
    hierarchical_table_id: _ticket_pb2.Ticket
    def __init__(self, result_table_id: _Optional[_Union[_ticket_pb2.Ticket, _Mapping]] = ..., hierarchical_table_id: _Optional[_Union[_ticket_pb2.Ticket, _Mapping]] = ...) -> None: ...
