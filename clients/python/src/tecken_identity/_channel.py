"""The channel both clients share the making of: options, retries and TLS.

Retries are gRPC's own: the channel's service config carries a retry policy
for UNAVAILABLE only, and gRPC applies it with jittered exponential backoff,
inside the call's deadline, on every attempt's own connection. Retry
throttling stops the retries when most calls fail, so that an outage is not
made worse by clients hammering a server that is already down.
"""

import dataclasses
import json
from collections.abc import Sequence
from typing import Any

import grpc

from ._version import __version__

SERVICE = "tecken.identity.v1.IdentityService"
DEFAULT_TARGET = "127.0.0.1:50051"
DEFAULT_TIMEOUT = 10.0

# Login consumes its state before it talks to the provider, so a repeat after
# the server answered UNAVAILABLE could only fail with LOGIN_STATE_INVALID and
# hide the real cause. gRPC still repeats, on its own, an attempt that never
# reached the server.
NOT_RETRIED = ("Login",)

ChannelOptions = Sequence[tuple[str, Any]]


@dataclasses.dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How gRPC retries a call that failed with UNAVAILABLE.

    gRPC waits a random time up to the current backoff before each new
    attempt, starting at `initial_backoff` seconds and multiplying it by
    `backoff_multiplier` up to `max_backoff`. It makes at most `max_attempts`
    attempts in all (gRPC caps this at 5), and never past the call's deadline.
    `max_attempts=1` turns retries off.
    """

    max_attempts: int = 5
    initial_backoff: float = 0.2
    max_backoff: float = 5.0
    backoff_multiplier: float = 2.0

    def __post_init__(self) -> None:
        if not 1 <= self.max_attempts <= 5:
            raise ValueError("max_attempts must be from 1 to 5")
        if self.initial_backoff <= 0 or self.max_backoff < self.initial_backoff:
            raise ValueError("backoffs must be positive, the maximum the larger")
        if self.backoff_multiplier < 1:
            raise ValueError("backoff_multiplier must be at least 1")


def duration(seconds: float) -> str:
    """Write seconds the way service config durations are written."""
    return f"{seconds:.6f}s"


def service_config(retry: RetryPolicy) -> dict[str, Any]:
    """Return the service config that holds the retry policy."""
    method_configs: list[dict[str, Any]] = [
        {"name": [{"service": SERVICE, "method": name} for name in NOT_RETRIED]}
    ]
    if retry.max_attempts > 1:
        method_configs.append(
            {
                "name": [{"service": SERVICE}],
                "retryPolicy": {
                    "maxAttempts": retry.max_attempts,
                    "initialBackoff": duration(retry.initial_backoff),
                    "maxBackoff": duration(retry.max_backoff),
                    "backoffMultiplier": retry.backoff_multiplier,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        )

    return {
        "methodConfig": method_configs,
        "retryThrottling": {"maxTokens": 10, "tokenRatio": 0.1},
    }


def channel_options(
    retry: RetryPolicy, extra: ChannelOptions = ()
) -> list[tuple[str, Any]]:
    """Return the options of a client's channel; extra ones come last and win."""
    return [
        ("grpc.enable_retries", 1),
        ("grpc.service_config", json.dumps(service_config(retry))),
        ("grpc.primary_user_agent", f"tecken-identity/{__version__}"),
        *extra,
    ]


def credentials(
    tls: bool,
    root_certificates: bytes | None,
    certificate_chain: bytes | None = None,
    private_key: bytes | None = None,
) -> grpc.ChannelCredentials | None:
    """Return TLS channel credentials, or None for a plaintext channel.

    A custom CA or a client certificate implies TLS. Without a custom CA, TLS
    trusts the system's roots. The client certificate is for a server that
    asks every caller for one (IDENTITY_TLS_CLIENT_CA).
    """
    if (certificate_chain is None) != (private_key is None):
        raise ValueError("a client certificate needs its private key, and back")
    if not tls and root_certificates is None and certificate_chain is None:
        return None
    return grpc.ssl_channel_credentials(
        root_certificates=root_certificates,
        private_key=private_key,
        certificate_chain=certificate_chain,
    )


def call_metadata(key: str | None) -> tuple[tuple[str, str], ...] | None:
    """Return the metadata that carries the caller's own key, if there is one."""
    if not key:
        return None
    return (("authorization", f"Bearer {key}"),)
