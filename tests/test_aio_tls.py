"""AsyncSession over TLS with a client certificate (mutual TLS), against a real server started with
throwaway certificates (as test_tls.py does for the sync Session): gRPC and Arrow Flight both."""

from __future__ import annotations

import asyncio
import time
from typing import Iterator

import pyarrow as pa
import pytest

from pydeephaven import DHError
from pydeephaven.aio import AsyncSession
from pydeephaven.embedded import EmbeddedServer, start_server
from tests.support.certs import Pki, make_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("aio-pki"))


@pytest.fixture(scope="module")
def mtls_server(pki) -> Iterator[EmbeddedServer]:
    srv = start_server(heap="1g", jvm_args=[
        "-Dssl.identity.type=privatekey", f"-Dssl.identity.certChainPath={pki.server_cert}",
        f"-Dssl.identity.privateKeyPath={pki.server_key}",
        "-Dssl.trust.type=certs", f"-Dssl.trust.path={pki.ca}", "-Dssl.clientAuthentication=NEEDED"])
    try:
        yield srv
    finally:
        srv.stop()


def test_mtls_round_trip(mtls_server, pki) -> None:
    async def main() -> None:
        async with AsyncSession(mtls_server.host, mtls_server.port, use_tls=True, tls_root_certs=pki.read("ca"),
                                client_cert_chain=pki.read("client_cert"),
                                client_private_key=pki.read("client_key")) as s:
            t = await s.import_table(pa.table({"A": [1, 2, 3]}))
            assert (await t.update("B = A * 10").to_arrow()).column("B").to_pylist() == [10, 20, 30]
            batches = [b async for b in t.iter_batches()]
            assert sum(b.num_rows for b in batches) == 3

    asyncio.run(asyncio.wait_for(main(), 60))


@pytest.mark.parametrize("case, match", [
    ("no client cert", "TLS.*client certificate"),
    ("wrong CA", "TLS.*not signed by a CA in tls_root_certs"),
    ("plaintext", "may require TLS"),
    ("foreign client cert", "refused the client certificate"),
    ("other host name", "does not name this host"),
    ("bad pem", "not valid PEM"),
])
def test_tls_failures_say_so_quickly(mtls_server, pki, case, match, tmp_path) -> None:
    kwargs: dict = {"use_tls": True, "tls_root_certs": pki.read("ca")}
    if case == "wrong CA":
        kwargs.update(tls_root_certs=pki.read("other_ca"), client_cert_chain=pki.read("client_cert"),
                      client_private_key=pki.read("client_key"))
    if case == "plaintext":
        kwargs = {}
    if case == "foreign client cert":
        other = make_pki(tmp_path)  # a client certificate of a CA the server does not trust
        kwargs.update(client_cert_chain=other.read("client_cert"), client_private_key=other.read("client_key"))
    if case == "other host name":
        kwargs.update(client_cert_chain=pki.read("client_cert"), client_private_key=pki.read("client_key"),
                      client_opts=[("grpc.ssl_target_name_override", "other.example")])
    if case == "bad pem":
        kwargs.update(tls_root_certs=b"not a certificate")

    async def main() -> None:
        start = time.monotonic()
        with pytest.raises(DHError, match=match):
            await AsyncSession(mtls_server.host, mtls_server.port, **kwargs)
        assert time.monotonic() - start < 10

    asyncio.run(asyncio.wait_for(main(), 60))
