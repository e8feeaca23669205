"""TLS, with the system's roots or a custom CA, against a scripted TLS server."""

import grpc
import pytest
from client_fakes import KEY, ScriptedServer, case
from tls_certificates import make_certificates

import tecken_identity
from tecken_identity import AsyncIdentityClient, IdentityClient, RetryPolicy

ONCE = RetryPolicy(max_attempts=1)


@pytest.fixture(scope="module")
def certificates():
    return make_certificates()


@pytest.fixture
def tls_server(certificates):
    credentials = grpc.ssl_server_credentials(
        [(certificates.server_key, certificates.server_certificate)]
    )
    scripted = ScriptedServer(credentials).start()
    scripted.script("GetUser", case("GetUser").response)
    try:
        yield scripted
    finally:
        scripted.stop()


def test_a_custom_ca_is_trusted_and_implies_tls(tls_server, certificates):
    with IdentityClient(
        tls_server.target, key=KEY, root_certificates=certificates.ca
    ) as client:
        assert client.get_user("alice@example.com") == case("GetUser").result

    (received,) = tls_server.calls("GetUser")
    assert received.metadata["authorization"] == f"Bearer {KEY}"


async def test_the_async_client_takes_a_custom_ca_too(tls_server, certificates):
    async with AsyncIdentityClient(
        tls_server.target, key=KEY, tls=True, root_certificates=certificates.ca
    ) as client:
        assert await client.get_user("alice@example.com") == case("GetUser").result


def test_tls_with_the_system_roots_refuses_an_unknown_ca(tls_server):
    with IdentityClient(tls_server.target, key=KEY, tls=True, retry=ONCE) as client:
        with pytest.raises(tecken_identity.Unavailable):
            client.get_user("alice@example.com", timeout=5)

    assert tls_server.calls("GetUser") == []


def test_plaintext_cannot_talk_to_a_tls_server(tls_server):
    with IdentityClient(tls_server.target, key=KEY, retry=ONCE) as client:
        with pytest.raises(tecken_identity.Unavailable):
            client.get_user("alice@example.com", timeout=5)

    assert tls_server.calls("GetUser") == []
