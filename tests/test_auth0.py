"""The Auth0 client, against the stand-in running as a real process.

Faults (delays, 429s, broken bodies) are injected through the stand-in's control
API, so each test drives the client over real HTTP. The few answers the
stand-in cannot give are served by httpx.MockTransport at the network edge.
"""

import asyncio
import dataclasses
import logging
import socket
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from identity_service import config, errors
from identity_service.auth0 import Auth0Client, Auth0Unavailable, BlockStatus
from identity_service.clock import Clock, ManualClock

DATABASE = "Username-Password-Authentication"
ENTERPRISE = "mozilla-ldap"


class StandIn:
    """The stand-in's control API and the user calls tests set data up with."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http
        self.token: str | None = None

    async def reset(self) -> None:
        """Forget users, counts and faults."""
        (await self.http.post("/_standin/reset")).raise_for_status()

    async def faults(self, **faults: object) -> None:
        """Replace the injected faults."""
        (await self.http.post("/_standin/faults", json=faults)).raise_for_status()

    async def stats(self) -> dict[str, int]:
        """Return the request counts since the last reset."""
        response = await self.http.get("/_standin/stats")
        response.raise_for_status()
        return response.json()

    async def create_user(
        self, email: str, connection: str = DATABASE, blocked: bool = False
    ) -> dict:
        """Create a user through POST /api/v2/users, as an administrator would."""
        body = {"email": email, "connection": connection, "password": "x"}
        if blocked:
            body["blocked"] = True
        response = await self.http.post(
            "/api/v2/users", json=body, headers=await self.auth()
        )
        assert response.status_code == 201, response.text
        return response.json()

    async def auth(self) -> dict[str, str]:
        """Return an authorization header, fetching one token per test."""
        if self.token is None:
            defaults = config.load({})
            response = await self.http.post(
                "/oauth/token",
                data={
                    "grant_type": "client_credentials",
                    "client_id": defaults.auth0_client_id,
                    "client_secret": defaults.auth0_client_secret,
                    "audience": "https://tenant.example/api/v2/",
                },
            )
            response.raise_for_status()
            self.token = response.json()["access_token"]
        return {"authorization": f"Bearer {self.token}"}


@pytest.fixture
async def standin(auth0_standin: str) -> AsyncIterator[StandIn]:
    async with httpx.AsyncClient(base_url=auth0_standin, trust_env=False) as http:
        control = StandIn(http)
        await control.reset()
        yield control


@pytest.fixture
def settings(auth0_standin: str) -> config.Config:
    return config.load(
        {"AUTH0_MANAGEMENT_URL": auth0_standin, "AUTH0_TIMEOUT_SECONDS": "3"}
    )


@pytest.fixture
async def client(standin: StandIn, settings: config.Config) -> AsyncIterator:
    auth0 = Auth0Client(settings, Clock())
    yield auth0
    await auth0.aclose()


async def expect_unavailable(client: Auth0Client, email: str, **kwargs) -> str:
    """Assert that a check raises Auth0Unavailable; return its message."""
    with pytest.raises(Auth0Unavailable) as caught:
        await client.block_status(email, **kwargs)

    assert caught.value.reason == errors.AUTH0_UNAVAILABLE
    assert email.lower() not in caught.value.message.lower()
    return caught.value.message


def free_port() -> int:
    """Return a loopback port nobody listens on (until somebody takes it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# Plain answers


async def test_user_not_blocked(standin, client):
    await standin.create_user("ann@example.com")

    assert await client.block_status("ann@example.com") is BlockStatus.NOT_BLOCKED
    assert client.lookups == 1


async def test_user_blocked(standin, client):
    await standin.create_user("ben@example.com", blocked=True)

    assert await client.block_status("ben@example.com") is BlockStatus.BLOCKED


async def test_unknown_email_not_found(standin, client):
    await standin.create_user("ann@example.com")

    assert await client.block_status("nobody@example.com") is BlockStatus.NOT_FOUND


async def test_block_and_unblock_through_patch(standin, client):
    user = await standin.create_user("cal@example.com")
    path = "/api/v2/users/" + user["user_id"]

    patched = await standin.http.patch(
        path, json={"blocked": True}, headers=await standin.auth()
    )
    assert patched.json()["blocked"] is True
    assert await client.block_status("cal@example.com") is BlockStatus.BLOCKED

    await standin.http.patch(
        path, json={"blocked": False}, headers=await standin.auth()
    )
    assert await client.block_status("cal@example.com") is BlockStatus.NOT_BLOCKED


async def test_one_blocked_user_of_several_blocks_the_email(standin, client):
    await standin.create_user("dee@example.com")
    await standin.create_user("dee@example.com", ENTERPRISE, blocked=True)

    assert await client.block_status("dee@example.com") is BlockStatus.BLOCKED


# Case


async def test_mixed_case_email_finds_the_lowercased_database_user(standin, client):
    await standin.create_user("Eve.Smith@Example.COM", blocked=True)

    status = await client.block_status("Eve.Smith@Example.COM")

    assert status is BlockStatus.BLOCKED
    assert client.lookups == 2


async def test_lowercase_email_is_looked_up_once(standin, client):
    await standin.create_user("fay@example.com")

    assert await client.block_status("fay@example.com") is BlockStatus.NOT_BLOCKED
    assert client.lookups == 1


async def test_enterprise_user_found_with_its_own_casing(standin, client):
    await standin.create_user("Gus@Example.com", ENTERPRISE, blocked=True)

    assert await client.block_status("Gus@Example.com") is BlockStatus.BLOCKED
    assert client.lookups == 1


@pytest.mark.parametrize(
    "email",
    [
        'ann@example.com" OR email:"ben@example.com',
        "*",
        "email:*",
        "*@example.com",
        "ann@example.com OR ben@example.com",
    ],
)
async def test_email_written_as_a_query_matches_nobody(standin, client, email):
    await standin.create_user("ann@example.com", blocked=True)
    await standin.create_user("ben@example.com", blocked=True)

    assert await client.block_status(email) is BlockStatus.NOT_FOUND
    assert (await standin.stats())["search_requests"] == 0


async def test_users_with_another_email_are_ignored():
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth/token":
            return httpx.Response(200, json={"access_token": "t", "expires_in": 60})
        return httpx.Response(200, json=[{"email": "zed@example.com", "blocked": True}])

    settings = config.load({"AUTH0_MANAGEMENT_URL": "http://127.0.0.1:9"})
    auth0 = Auth0Client(settings, Clock(), transport=httpx.MockTransport(answer))

    assert await auth0.block_status("amy@example.com") is BlockStatus.NOT_FOUND
    await auth0.aclose()


# The management token


async def test_token_is_fetched_once_for_many_lookups(standin, client):
    await standin.create_user("hal@example.com")
    before = (await standin.stats())["token_requests"]

    for _ in range(20):
        await client.block_status("hal@example.com")

    assert client.token_fetches == 1
    assert (await standin.stats())["token_requests"] == before + 1


async def test_token_is_renewed_a_minute_before_it_expires(standin, settings):
    clock = ManualClock()
    auth0 = Auth0Client(settings, clock)
    await auth0.block_status("ivy@example.com")

    clock.advance(86400 - 61)
    await auth0.block_status("ivy@example.com")
    assert auth0.token_fetches == 1

    clock.advance(2)
    await auth0.block_status("ivy@example.com")
    assert auth0.token_fetches == 2
    await auth0.aclose()


async def test_refused_token_is_replaced_once(standin, client):
    await standin.create_user("jo@example.com")
    await client.block_status("jo@example.com")

    await standin.faults(revoke_tokens=True)

    assert await client.block_status("jo@example.com") is BlockStatus.NOT_BLOCKED
    assert client.token_fetches == 2
    assert client.lookups == 3


async def test_fresh_token_refused_too_is_unavailable(standin, client):
    await standin.faults(status=401)

    message = await expect_unavailable(client, "kim@example.com")

    assert "401" in message
    assert client.token_fetches == 2
    assert client.lookups == 2


@pytest.mark.parametrize(
    ("faults", "expected"),
    [
        ({"token_status": 500}, "rate limited"),
        ({"token_status": 401}, "401"),
        ({"status": 503, "applies_to": "token"}, "503"),
        ({"body": "not-json", "applies_to": "token"}, "not JSON"),
    ],
)
async def test_token_endpoint_failing_is_unavailable(standin, client, faults, expected):
    await standin.create_user("lee@example.com")
    await standin.faults(**faults)

    message = await expect_unavailable(client, "lee@example.com")

    assert expected in message
    assert client.lookups == 0


async def test_wrong_credentials_are_unavailable(standin, settings):
    wrong = dataclasses.replace(settings, auth0_client_secret="not-the-secret")
    auth0 = Auth0Client(wrong, Clock())

    message = await expect_unavailable(auth0, "max@example.com")

    assert "not-the-secret" not in message
    await auth0.aclose()


# Rate limits


async def test_rate_limit_is_waited_out_within_the_deadline(standin, client):
    await standin.create_user("ned@example.com")
    await standin.faults(rate_limit_reset_in=1.0)

    status = await client.block_status("ned@example.com", timeout=2.9)

    assert status is BlockStatus.NOT_BLOCKED
    assert (await standin.stats())["users_by_email_requests"] == 2


async def test_rate_limit_past_the_deadline_is_refused_at_once(standin, client):
    await standin.faults(rate_limit_reset_in=1.0)
    started = time.monotonic()

    message = await expect_unavailable(client, "ola@example.com", timeout=0.5)

    assert "rate limited until" in message
    assert time.monotonic() - started < 0.4
    assert (await standin.stats())["users_by_email_requests"] == 1


async def test_rate_limit_an_hour_away_is_refused_at_once(standin, client):
    await standin.faults(rate_limit_reset_in=3600)
    started = time.monotonic()

    message = await expect_unavailable(client, "pam@example.com")

    assert "rate limited until" in message
    assert time.monotonic() - started < 0.5


async def test_rate_limit_without_a_reset_is_refused_at_once():
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, json={"statusCode": 429})

    settings = config.load({"AUTH0_MANAGEMENT_URL": "http://127.0.0.1:9"})
    auth0 = Auth0Client(settings, Clock(), transport=httpx.MockTransport(answer))

    assert "rate limited" in await expect_unavailable(auth0, "quin@example.com")
    assert auth0.token_fetches == 1
    await auth0.aclose()


