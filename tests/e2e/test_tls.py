"""TLS on the server's port, and client certificates, with certificates made here.

Each test starts a second server with TLS settings on the `stack`'s database,
so the stack's superuser key works over TLS too. Start-up errors are checked
by running `identity-service serve` with bad settings, which must exit at once
with one line naming the variable.
"""

import dataclasses
import os
import pathlib
import subprocess
import sys
from collections.abc import Callable, Iterator

import certificates
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tecken_identity._generated import identity_pb2 as pb
from tecken_identity._generated import identity_pb2_grpc as pb_grpc

from identity_service.devstack import processes

pytestmark = pytest.mark.e2e

ADMIN = "admin@example.com"
CERT = "IDENTITY_TLS_CERT"
KEY = "IDENTITY_TLS_KEY"
CLIENT_CA = "IDENTITY_TLS_CLIENT_CA"


@dataclasses.dataclass(frozen=True)
class Pki:
    """A CA with a server and a caller certificate, and a stranger's CA."""

    folder: pathlib.Path
    ca: certificates.Issued
    server: certificates.Issued
    caller: certificates.Issued
    other_ca: certificates.Issued
    stranger: certificates.Issued


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    """Make the certificates once for the module."""
    folder = tmp_path_factory.mktemp("pki")
    ca = certificates.make_ca(folder, "ca")
    other_ca = certificates.make_ca(folder, "other-ca")
    return Pki(
        folder=folder,
        ca=ca,
        server=certificates.issue(ca, folder, "server", server=True),
        caller=certificates.issue(ca, folder, "caller"),
        other_ca=other_ca,
        stranger=certificates.issue(other_ca, folder, "stranger"),
    )


@pytest.fixture
def start_tls(stack) -> Iterator[Callable[..., processes.Child]]:
    """Yield a function starting a server with TLS settings on stack's database."""
    started: list[processes.Child] = []

    def start(**settings: object) -> processes.Child:
        env = {**stack.env, **{name: str(value) for name, value in settings.items()}}
        child = processes.start_identity(env)
        started.append(child)
        return child

    try:
        yield start
    finally:
        for child in started:
            child.stop()


def tls_settings(pki: Pki, *, client_ca: bool = False) -> dict[str, object]:
    """Return the settings turning TLS on, and client certificates if asked."""
    settings: dict[str, object] = {CERT: pki.server.cert_path, KEY: pki.server.key_path}
    if client_ca:
        settings[CLIENT_CA] = pki.ca.cert_path
    return settings


def secure_channel(
    port: int, pki: Pki, caller: certificates.Issued | None = None
) -> grpc.Channel:
    """Open a TLS channel trusting the test CA, presenting caller's certificate."""
    credentials = grpc.ssl_channel_credentials(
        root_certificates=pki.ca.cert_pem,
        private_key=caller.key_pem if caller else None,
        certificate_chain=caller.cert_pem if caller else None,
    )
    return grpc.secure_channel(f"127.0.0.1:{port}", credentials)


def get_admin(channel: grpc.Channel, key: str) -> pb.GetUserResponse:
    """Make a superuser call, which reaches the handlers and the database."""
    stub = pb_grpc.IdentityServiceStub(channel)
    return stub.GetUser(
        pb.GetUserRequest(email=ADMIN),
        metadata=(("authorization", f"Bearer {key}"),),
        timeout=10,
    )


def refusal(channel: grpc.Channel) -> grpc.StatusCode:
    """Return the code of a health check that the transport must refuse."""
    stub = health_pb2_grpc.HealthStub(channel)
    with pytest.raises(grpc.RpcError) as caught:
        stub.Check(health_pb2.HealthCheckRequest(), timeout=5)
    return caught.value.code()


