"""The real stack as processes on free loopback ports, for end-to-end tests.

oidc-provider-mock and the Auth0 stand-in start once per test session; each
test gets its own identity server process with a fresh database, a clock it
can move (IDENTITY_CLOCK_OFFSET_FILE) and a superuser key made by the CLI.
"""

import dataclasses
import os
import pathlib
import subprocess
import sys
import urllib.parse
from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import pytest
from google.rpc import error_details_pb2, status_pb2
from tecken_identity._generated import identity_pb2 as pb
from tecken_identity._generated import identity_pb2_grpc as pb_grpc

from identity_service.devstack import processes

HOST = "127.0.0.1"
CLIENT_ID = "tecken-e2e"
CLIENT_SECRET = "e2e-secret-value"
ADMIN = "admin@example.com"


@pytest.fixture(scope="session")
def provider() -> Iterator[str]:
    """Run oidc-provider-mock for the session; yield its issuer URL.

    Tests move the identity server's clock days ahead of the provider's, so
    the provider's ID tokens are made to outlive that.
    """
    child = processes.start_provider(HOST, 0, "--token-max-age", str(30 * 86400))
    try:
        yield f"http://{HOST}:{child.port}"
    finally:
        child.stop()


@pytest.fixture(scope="session")
def auth0_process() -> Iterator[str]:
    """Run the Auth0 stand-in for the session; yield its base URL."""
    child = processes.start_auth0(HOST, 0, CLIENT_ID, CLIENT_SECRET)
    try:
        yield f"http://{HOST}:{child.port}"
    finally:
        child.stop()


class Auth0Control:
    """Drives the stand-in the way an Auth0 administrator and a test would."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.http = httpx.Client(base_url=base_url, timeout=10)
        self._token = ""

    def reset(self) -> None:
        self.http.post("/_standin/reset").raise_for_status()

    def stats(self) -> dict[str, int]:
        response = self.http.get("/_standin/stats")
        response.raise_for_status()
        return response.json()

    def faults(self, **faults: Any) -> None:
        self.http.post("/_standin/faults", json=faults).raise_for_status()

    def headers(self) -> dict[str, str]:
        if not self._token:
            response = self.http.post(
                "/oauth/token",
                json={
                    "grant_type": "client_credentials",
                    "client_id": CLIENT_ID,
                    "client_secret": CLIENT_SECRET,
                    "audience": f"https://{urllib.parse.urlsplit(self.base_url).netloc}/api/v2/",
                },
            )
            response.raise_for_status()
            self._token = response.json()["access_token"]
        return {"Authorization": f"Bearer {self._token}"}

    def create_user(self, email: str, *, blocked: bool = False) -> str:
        response = self.http.post(
            "/api/v2/users",
            headers=self.headers(),
            json={
                "email": email,
                "connection": "Username-Password-Authentication",
                "password": "not-used-here-1A!",
                "blocked": blocked,
            },
        )
        response.raise_for_status()
        return response.json()["user_id"]

    def set_blocked(self, user_id: str, blocked: bool) -> None:
        response = self.http.patch(
            f"/api/v2/users/{urllib.parse.quote(user_id, safe='')}",
            headers=self.headers(),
            json={"blocked": blocked},
        )
        response.raise_for_status()


@pytest.fixture
def auth0(auth0_process) -> Iterator[Auth0Control]:
    """Yield control of the stand-in, emptied for this test."""
    control = Auth0Control(auth0_process)
    control.reset()
    try:
        yield control
    finally:
        control.faults()
        control.http.close()


def error_reason(error: grpc.RpcError) -> str:
    """Return the ErrorInfo reason of a failed call."""
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                info = error_details_pb2.ErrorInfo()
                if detail.Unpack(info):
                    return info.reason
    return ""


@dataclasses.dataclass
class Stack:
    """One identity server process and what a test needs to drive it."""

    target: str
    env: dict[str, str]
    clock_file: pathlib.Path
    provider: str
    auth0: Auth0Control
    server: processes.Child
    channel: grpc.Channel
    stub: pb_grpc.IdentityServiceStub
    admin_key: str = ""
    offset: float = 0.0

    def advance(self, seconds: float) -> None:
        """Move the server's clock forward."""
        self.offset += seconds
        # Replaced whole, never rewritten in place: a server reading the file
        # between truncation and write would see no offset, and for that
        # moment its clock would fall back by all the time moved so far.
        written = self.clock_file.with_name(self.clock_file.name + ".new")
        written.write_text(f"{self.offset}\n")
        os.replace(written, self.clock_file)

    def call(self, method: str, request: Any, key: str | None = None, **kw: Any) -> Any:
        """Call an RPC, with key as the caller's credential if given."""
        metadata = (("authorization", f"Bearer {key}"),) if key else ()
        return getattr(self.stub, method)(
            request, metadata=metadata, timeout=kw.pop("timeout", 15), **kw
        )

    def fails(
        self, method: str, request: Any, key: str | None = None
    ) -> tuple[grpc.StatusCode, str]:
        """Call an RPC that must fail; return its code and reason."""
        with pytest.raises(grpc.RpcError) as caught:
            self.call(method, request, key)
        return caught.value.code(), error_reason(caught.value)

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run an identity-service command against this server's database."""
        return subprocess.run(
            [sys.executable, "-m", "identity_service.cli", *args],
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            check=check,
            timeout=60,
        )

    def sign_in(self, email: str) -> pb.LoginResponse:
        """Sign in through the provider as a browser would, and call Login."""
        redirect_uri = "http://127.0.0.1:8765/callback"
        started = self.call(
            "StartLogin", pb.StartLoginRequest(redirect_uri=redirect_uri)
        )
        query = urllib.parse.urlsplit(started.authorization_url).query
        response = httpx.post(
            f"{self.provider}/oauth2/authorize?{query}",
            data={"sub": email},
            follow_redirects=False,
            timeout=10,
        )
        assert response.status_code == 302, response.text
        location = urllib.parse.urlsplit(response.headers["location"])
        params = urllib.parse.parse_qs(location.query)
        assert params["state"] == [started.state]
        return self.call(
            "Login",
            pb.LoginRequest(
                code=params["code"][0], state=started.state, redirect_uri=redirect_uri
            ),
        )


