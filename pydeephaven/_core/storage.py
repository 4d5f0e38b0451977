"""``session.storage``: the server's file storage, where the web UI keeps notebooks and layouts
(``StorageService``), written once as flows for ``Storage`` and ``AsyncStorage``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Union

from pydeephaven._core.calls import Flow, OnSession, Unary
from pydeephaven._proto import storage_pb2
from pydeephaven._utils import check_str
from pydeephaven.dherror import DHError

__all__ = ["StorageBase", "StorageItem"]

_KINDS = {storage_pb2.FILE: "file", storage_pb2.DIRECTORY: "directory"}


@dataclass(frozen=True)
class StorageItem:
    """One entry of a listing: its ``path``, ``kind`` ("file" or "directory"), ``size`` in bytes
    and, for a file, its ``etag`` (changes whenever the file does)."""

    path: str
    kind: str
    size: int
    etag: Optional[str] = None


def _path(op: str, path: Any) -> str:
    check_str(op, "path", path)
    if not path.startswith("/"):
        raise DHError(f"storage.{op}: paths start at the storage's root, '/', got {path!r}")
    return str(path)


class StorageBase(OnSession):
    """The server's file storage (paths from its root, ``/``). Made by ``session.storage``."""

    def __init__(self, session: Any) -> None:
        self.session = session

    def _ls_flow(self, path: str = "/", glob: Optional[str] = None) -> Flow[list[StorageItem]]:
        """The entries of the directory ``path`` (those whose names match ``glob``, e.g. ``"*.py"``)."""
        req = storage_pb2.ListItemsRequest(path=_path("ls", path))
        if glob is not None:
            req.filter_glob = check_str("storage.ls", "glob", glob)
        resp = yield Unary("storage.ls", "storage_stub", "ListItems", req, args={"path": path})
        return [StorageItem(i.path, _KINDS.get(i.type, "unknown"), int(i.size), i.etag if i.HasField("etag") else None)
                for i in resp.items]

    def _read_flow(self, path: str) -> Flow[bytes]:
        """The contents of the file ``path``."""
        resp = yield Unary("storage.read", "storage_stub", "FetchFile",
                           storage_pb2.FetchFileRequest(path=_path("read", path)), args={"path": path})
        return bytes(resp.contents)

    def _write_flow(self, path: str, data: Union[bytes, str], allow_overwrite: bool = False,
                    etag: Optional[str] = None) -> Flow[Optional[str]]:
        """Save ``data`` (bytes, or text as UTF-8) to the file ``path``; its new etag. An existing
        file is replaced only with ``allow_overwrite``; with ``etag`` too, only when the file is
        still the one of that etag (a newer one, saved meanwhile from the web UI or another
        client, is refused; checked just before the save)."""
        path = _path("write", path)
        contents = data.encode("utf-8") if isinstance(data, str) else data
        if not isinstance(contents, (bytes, bytearray, memoryview)):
            raise DHError(f"storage.write: data must be bytes or str, got {type(data).__name__}")
        if etag is not None:
            if not allow_overwrite:
                raise DHError("storage.write: an etag is for replacing a file; pass allow_overwrite=True")
            now = yield Unary("storage.write", "storage_stub", "FetchFile",
                              storage_pb2.FetchFileRequest(path=path, etag=etag), args={"path": path})
            if now.etag != etag:
                raise DHError(f"storage.write({path!r}) refused: the file changed since etag {etag!r} "
                              f"(it is now {now.etag!r}); read it again")
        resp = yield Unary("storage.write", "storage_stub", "SaveFile", storage_pb2.SaveFileRequest(
            path=path, contents=bytes(contents), allow_overwrite=bool(allow_overwrite)), args={"path": path})
        return resp.etag if resp.HasField("etag") else None

    def _mkdir_flow(self, path: str) -> Flow[None]:
        """Make the directory ``path``."""
        yield Unary("storage.mkdir", "storage_stub", "CreateDirectory",
                    storage_pb2.CreateDirectoryRequest(path=_path("mkdir", path)), args={"path": path})

    def _move_flow(self, src: str, dst: str, allow_overwrite: bool = False) -> Flow[None]:
        """Move (rename) the file or directory ``src`` to ``dst``."""
        yield Unary("storage.move", "storage_stub", "MoveItem", storage_pb2.MoveItemRequest(
            old_path=_path("move", src), new_path=_path("move", dst), allow_overwrite=bool(allow_overwrite)),
            args={"src": src, "dst": dst})

    def _delete_flow(self, path: str) -> Flow[None]:
        """Delete the file, or the empty directory, ``path``."""
        yield Unary("storage.delete", "storage_stub", "DeleteItem",
                    storage_pb2.DeleteItemRequest(path=_path("delete", path)), args={"path": path})