def test_tls_serves_callers_who_trust_the_ca_and_refuses_plaintext(
    stack, pki, start_tls
):
    server = start_tls(**tls_settings(pki))
    assert "(TLS)" in server.text()

    with secure_channel(server.port, pki) as channel:
        assert get_admin(channel, stack.admin_key).user.email == ADMIN
        health = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=5
        )
        assert health.status == health_pb2.HealthCheckResponse.SERVING

    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as plaintext:
        assert refusal(plaintext) == grpc.StatusCode.UNAVAILABLE

    # A caller that trusts another CA must not accept this server.
    other = grpc.ssl_channel_credentials(root_certificates=pki.other_ca.cert_pem)
    with grpc.secure_channel(f"127.0.0.1:{server.port}", other) as wrong_root:
        assert refusal(wrong_root) == grpc.StatusCode.UNAVAILABLE


def test_client_ca_admits_only_callers_with_its_certificates(stack, pki, start_tls):
    server = start_tls(**tls_settings(pki, client_ca=True))
    assert "client certificates required" in server.text()

    with secure_channel(server.port, pki) as anonymous:
        assert refusal(anonymous) == grpc.StatusCode.UNAVAILABLE
    with secure_channel(server.port, pki, pki.stranger) as stranger:
        assert refusal(stranger) == grpc.StatusCode.UNAVAILABLE
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as plaintext:
        assert refusal(plaintext) == grpc.StatusCode.UNAVAILABLE

    with secure_channel(server.port, pki, pki.caller) as admitted:
        assert get_admin(admitted, stack.admin_key).user.email == ADMIN

    assert server.process.poll() is None


def garbage(pki: Pki) -> pathlib.Path:
    """Write a file that is no PEM at all."""
    path = pki.folder / "garbage.pem"
    path.write_text("this is not a certificate\n")
    return path


# Each case: the settings (made from the certificates) and the variable the
# one-line error must name.
BAD_SETTINGS: dict[str, tuple[Callable[[Pki], dict[str, object]], str]] = {
    "cert without key": (lambda p: {CERT: p.server.cert_path}, KEY),
    "key without cert": (lambda p: {KEY: p.server.key_path}, CERT),
    "client CA without TLS": (lambda p: {CLIENT_CA: p.ca.cert_path}, CLIENT_CA),
    "missing cert file": (
        lambda p: {**tls_settings(p), CERT: p.folder / "absent.crt"},
        CERT,
    ),
    "cert is a folder": (lambda p: {**tls_settings(p), CERT: p.folder}, CERT),
    "cert is not PEM": (lambda p: {**tls_settings(p), CERT: garbage(p)}, CERT),
    "key is not PEM": (lambda p: {**tls_settings(p), KEY: garbage(p)}, KEY),
    "key is a certificate": (
        lambda p: {**tls_settings(p), KEY: p.server.cert_path},
        KEY,
    ),
    "key of another certificate": (
        lambda p: {**tls_settings(p), KEY: p.caller.key_path},
        KEY,
    ),
    "key needs a password": (
        lambda p: {
            **tls_settings(p),
            KEY: certificates.write_encrypted_key(p.server, p.folder / "locked.key"),
        },
        KEY,
    ),
    "client CA is not PEM": (
        lambda p: {**tls_settings(p), CLIENT_CA: garbage(p)},
        CLIENT_CA,
    ),
    "missing client CA file": (
        lambda p: {**tls_settings(p), CLIENT_CA: p.folder / "absent-ca.crt"},
        CLIENT_CA,
    ),
}


@pytest.mark.parametrize("case", BAD_SETTINGS, ids=list(BAD_SETTINGS))
def test_bad_tls_settings_stop_the_start_with_one_line(case, pki, tmp_path):
    make_settings, variable = BAD_SETTINGS[case]
    settings = {name: str(value) for name, value in make_settings(pki).items()}
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("IDENTITY_TLS_")
    }
    env.update(
        IDENTITY_LISTEN="127.0.0.1:0",
        # Never migrated: TLS must be refused before the database is looked at.
        DATABASE_URL=f"sqlite:///{tmp_path / 'unused.sqlite3'}",
        **settings,
    )

    result = subprocess.run(
        [sys.executable, "-m", "identity_service.cli", "serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 2
    assert "listening" not in result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("identity-service: ")
    assert variable in lines[0]
    assert "PRIVATE KEY" not in result.stderr
