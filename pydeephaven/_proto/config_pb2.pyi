from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AuthenticationConstantsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ConfigurationConstantsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class AuthenticationConstantsResponse(_message.Message):
    __slots__ = ("config_values",)
    class ConfigValuesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: ConfigValue
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[ConfigValue, _Mapping]] = ...) -> None: ...
    CONFIG_VALUES_FIELD_NUMBER: _ClassVar[int]
    config_values: _containers.MessageMap[str, ConfigValue]
    def __init__(self, config_values: _Optional[_Mapping[str, ConfigValue]] = ...) -> None: ...

class ConfigurationConstantsResponse(_message.Message):
    __slots__ = ("config_values",)
    class ConfigValuesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: ConfigValue
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[ConfigValue, _Mapping]] = ...) -> None: ...
    CONFIG_VALUES_FIELD_NUMBER: _ClassVar[int]
    config_values: _containers.MessageMap[str, ConfigValue]
    def __init__(self, config_values: _Optional[_Mapping[str, ConfigValue]] = ...) -> None: ...

class ConfigValue(_message.Message):
    __slots__ = ("string_value",)
    STRING_VALUE_FIELD_NUMBER: _ClassVar[int]
    string_value: str
    def __init__(self, string_value: _Optional[str] = ...) -> None: ...
