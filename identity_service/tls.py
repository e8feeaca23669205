"""Transport security: the server's TLS credentials, read and checked at start.

IDENTITY_TLS_CERT and IDENTITY_TLS_KEY turn TLS on for the one port the server
listens on; IDENTITY_TLS_CLIENT_CA also makes every caller present a
certificate signed by one of its CAs. The files are read and parsed before the
server binds, so a missing, unreadable or mismatched file stops the start with
a message naming the variable instead of failing every handshake later. They
are read only at start: a renewed certificate takes effect at the next start,
which replicas behind a load balancer can take one at a time.
"""

import pathlib

import grpc
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from .config import Config, ConfigError

CERT = "IDENTITY_TLS_CERT"
KEY = "IDENTITY_TLS_KEY"
CLIENT_CA = "IDENTITY_TLS_CLIENT_CA"


def server_credentials(config: Config) -> grpc.ServerCredentials | None:
    """Return the server's TLS credentials, or None when TLS is off.

    Raises ConfigError naming the variable whose file cannot be used.
    """
    if config.tls_cert is None or config.tls_key is None:
        return None

    chain = read_file(CERT, config.tls_cert)
    leaf = read_certificates(CERT, config.tls_cert, chain)[0]
    key = read_file(KEY, config.tls_key)
    check_key(config.tls_key, key, leaf)

    client_ca = None
    if config.tls_client_ca is not None:
        client_ca = read_file(CLIENT_CA, config.tls_client_ca)
        read_certificates(CLIENT_CA, config.tls_client_ca, client_ca)

    return grpc.ssl_server_credentials(
        ((key, chain),),
        root_certificates=client_ca,
        require_client_auth=client_ca is not None,
    )


def read_file(variable: str, path: str) -> bytes:
    """Return a file's bytes, or raise ConfigError naming its variable."""
    try:
        return pathlib.Path(path).read_bytes()
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise ConfigError(f"{variable}={path!r}: cannot read it: {reason}") from None


def read_certificates(variable: str, path: str, pem: bytes) -> list[x509.Certificate]:
    """Parse the PEM certificates in a file; at least one must be there."""
    try:
        return x509.load_pem_x509_certificates(pem)
    except ValueError:
        raise ConfigError(
            f"{variable}={path!r}: holds no valid PEM certificate"
        ) from None


def check_key(path: str, pem: bytes, leaf: x509.Certificate) -> None:
    """Check that the key file holds the private key of the leaf certificate.

    The key's bytes never appear in a message: a message names the file only.
    """
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        # TypeError is how an encrypted key, which needs a password, fails.
        raise ConfigError(
            f"{KEY}={path!r}: holds no unencrypted PEM private key"
        ) from None

    if public_bytes(key.public_key()) != public_bytes(leaf.public_key()):
        raise ConfigError(f"{KEY}={path!r}: is not the key of {CERT}'s certificate")


def public_bytes(key: object) -> bytes:
    """Serialize a public key, so two keys of any type compare by value."""
    return key.public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
