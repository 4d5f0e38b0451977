"""``session.storage`` (the server's notebook storage) through both APIs against the real server."""

from __future__ import annotations

import uuid

import pytest

from pydeephaven import DHError


async def test_storage_round_trip(api) -> None:
    st = api.s.storage
    assert st is api.s.storage  # one per session
    folder = f"/pydh-{api.kind}-{uuid.uuid4().hex[:10]}"
    payload = b"print('hi')\n" + bytes(range(256))
    await api.run(st.mkdir(folder))
    try:
        etag = await api.run(st.write(f"{folder}/a.py", payload))
        assert etag
        with pytest.raises(DHError, match="already exists"):
            await api.run(st.write(f"{folder}/a.py", b"x"))
        [item] = await api.run(st.ls(folder))
        assert (item.path, item.kind, item.size, item.etag) == (f"{folder}/a.py", "file", len(payload), etag)
        assert await api.run(st.ls(folder, glob="*.txt")) == []
        assert await api.run(st.read(f"{folder}/a.py")) == payload
        # replace only the version this client read: a newer one is refused
        etag2 = await api.run(st.write(f"{folder}/a.py", "text Ünïcode", allow_overwrite=True, etag=etag))
        assert etag2 and etag2 != etag
        assert await api.run(st.read(f"{folder}/a.py")) == "text Ünïcode".encode()
        with pytest.raises(DHError, match="the file changed since etag"):
            await api.run(st.write(f"{folder}/a.py", b"late", allow_overwrite=True, etag=etag))
        assert await api.run(st.read(f"{folder}/a.py")) == "text Ünïcode".encode()
        await api.run(st.move(f"{folder}/a.py", f"{folder}/b.py"))
        assert [i.path for i in await api.run(st.ls(folder))] == [f"{folder}/b.py"]
        await api.run(st.delete(f"{folder}/b.py"))
        assert await api.run(st.ls(folder)) == []
        root = {i.path: i.kind for i in await api.run(st.ls("/"))}
        assert root[folder] == "directory"
    finally:
        for path in (f"{folder}/a.py", f"{folder}/b.py", folder):
            try:
                await api.run(st.delete(path))
            except DHError:
                pass
    assert folder not in {i.path for i in await api.run(st.ls("/"))}


async def test_storage_refuses_bad_arguments_before_a_call(api) -> None:
    st = api.s.storage
    assert "paths start at the storage's root" in await api.no_round_trip(lambda: st.read("notes/a.py"))
    assert "data must be bytes or str" in await api.no_round_trip(lambda: st.write("/a.py", 5))
    assert "pass allow_overwrite=True" in await api.no_round_trip(lambda: st.write("/a.py", b"x", etag="e"))
    with pytest.raises(DHError, match="storage.read"):
        await api.run(st.read(f"/no-such-{uuid.uuid4().hex[:8]}.py"))