def stack_env(
    database_url: str, provider: str, auth0_url: str, clock: pathlib.Path
) -> dict[str, str]:
    """Return the settings of a test server."""
    return {
        "IDENTITY_LISTEN": f"{HOST}:0",
        "DATABASE_URL": database_url,
        "OIDC_OP_ISSUER": provider,
        "OIDC_RP_CLIENT_ID": CLIENT_ID,
        "OIDC_RP_CLIENT_SECRET": CLIENT_SECRET,
        "AUTH0_MANAGEMENT_URL": auth0_url,
        "AUTH0_DOMAIN": urllib.parse.urlsplit(auth0_url).netloc,
        "IDENTITY_CLOCK_OFFSET_FILE": str(clock),
        "NOT_BLOCKED_IN_AUTH0_INTERVAL_SECONDS": "3600",
        "AUTH0_TIMEOUT_SECONDS": "2",
        "SHUTDOWN_GRACE_SECONDS": "5",
    }


@pytest.fixture
def stack(database_url, provider, auth0, tmp_path) -> Iterator[Stack]:
    """Start an identity server on a fresh database; yield its Stack."""
    clock = tmp_path / "clock-offset"
    clock.write_text("0\n")
    env = stack_env(database_url, provider, auth0.base_url, clock)

    server = processes.start_identity(env)
    target = f"{HOST}:{server.port}"
    env["IDENTITY_TARGET"] = target
    channel = grpc.insecure_channel(target)
    result = Stack(
        target=target,
        env=env,
        clock_file=clock,
        provider=provider,
        auth0=auth0,
        server=server,
        channel=channel,
        stub=pb_grpc.IdentityServiceStub(channel),
    )
    try:
        result.cli("superuser", ADMIN)
        result.admin_key = result.cli("createtoken", ADMIN).stdout.split()[-1]
        yield result
    finally:
        channel.close()
        server.stop()
