from pydeephaven._proto import ticket_pb2 as _ticket_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ListFieldsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class FieldsChangeUpdate(_message.Message):
    __slots__ = ("created", "updated", "removed")
    CREATED_FIELD_NUMBER: _ClassVar[int]
    UPDATED_FIELD_NUMBER: _ClassVar[int]
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    created: _containers.RepeatedCompositeFieldContainer[FieldInfo]
    updated: _containers.RepeatedCompositeFieldContainer[FieldInfo]
    removed: _containers.RepeatedCompositeFieldContainer[FieldInfo]
    def __init__(self, created: _Optional[_Iterable[_Union[FieldInfo, _Mapping]]] = ..., updated: _Optional[_Iterable[_Union[FieldInfo, _Mapping]]] = ..., removed: _Optional[_Iterable[_Union[FieldInfo, _Mapping]]] = ...) -> None: ...

class FieldInfo(_message.Message):
    __slots__ = ("typed_ticket", "field_name", "field_description", "application_name", "application_id")
    TYPED_TICKET_FIELD_NUMBER: _ClassVar[int]
    FIELD_NAME_FIELD_NUMBER: _ClassVar[int]
    FIELD_DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    APPLICATION_NAME_FIELD_NUMBER: _ClassVar[int]
    APPLICATION_ID_FIELD_NUMBER: _ClassVar[int]
    typed_ticket: _ticket_pb2.TypedTicket
    field_name: str
    field_description: str
    application_name: str
    application_id: str
    def __init__(self, typed_ticket: _Optional[_Union[_ticket_pb2.TypedTicket, _Mapping]] = ..., field_name: _Optional[str] = ..., field_description: _Optional[str] = ..., application_name: _Optional[str] = ..., application_id: _Optional[str] = ...) -> None: ...