# Failures and answers that cannot be trusted


@pytest.mark.parametrize("status", [500, 502, 503, 403])
async def test_error_status_is_unavailable(standin, client, status):
    await standin.faults(status=status)

    assert f"status {status}" in await expect_unavailable(client, "ray@example.com")


@pytest.mark.parametrize("body", ["not-json", "wrong-shape", "blocked-string"])
async def test_untrustworthy_body_is_unavailable(standin, client, body):
    await standin.create_user("sue@example.com", blocked=True)
    await standin.faults(body=body)

    await expect_unavailable(client, "sue@example.com")


async def test_slow_reply_is_unavailable_within_the_deadline(standin, client):
    await standin.faults(delay_seconds=2.0)
    started = time.monotonic()

    message = await expect_unavailable(client, "tim@example.com", timeout=0.3)

    assert "timed out" in message
    assert time.monotonic() - started < 0.8


async def test_slow_reply_is_cut_by_the_request_timeout(standin, settings):
    hasty = dataclasses.replace(settings, auth0_timeout_seconds=0.3)
    auth0 = Auth0Client(hasty, Clock())
    await standin.faults(delay_seconds=2.0)
    started = time.monotonic()

    await expect_unavailable(auth0, "uma@example.com")

    assert time.monotonic() - started < 0.8
    await auth0.aclose()


