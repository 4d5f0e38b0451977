from pydeephaven._proto import ticket_pb2 as _ticket_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class WrappedAuthenticationRequest(_message.Message):
    __slots__ = ("type", "payload")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    type: str
    payload: bytes
    def __init__(self, type: _Optional[str] = ..., payload: _Optional[bytes] = ...) -> None: ...

class HandshakeRequest(_message.Message):
    __slots__ = ("auth_protocol", "payload")
    AUTH_PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    auth_protocol: int
    payload: bytes
    def __init__(self, auth_protocol: _Optional[int] = ..., payload: _Optional[bytes] = ...) -> None: ...

class HandshakeResponse(_message.Message):
    __slots__ = ("metadata_header", "session_token", "token_deadline_time_millis", "token_expiration_delay_millis")
    METADATA_HEADER_FIELD_NUMBER: _ClassVar[int]
    SESSION_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOKEN_DEADLINE_TIME_MILLIS_FIELD_NUMBER: _ClassVar[int]
    TOKEN_EXPIRATION_DELAY_MILLIS_FIELD_NUMBER: _ClassVar[int]
    metadata_header: bytes
    session_token: bytes
    token_deadline_time_millis: int
    token_expiration_delay_millis: int
    def __init__(self, metadata_header: _Optional[bytes] = ..., session_token: _Optional[bytes] = ..., token_deadline_time_millis: _Optional[int] = ..., token_expiration_delay_millis: _Optional[int] = ...) -> None: ...

class CloseSessionResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ReleaseRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: _ticket_pb2.Ticket
    def __init__(self, id: _Optional[_Union[_ticket_pb2.Ticket, _Mapping]] = ...) -> None: ...

class ReleaseResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ExportRequest(_message.Message):
    __slots__ = ("source_id", "result_id")
    SOURCE_ID_FIELD_NUMBER: _ClassVar[int]
    RESULT_ID_FIELD_NUMBER: _ClassVar[int]
    source_id: _ticket_pb2.Ticket
    result_id: _ticket_pb2.Ticket
    def __init__(self, source_id: _Optional[_Union[_ticket_pb2.Ticket, _Mapping]] = ..., result_id: _Optional[_Union[_ticket_pb2.Ticket, _Mapping]] = ...) -> None: ...

class ExportResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class PublishRequest(_message.Message):
    __slots__ = ("source_id", "result_id")
    SOURCE_ID_FIELD_NUMBER: _ClassVar[int]
    RESULT_ID_FIELD_NUMBER: _ClassVar[int]
    source_id: _ticket_pb2.Ticket
    result_id: _ticket_pb2.Ticket
    def __init__(self, source_id: _Optional[_Union[_ticket_pb2.Ticket, _Mapping]] = ..., result_id: _Optional[_Union[_ticket_pb2.Ticket, _Mapping]] = ...) -> None: ...

class PublishResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ExportNotificationRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ExportNotification(_message.Message):
    __slots__ = ("ticket", "export_state", "context", "dependent_handle")
    class State(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        UNKNOWN: _ClassVar[ExportNotification.State]
        PENDING: _ClassVar[ExportNotification.State]
        PUBLISHING: _ClassVar[ExportNotification.State]
        QUEUED: _ClassVar[ExportNotification.State]
        RUNNING: _ClassVar[ExportNotification.State]
        EXPORTED: _ClassVar[ExportNotification.State]
        RELEASED: _ClassVar[ExportNotification.State]
        CANCELLED: _ClassVar[ExportNotification.State]
        FAILED: _ClassVar[ExportNotification.State]
        DEPENDENCY_FAILED: _ClassVar[ExportNotification.State]
        DEPENDENCY_NEVER_FOUND: _ClassVar[ExportNotification.State]
        DEPENDENCY_CANCELLED: _ClassVar[ExportNotification.State]
        DEPENDENCY_RELEASED: _ClassVar[ExportNotification.State]
    UNKNOWN: ExportNotification.State
    PENDING: ExportNotification.State
    PUBLISHING: ExportNotification.State
    QUEUED: ExportNotification.State
    RUNNING: ExportNotification.State
    EXPORTED: ExportNotification.State
    RELEASED: ExportNotification.State
    CANCELLED: ExportNotification.State
    FAILED: ExportNotification.State
    DEPENDENCY_FAILED: ExportNotification.State
    DEPENDENCY_NEVER_FOUND: ExportNotification.State
    DEPENDENCY_CANCELLED: ExportNotification.State
    DEPENDENCY_RELEASED: ExportNotification.State
    TICKET_FIELD_NUMBER: _ClassVar[int]
    EXPORT_STATE_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    DEPENDENT_HANDLE_FIELD_NUMBER: _ClassVar[int]
    ticket: _ticket_pb2.Ticket
    export_state: ExportNotification.State
    context: str
    dependent_handle: str
    def __init__(self, ticket: _Optional[_Union[_ticket_pb2.Ticket, _Mapping]] = ..., export_state: _Optional[_Union[ExportNotification.State, str]] = ..., context: _Optional[str] = ..., dependent_handle: _Optional[str] = ...) -> None: ...

class TerminationNotificationRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class TerminationNotificationResponse(_message.Message):
    __slots__ = ("abnormal_termination", "reason", "is_from_uncaught_exception", "stack_traces")
    class StackTrace(_message.Message):
        __slots__ = ("type", "message", "elements")
        TYPE_FIELD_NUMBER: _ClassVar[int]
        MESSAGE_FIELD_NUMBER: _ClassVar[int]
        ELEMENTS_FIELD_NUMBER: _ClassVar[int]
        type: str
        message: str
        elements: _containers.RepeatedScalarFieldContainer[str]
        def __init__(self, type: _Optional[str] = ..., message: _Optional[str] = ..., elements: _Optional[_Iterable[str]] = ...) -> None: ...
    ABNORMAL_TERMINATION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    IS_FROM_UNCAUGHT_EXCEPTION_FIELD_NUMBER: _ClassVar[int]
    STACK_TRACES_FIELD_NUMBER: _ClassVar[int]
    abnormal_termination: bool
    reason: str
    is_from_uncaught_exception: bool
    stack_traces: _containers.RepeatedCompositeFieldContainer[TerminationNotificationResponse.StackTrace]
    def __init__(self, abnormal_termination: _Optional[bool] = ..., reason: _Optional[str] = ..., is_from_uncaught_exception: _Optional[bool] = ..., stack_traces: _Optional[_Iterable[_Union[TerminationNotificationResponse.StackTrace, _Mapping]]] = ...) -> None: ...
