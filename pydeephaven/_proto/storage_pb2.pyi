from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ItemType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    UNKNOWN: _ClassVar[ItemType]
    DIRECTORY: _ClassVar[ItemType]
    FILE: _ClassVar[ItemType]
UNKNOWN: ItemType
DIRECTORY: ItemType
FILE: ItemType

class ListItemsRequest(_message.Message):
    __slots__ = ("path", "filter_glob")
    PATH_FIELD_NUMBER: _ClassVar[int]
    FILTER_GLOB_FIELD_NUMBER: _ClassVar[int]
    path: str
    filter_glob: str
    def __init__(self, path: _Optional[str] = ..., filter_glob: _Optional[str] = ...) -> None: ...

class ItemInfo(_message.Message):
    __slots__ = ("path", "type", "size", "etag")
    PATH_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    path: str
    type: ItemType
    size: int
    etag: str
    def __init__(self, path: _Optional[str] = ..., type: _Optional[_Union[ItemType, str]] = ..., size: _Optional[int] = ..., etag: _Optional[str] = ...) -> None: ...

class ListItemsResponse(_message.Message):
    __slots__ = ("items", "canonical_path")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    CANONICAL_PATH_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[ItemInfo]
    canonical_path: str
    def __init__(self, items: _Optional[_Iterable[_Union[ItemInfo, _Mapping]]] = ..., canonical_path: _Optional[str] = ...) -> None: ...

class FetchFileRequest(_message.Message):
    __slots__ = ("path", "etag")
    PATH_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    path: str
    etag: str
    def __init__(self, path: _Optional[str] = ..., etag: _Optional[str] = ...) -> None: ...

class FetchFileResponse(_message.Message):
    __slots__ = ("contents", "etag")
    CONTENTS_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    contents: bytes
    etag: str
    def __init__(self, contents: _Optional[bytes] = ..., etag: _Optional[str] = ...) -> None: ...

class SaveFileRequest(_message.Message):
    __slots__ = ("allow_overwrite", "path", "contents")
    ALLOW_OVERWRITE_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    CONTENTS_FIELD_NUMBER: _ClassVar[int]
    allow_overwrite: bool
    path: str
    contents: bytes
    def __init__(self, allow_overwrite: _Optional[bool] = ..., path: _Optional[str] = ..., contents: _Optional[bytes] = ...) -> None: ...

class SaveFileResponse(_message.Message):
    __slots__ = ("etag",)
    ETAG_FIELD_NUMBER: _ClassVar[int]
    etag: str
    def __init__(self, etag: _Optional[str] = ...) -> None: ...

class MoveItemRequest(_message.Message):
    __slots__ = ("old_path", "new_path", "allow_overwrite")
    OLD_PATH_FIELD_NUMBER: _ClassVar[int]
    NEW_PATH_FIELD_NUMBER: _ClassVar[int]
    ALLOW_OVERWRITE_FIELD_NUMBER: _ClassVar[int]
    old_path: str
    new_path: str
    allow_overwrite: bool
    def __init__(self, old_path: _Optional[str] = ..., new_path: _Optional[str] = ..., allow_overwrite: _Optional[bool] = ...) -> None: ...

class MoveItemResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CreateDirectoryRequest(_message.Message):
    __slots__ = ("path",)
    PATH_FIELD_NUMBER: _ClassVar[int]
    path: str
    def __init__(self, path: _Optional[str] = ...) -> None: ...

class CreateDirectoryResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class DeleteItemRequest(_message.Message):
    __slots__ = ("path",)
    PATH_FIELD_NUMBER: _ClassVar[int]
    path: str
    def __init__(self, path: _Optional[str] = ...) -> None: ...

class DeleteItemResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
