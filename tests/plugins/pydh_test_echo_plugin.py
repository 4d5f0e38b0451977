"""A bidirectional plugin for the plugin-client tests, loaded by a test server whose PYTHONPATH
holds this folder (the dist-info next to it declares the entry point).

An ``EchoTarget`` made by a server script is an object of type ``pydeephaven.test.Echo``. On
connect the plugin sends the target's greeting and its table; then it answers every message with
``b"echo:" + payload`` and the same references.
"""

from typing import Any, List

from deephaven.plugin import Callback, Registration
from deephaven.plugin.object_type import BidirectionalObjectType, MessageStream

TYPE_NAME = "pydeephaven.test.Echo"


class EchoTarget:
    def __init__(self, greeting: bytes, table: Any) -> None:
        self.greeting = greeting
        self.table = table


class _EchoStream(MessageStream):
    def __init__(self, client: MessageStream) -> None:
        super().__init__()
        self._client = client

    def on_data(self, payload: bytes, references: List[Any]) -> None:
        self._client.on_data(b"echo:" + bytes(payload), list(references))

    def on_close(self) -> None:
        self._client.on_close()


class EchoType(BidirectionalObjectType):
    @property
    def name(self) -> str:
        return TYPE_NAME

    def is_type(self, obj: Any) -> bool:
        return isinstance(obj, EchoTarget)

    def create_client_connection(self, obj: Any, connection: MessageStream) -> MessageStream:
        connection.on_data(obj.greeting, [obj.table])
        return _EchoStream(connection)


class EchoRegistration(Registration):
    @classmethod
    def register_into(cls, callback: Callback) -> None:
        callback.register(EchoType)
