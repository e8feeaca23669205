"""TLS with the system's roots, a custom CA or a client certificate."""

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


@pytest.fixture
def mutual_tls_server(certificates):
    credentials = grpc.ssl_server_credentials(
        [(certificates.server_key, certificates.server_certificate)],
        root_certificates=certificates.ca,
        require_client_auth=True,
    )
    scripted = ScriptedServer(credentials).start()
    scripted.script("GetUser", case("GetUser").response)
    try:
        yield scripted
    finally:
        scripted.stop()


def test_a_client_certificate_answers_a_server_that_asks_for_one(
    mutual_tls_server, certificates
):
    with IdentityClient(
        mutual_tls_server.target,
        key=KEY,
        root_certificates=certificates.ca,
        certificate_chain=certificates.client_certificate,
        private_key=certificates.client_key,
    ) as client:
        assert client.get_user("alice@example.com") == case("GetUser").result


async def test_the_async_client_presents_a_client_certificate_too(
    mutual_tls_server, certificates
):
    async with AsyncIdentityClient(
        mutual_tls_server.target,
        key=KEY,
        root_certificates=certificates.ca,
        certificate_chain=certificates.client_certificate,
        private_key=certificates.client_key,
    ) as client:
        assert await client.get_user("alice@example.com") == case("GetUser").result


def test_without_a_client_certificate_the_server_refuses(
    mutual_tls_server, certificates
):
    with IdentityClient(
        mutual_tls_server.target,
        key=KEY,
        root_certificates=certificates.ca,
        retry=ONCE,
    ) as client:
        with pytest.raises(tecken_identity.Unavailable):
            client.get_user("alice@example.com", timeout=5)

    assert mutual_tls_server.calls("GetUser") == []


def test_a_client_certificate_without_its_key_is_refused_at_once(certificates):
    with pytest.raises(ValueError, match="private key"):
        IdentityClient(certificate_chain=certificates.client_certificate)