async def test_connection_refused_is_unavailable(settings):
    nowhere = dataclasses.replace(
        settings, auth0_management_url=f"http://127.0.0.1:{free_port()}"
    )
    auth0 = Auth0Client(nowhere, Clock())

    assert "ConnectError" in await expect_unavailable(auth0, "val@example.com")
    await auth0.aclose()


async def test_failure_is_logged_without_the_email(standin, client, caplog):
    await standin.faults(status=503)

    with caplog.at_level(logging.WARNING, logger="identity_service.auth0"):
        await expect_unavailable(client, "wes@example.com")

    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    assert "wes@example.com" not in caplog.text


# Concurrent checks


async def test_concurrent_checks_of_one_email_share_one_lookup(standin, client):
    await standin.create_user("xia@example.com")
    await standin.faults(delay_seconds=0.2)
    emails = ["xia@example.com", "XIA@example.com"] * 50

    statuses = await asyncio.gather(*(client.block_status(e) for e in emails))

    assert set(statuses) == {BlockStatus.NOT_BLOCKED}
    assert (await standin.stats())["users_by_email_requests"] == 1
    assert client.token_fetches == 1


async def test_checks_of_different_emails_do_not_share(standin, client):
    await standin.create_user("yan@example.com", blocked=True)

    statuses = await asyncio.gather(
        client.block_status("yan@example.com"), client.block_status("zoe@example.com")
    )

    assert statuses == [BlockStatus.BLOCKED, BlockStatus.NOT_FOUND]
    assert client.token_fetches == 1


async def test_cancelled_first_caller_leaves_the_others_an_answer(standin, client):
    await standin.create_user("abe@example.com")
    await standin.faults(delay_seconds=0.3)
    first = asyncio.create_task(client.block_status("abe@example.com"))
    second = asyncio.create_task(client.block_status("abe@example.com"))

    # Let both tasks reach the shared check; no time needs to pass for that.
    await asyncio.sleep(0)
    first.cancel()

    assert await second is BlockStatus.NOT_BLOCKED
    with pytest.raises(asyncio.CancelledError):
        await first
    assert (await standin.stats())["users_by_email_requests"] == 1


async def test_waiter_with_less_time_leaves_at_its_deadline(standin, client):
    await standin.create_user("bo@example.com")
    await standin.faults(delay_seconds=0.5)
    patient = asyncio.create_task(client.block_status("bo@example.com", timeout=2))
    await asyncio.sleep(0)
    started = time.monotonic()

    await expect_unavailable(client, "bo@example.com", timeout=0.1)

    assert time.monotonic() - started < 0.4
    assert await patient is BlockStatus.NOT_BLOCKED


async def test_closing_the_client_fails_the_checks_in_flight(standin, settings):
    auth0 = Auth0Client(settings, Clock())
    await standin.faults(delay_seconds=1.0)
    check = asyncio.create_task(auth0.block_status("cy@example.com"))
    await asyncio.sleep(0)

    await auth0.aclose()

    with pytest.raises(Auth0Unavailable, match="closed"):
        await check
