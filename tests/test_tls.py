"""TLS and mutual TLS against real servers started with throwaway certificates."""

from __future__ import annotations

import time
from typing import Iterator

import pyarrow as pa
import pytest

from pydeephaven import DHError, Session
from pydeephaven.embedded import EmbeddedServer, start_server
from tests.support.certs import Pki, make_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def _tls_args(pki: Pki) -> list[str]:
    return ["-Dssl.identity.type=privatekey", f"-Dssl.identity.certChainPath={pki.server_cert}",
            f"-Dssl.identity.privateKeyPath={pki.server_key}"]


@pytest.fixture(scope="module")
def tls_server(pki) -> Iterator[EmbeddedServer]:
    srv = start_server(heap="1g", jvm_args=_tls_args(pki))
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def mtls_server(pki) -> Iterator[EmbeddedServer]:
    srv = start_server(heap="1g", jvm_args=_tls_args(pki) + [
        "-Dssl.trust.type=certs", f"-Dssl.trust.path={pki.ca}", "-Dssl.clientAuthentication=NEEDED"])
    try:
        yield srv
    finally:
        srv.stop()


def _round_trip(s: Session) -> None:
    data = pa.table({"A": [1, 2, 3]})
    assert s.import_table(data).to_arrow().column("A").to_pylist() == [1, 2, 3]


def _fails_fast(match: str, **kwargs) -> str:
    start = time.monotonic()
    with pytest.raises(DHError, match=match) as e:
        Session(**kwargs)
    assert time.monotonic() - start < 10
    return str(e.value)


def test_tls(tls_server, pki) -> None:
    with Session(tls_server.host, tls_server.port, use_tls=True, tls_root_certs=pki.read("ca")) as s:
        _round_trip(s)


def test_tls_wrong_ca(tls_server, pki) -> None:
    _fails_fast("TLS", host=tls_server.host, port=tls_server.port, use_tls=True, tls_root_certs=pki.read("other_ca"))


def test_plaintext_client_on_tls_server(tls_server) -> None:
    _fails_fast("TLS", host=tls_server.host, port=tls_server.port)


def test_mtls(mtls_server, pki) -> None:
    with Session(mtls_server.host, mtls_server.port, use_tls=True, tls_root_certs=pki.read("ca"),
                 client_cert_chain=pki.read("client_cert"), client_private_key=pki.read("client_key")) as s:
        _round_trip(s)


def test_mtls_missing_client_cert(mtls_server, pki) -> None:
    _fails_fast("client certificate", host=mtls_server.host, port=mtls_server.port, use_tls=True,
                tls_root_certs=pki.read("ca"))


def _foreign_client(tmp_path) -> tuple[bytes, bytes]:
    """A client certificate from a CA the server does not trust."""
    from tests.support.certs import _ca, _leaf, _write_cert, _write_key

    ca, ca_key = _ca("a CA the server does not trust")
    cert, key = _leaf("foreign client", ca, ca_key, server=False)
    _write_cert(cert, tmp_path / "foreign.pem")
    _write_key(key, tmp_path / "foreign.key")
    return (tmp_path / "foreign.pem").read_bytes(), (tmp_path / "foreign.key").read_bytes()


def test_tls_bad_pem_is_a_client_side_problem(tls_server, pki) -> None:
    """gRPC cannot even start the handshake: nothing was refused by the server."""
    text = _fails_fast("not valid PEM", host=tls_server.host, port=tls_server.port, use_tls=True,
                       tls_root_certs=b"not a certificate")
    assert "refused" not in text
    text = _fails_fast("private key does not belong", host=tls_server.host, port=tls_server.port, use_tls=True,
                       tls_root_certs=pki.read("ca"), client_cert_chain=pki.read("client_cert"),
                       client_private_key=pki.read("server_key"))
    assert "refused" not in text


def test_tls_certificate_for_another_host(tls_server, pki) -> None:
    text = _fails_fast("TLS handshake failed", host=tls_server.host, port=tls_server.port, use_tls=True,
                       tls_root_certs=pki.read("ca"),
                       client_opts=[("grpc.ssl_target_name_override", "other.example")])
    assert "does not name this host" in text and "client certificate" not in text


def test_mtls_foreign_client_cert(mtls_server, pki, tmp_path) -> None:
    chain, key = _foreign_client(tmp_path)
    text = _fails_fast("refused the client certificate", host=mtls_server.host, port=mtls_server.port, use_tls=True,
                       tls_root_certs=pki.read("ca"), client_cert_chain=chain, client_private_key=key)
    assert "may require" not in text


def test_tls_client_on_plain_text_tls_server_port(tls_server) -> None:
    """The mirror case: a TLS client on a plain-text port says the server does not speak TLS
    (the shared plain server is the other side of this: see test_errors)."""
    text = _fails_fast("may require TLS", host=tls_server.host, port=tls_server.port)
    assert "client certificate" not in text
