from google.protobuf import any_pb2 as _any_pb2
from pydeephaven._proto import ticket_pb2 as _ticket_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AddTableRequest(_message.Message):
    __slots__ = ("input_table", "table_to_add")
    INPUT_TABLE_FIELD_NUMBER: _ClassVar[int]
    TABLE_TO_ADD_FIELD_NUMBER: _ClassVar[int]
    input_table: _ticket_pb2.Ticket
    table_to_add: _ticket_pb2.Ticket
    def __init__(self, input_table: _Optional[_Union[_ticket_pb2.Ticket, _Mapping]] = ..., table_to_add: _Optional[_Union[_ticket_pb2.Ticket, _Mapping]] = ...) -> None: ...

class InputTableValidationError(_message.Message):
    __slots__ = ("message", "row", "column")
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ROW_FIELD_NUMBER: _ClassVar[int]
    COLUMN_FIELD_NUMBER: _ClassVar[int]
    message: str
    row: int
    column: str
    def __init__(self, message: _Optional[str] = ..., row: _Optional[int] = ..., column: _Optional[str] = ...) -> None: ...

class InputTableValidationErrorList(_message.Message):
    __slots__ = ("validation_errors",)
    VALIDATION_ERRORS_FIELD_NUMBER: _ClassVar[int]
    validation_errors: _containers.RepeatedCompositeFieldContainer[InputTableValidationError]
    def __init__(self, validation_errors: _Optional[_Iterable[_Union[InputTableValidationError, _Mapping]]] = ...) -> None: ...

class AddTableResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class DeleteTableRequest(_message.Message):
    __slots__ = ("input_table", "table_to_remove")
    INPUT_TABLE_FIELD_NUMBER: _ClassVar[int]
    TABLE_TO_REMOVE_FIELD_NUMBER: _ClassVar[int]
    input_table: _ticket_pb2.Ticket
    table_to_remove: _ticket_pb2.Ticket
    def __init__(self, input_table: _Optional[_Union[_ticket_pb2.Ticket, _Mapping]] = ..., table_to_remove: _Optional[_Union[_ticket_pb2.Ticket, _Mapping]] = ...) -> None: ...

class DeleteTableResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class InputTableColumnInfo(_message.Message):
    __slots__ = ("kind", "restrictions")
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        KIND_UNKNOWN: _ClassVar[InputTableColumnInfo.Kind]
        KIND_KEY: _ClassVar[InputTableColumnInfo.Kind]
        KIND_VALUE: _ClassVar[InputTableColumnInfo.Kind]
    KIND_UNKNOWN: InputTableColumnInfo.Kind
    KIND_KEY: InputTableColumnInfo.Kind
    KIND_VALUE: InputTableColumnInfo.Kind
    KIND_FIELD_NUMBER: _ClassVar[int]
    RESTRICTIONS_FIELD_NUMBER: _ClassVar[int]
    kind: InputTableColumnInfo.Kind
    restrictions: _containers.RepeatedCompositeFieldContainer[_any_pb2.Any]
    def __init__(self, kind: _Optional[_Union[InputTableColumnInfo.Kind, str]] = ..., restrictions: _Optional[_Iterable[_Union[_any_pb2.Any, _Mapping]]] = ...) -> None: ...

class DeephavenTableMetadata(_message.Message):
    __slots__ = ("input_table_metadata",)
    INPUT_TABLE_METADATA_FIELD_NUMBER: _ClassVar[int]
    input_table_metadata: InputTableMetadata
    def __init__(self, input_table_metadata: _Optional[_Union[InputTableMetadata, _Mapping]] = ...) -> None: ...

class InputTableMetadata(_message.Message):
    __slots__ = ("column_info",)
    class ColumnInfoEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: InputTableColumnInfo
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[InputTableColumnInfo, _Mapping]] = ...) -> None: ...
    COLUMN_INFO_FIELD_NUMBER: _ClassVar[int]
    column_info: _containers.MessageMap[str, InputTableColumnInfo]
    def __init__(self, column_info: _Optional[_Mapping[str, InputTableColumnInfo]] = ...) -> None: ...

class IntegerRangeRestriction(_message.Message):
    __slots__ = ("min_inclusive", "max_inclusive")
    MIN_INCLUSIVE_FIELD_NUMBER: _ClassVar[int]
    MAX_INCLUSIVE_FIELD_NUMBER: _ClassVar[int]
    min_inclusive: int
    max_inclusive: int
    def __init__(self, min_inclusive: _Optional[int] = ..., max_inclusive: _Optional[int] = ...) -> None: ...

class DoubleRangeRestriction(_message.Message):
    __slots__ = ("min_inclusive", "max_inclusive")
    MIN_INCLUSIVE_FIELD_NUMBER: _ClassVar[int]
    MAX_INCLUSIVE_FIELD_NUMBER: _ClassVar[int]
    min_inclusive: float
    max_inclusive: float
    def __init__(self, min_inclusive: _Optional[float] = ..., max_inclusive: _Optional[float] = ...) -> None: ...

class NotNullRestriction(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class NonEmptyRestriction(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class StringListRestriction(_message.Message):
    __slots__ = ("allowed_values",)
    ALLOWED_VALUES_FIELD_NUMBER: _ClassVar[int]
    allowed_values: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, allowed_values: _Optional[_Iterable[str]] = ...) -> None: ...
