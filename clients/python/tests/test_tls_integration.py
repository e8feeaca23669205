"""The client and identity-admin over TLS with client certificates, to the real server.

A second server with TLS settings is started on the `stack`'s database, so the
stack's superuser key works on it too.
"""

import os
import subprocess
import sys

import pytest
from identity_service.devstack import processes
from tls_certificates import make_certificates

import tecken_identity
from tecken_identity import IdentityClient, RetryPolicy

pytestmark = pytest.mark.e2e


@pytest.fixture
def tls_stack(stack, tmp_path):
    """Start a server asking for client certificates; yield it, files and all."""
    made = make_certificates()
    files = {}
    for name in (
        "ca",
        "server_certificate",
        "server_key",
        "client_certificate",
        "client_key",
    ):
        files[name] = tmp_path / f"{name}.pem"
        files[name].write_bytes(getattr(made, name))
    env = {
        **stack.env,
        "IDENTITY_TLS_CERT": str(files["server_certificate"]),
        "IDENTITY_TLS_KEY": str(files["server_key"]),
        "IDENTITY_TLS_CLIENT_CA": str(files["ca"]),
    }

    child = processes.start_identity(env)
    try:
        yield f"127.0.0.1:{child.port}", made, files
    finally:
        child.stop()


def test_the_client_and_identity_admin_present_a_client_certificate(stack, tls_stack):
    target, made, files = tls_stack

    with IdentityClient(
        target,
        key=stack.admin_key,
        root_certificates=made.ca,
        certificate_chain=made.client_certificate,
        private_key=made.client_key,
    ) as client:
        assert client.get_user("admin@example.com").superuser

    with IdentityClient(
        target,
        key=stack.admin_key,
        root_certificates=made.ca,
        retry=RetryPolicy(max_attempts=1),
    ) as stranger:
        with pytest.raises(tecken_identity.Unavailable):
            stranger.get_user("admin@example.com", timeout=5)

    shown = subprocess.run(
        [
            sys.executable,
            "-m",
            "tecken_identity.admin",
            "--target",
            target,
            "--ca-file",
            str(files["ca"]),
            "--cert-file",
            str(files["client_certificate"]),
            "--key-file",
            str(files["client_key"]),
            "users",
            "show",
            "admin@example.com",
        ],
        env={**os.environ, "IDENTITY_TOKEN": stack.admin_key},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    assert "superuser:   yes" in shown.stdout
