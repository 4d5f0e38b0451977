from pydeephaven._proto import ticket_pb2 as _ticket_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FetchObjectRequest(_message.Message):
    __slots__ = ("source_id",)
    SOURCE_ID_FIELD_NUMBER: _ClassVar[int]
    source_id: _ticket_pb2.TypedTicket
    def __init__(self, source_id: _Optional[_Union[_ticket_pb2.TypedTicket, _Mapping]] = ...) -> None: ...

class FetchObjectResponse(_message.Message):
    __slots__ = ("type", "data", "typed_export_ids")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    TYPED_EXPORT_IDS_FIELD_NUMBER: _ClassVar[int]
    type: str
    data: bytes
    typed_export_ids: _containers.RepeatedCompositeFieldContainer[_ticket_pb2.TypedTicket]
    def __init__(self, type: _Optional[str] = ..., data: _Optional[bytes] = ..., typed_export_ids: _Optional[_Iterable[_Union[_ticket_pb2.TypedTicket, _Mapping]]] = ...) -> None: ...

class ConnectRequest(_message.Message):
    __slots__ = ("source_id",)
    SOURCE_ID_FIELD_NUMBER: _ClassVar[int]
    source_id: _ticket_pb2.TypedTicket
    def __init__(self, source_id: _Optional[_Union[_ticket_pb2.TypedTicket, _Mapping]] = ...) -> None: ...

class ClientData(_message.Message):
    __slots__ = ("payload", "references")
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    REFERENCES_FIELD_NUMBER: _ClassVar[int]
    payload: bytes
    references: _containers.RepeatedCompositeFieldContainer[_ticket_pb2.TypedTicket]
    def __init__(self, payload: _Optional[bytes] = ..., references: _Optional[_Iterable[_Union[_ticket_pb2.TypedTicket, _Mapping]]] = ...) -> None: ...

class ServerData(_message.Message):
    __slots__ = ("payload", "exported_references")
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    EXPORTED_REFERENCES_FIELD_NUMBER: _ClassVar[int]
    payload: bytes
    exported_references: _containers.RepeatedCompositeFieldContainer[_ticket_pb2.TypedTicket]
    def __init__(self, payload: _Optional[bytes] = ..., exported_references: _Optional[_Iterable[_Union[_ticket_pb2.TypedTicket, _Mapping]]] = ...) -> None: ...

class StreamRequest(_message.Message):
    __slots__ = ("connect", "data")
    CONNECT_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    connect: ConnectRequest
    data: ClientData
    def __init__(self, connect: _Optional[_Union[ConnectRequest, _Mapping]] = ..., data: _Optional[_Union[ClientData, _Mapping]] = ...) -> None: ...

class StreamResponse(_message.Message):
    __slots__ = ("data",)
    DATA_FIELD_NUMBER: _ClassVar[int]
    data: ServerData
    def __init__(self, data: _Optional[_Union[ServerData, _Mapping]] = ...) -> None: ...

class BrowserNextResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
