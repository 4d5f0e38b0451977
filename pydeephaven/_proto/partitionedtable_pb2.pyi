from pydeephaven._proto import table_pb2 as _table_pb2
from pydeephaven._proto import ticket_pb2 as _ticket_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PartitionByRequest(_message.Message):
    __slots__ = ("table_id", "result_id", "key_column_names", "drop_keys")
    TABLE_ID_FIELD_NUMBER: _ClassVar[int]
    RESULT_ID_FIELD_NUMBER: _ClassVar[int]
    KEY_COLUMN_NAMES_FIELD_NUMBER: _ClassVar[int]
    DROP_KEYS_FIELD_NUMBER: _ClassVar[int]
    table_id: _ticket_pb2.Ticket
    result_id: _ticket_pb2.Ticket
    key_column_names: _containers.RepeatedScalarFieldContainer[str]
    drop_keys: bool
    def __init__(self, table_id: _Optional[_Union[_ticket_pb2.Ticket, _Mapping]] = ..., result_id: _Optional[_Union[_ticket_pb2.Ticket, _Mapping]] = ..., key_column_names: _Optional[_Iterable[str]] = ..., drop_keys: _Optional[bool] = ...) -> None: ...

class PartitionByResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class MergeRequest(_message.Message):
    __slots__ = ("partitioned_table", "result_id")
    PARTITIONED_TABLE_FIELD_NUMBER: _ClassVar[int]
    RESULT_ID_FIELD_NUMBER: _ClassVar[int]
    partitioned_table: _ticket_pb2.Ticket
    result_id: _ticket_pb2.Ticket
    def __init__(self, partitioned_table: _Optional[_Union[_ticket_pb2.Ticket, _Mapping]] = ..., result_id: _Optional[_Union[_ticket_pb2.Ticket, _Mapping]] = ...) -> None: ...

class GetTableRequest(_message.Message):
    __slots__ = ("partitioned_table", "key_table_ticket", "result_id", "unique_behavior")
    class UniqueBehavior(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        NOT_SET_UNIQUE_BEHAVIOR: _ClassVar[GetTableRequest.UniqueBehavior]
        REQUIRE_UNIQUE_RESULTS_STATIC_SINGLE_KEY: _ClassVar[GetTableRequest.UniqueBehavior]
        PERMIT_MULTIPLE_KEYS: _ClassVar[GetTableRequest.UniqueBehavior]
    NOT_SET_UNIQUE_BEHAVIOR: GetTableRequest.UniqueBehavior
    REQUIRE_UNIQUE_RESULTS_STATIC_SINGLE_KEY: GetTableRequest.UniqueBehavior
    PERMIT_MULTIPLE_KEYS: GetTableRequest.UniqueBehavior
    PARTITIONED_TABLE_FIELD_NUMBER: _ClassVar[int]
    KEY_TABLE_TICKET_FIELD_NUMBER: _ClassVar[int]
    RESULT_ID_FIELD_NUMBER: _ClassVar[int]
    UNIQUE_BEHAVIOR_FIELD_NUMBER: _ClassVar[int]
    partitioned_table: _ticket_pb2.Ticket
    key_table_ticket: _ticket_pb2.Ticket
    result_id: _ticket_pb2.Ticket
    unique_behavior: GetTableRequest.UniqueBehavior
    def __init__(self, partitioned_table: _Optional[_Union[_ticket_pb2.Ticket, _Mapping]] = ..., key_table_ticket: _Optional[_Union[_ticket_pb2.Ticket, _Mapping]] = ..., result_id: _Optional[_Union[_ticket_pb2.Ticket, _Mapping]] = ..., unique_behavior: _Optional[_Union[GetTableRequest.UniqueBehavior, str]] = ...) -> None: ...

class PartitionedTableDescriptor(_message.Message):
    __slots__ = ("key_column_names", "constituent_column_name", "unique_keys", "constituent_definition_schema", "constituent_changes_permitted")
    KEY_COLUMN_NAMES_FIELD_NUMBER: _ClassVar[int]
    CONSTITUENT_COLUMN_NAME_FIELD_NUMBER: _ClassVar[int]
    UNIQUE_KEYS_FIELD_NUMBER: _ClassVar[int]
    CONSTITUENT_DEFINITION_SCHEMA_FIELD_NUMBER: _ClassVar[int]
    CONSTITUENT_CHANGES_PERMITTED_FIELD_NUMBER: _ClassVar[int]
    key_column_names: _containers.RepeatedScalarFieldContainer[str]
    constituent_column_name: str
    unique_keys: bool
    constituent_definition_schema: bytes
    constituent_changes_permitted: bool
    def __init__(self, key_column_names: _Optional[_Iterable[str]] = ..., constituent_column_name: _Optional[str] = ..., unique_keys: _Optional[bool] = ..., constituent_definition_schema: _Optional[bytes] = ..., constituent_changes_permitted: _Optional[bool] = ...) -> None: ...
