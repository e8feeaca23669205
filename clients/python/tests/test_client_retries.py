"""Deadlines and retries, which live in gRPC's channel, on a scripted server.

grpcio-testing's channel neither keeps deadlines nor retries, since both are
done by gRPC's core below the Python API; so these tests use a real server on
a free loopback port, with backoffs made short so that no test waits long.
"""

import json
import time

import grpc
import pytest
from client_fakes import HANG, KEY, Failure, ScriptedServer, case

import tecken_identity
from tecken_identity import AsyncIdentityClient, IdentityClient, RetryPolicy
from tecken_identity._channel import service_config

FAST = RetryPolicy(initial_backoff=0.01, max_backoff=0.05)
UNAVAILABLE = Failure(grpc.StatusCode.UNAVAILABLE, "AUTH0_UNAVAILABLE")


@pytest.fixture
def server():
    scripted = ScriptedServer().start()
    try:
        yield scripted
    finally:
        scripted.stop()


def test_unavailable_is_retried_until_an_attempt_works(server):
    server.script("GetUser", UNAVAILABLE, UNAVAILABLE, case("GetUser").response)

    with IdentityClient(server.target, key=KEY, retry=FAST) as client:
        user = client.get_user("alice@example.com")

    assert user == case("GetUser").result
    assert len(server.calls("GetUser")) == 3


def test_unavailable_is_raised_after_the_last_attempt(server):
    server.script("GetUser", UNAVAILABLE)

    with IdentityClient(server.target, key=KEY, retry=FAST) as client:
        with pytest.raises(tecken_identity.Auth0Unavailable):
            client.get_user("alice@example.com")

    assert len(server.calls("GetUser")) == 5


@pytest.mark.parametrize(
    "code",
    [
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.ABORTED,
    ],
    ids=lambda code: code.name,
)
def test_nothing_but_unavailable_is_retried(server, code):
    server.script("GetUser", Failure(code), case("GetUser").response)

    with IdentityClient(server.target, key=KEY, retry=FAST) as client:
        with pytest.raises(tecken_identity.IdentityError):
            client.get_user("alice@example.com")

    assert len(server.calls("GetUser")) == 1


def test_login_is_never_retried_since_its_state_works_once(server):
    server.script(
        "Login",
        Failure(grpc.StatusCode.UNAVAILABLE, "PROVIDER_UNAVAILABLE"),
        case("Login").response,
    )

    with IdentityClient(server.target, retry=FAST) as client:
        with pytest.raises(tecken_identity.ProviderUnavailable):
            client.login("code", "state", "http://127.0.0.1:8765/callback")

    assert len(server.calls("Login")) == 1


def test_one_attempt_turns_retries_off(server):
    server.script("GetUser", UNAVAILABLE, case("GetUser").response)

    with IdentityClient(
        server.target, key=KEY, retry=RetryPolicy(max_attempts=1)
    ) as client:
        with pytest.raises(tecken_identity.Unavailable):
            client.get_user("alice@example.com")

    assert len(server.calls("GetUser")) == 1


async def test_the_async_client_retries_the_same_way(server):
    server.script("GetUser", UNAVAILABLE, UNAVAILABLE, case("GetUser").response)
    server.script("SetActive", Failure(grpc.StatusCode.PERMISSION_DENIED))

    async with AsyncIdentityClient(server.target, key=KEY, retry=FAST) as client:
        user = await client.get_user("alice@example.com")
        with pytest.raises(tecken_identity.PermissionDenied):
            await client.set_active("alice@example.com", False)

    assert user == case("GetUser").result
    assert len(server.calls("GetUser")) == 3
    assert len(server.calls("SetActive")) == 1


def test_retries_wait_a_jittered_backoff_and_stop_at_the_deadline(server):
    server.script("GetUser", UNAVAILABLE)
    slow = RetryPolicy(initial_backoff=30, max_backoff=60)

    started = time.monotonic()
    with IdentityClient(server.target, key=KEY, retry=slow, timeout=0.5) as client:
        with pytest.raises(
            (tecken_identity.Unavailable, tecken_identity.DeadlineExceeded)
        ):
            client.get_user("alice@example.com")

    # A backoff drawn from up to 30 seconds, cut short by a half-second deadline.
    assert time.monotonic() - started < 5
    assert 1 <= len(server.calls("GetUser")) <= 3


def test_every_call_carries_the_default_deadline(server):
    server.script("GetUser", case("GetUser").response)

    with IdentityClient(server.target, key=KEY) as client:
        client.get_user("alice@example.com")

    (received,) = server.calls("GetUser")
    assert received.time_remaining is not None
    assert tecken_identity.DEFAULT_TIMEOUT == 10
    assert 5 < received.time_remaining <= 10.5


def test_a_call_may_set_its_own_deadline(server):
    server.script("GetUser", case("GetUser").response)

    with IdentityClient(server.target, key=KEY, timeout=30) as client:
        client.get_user("alice@example.com")
        client.get_user("alice@example.com", timeout=3)

    # The server's clock reads the deadline with some slack, hence the margins.
    first, second = server.calls("GetUser")
    assert 20 < first.time_remaining <= 30.5
    assert 0 < second.time_remaining <= 3.5


def test_a_call_past_its_deadline_raises_deadline_exceeded(server):
    server.script("ValidateToken", HANG)

    with IdentityClient(server.target, timeout=0.2) as client:
        with pytest.raises(tecken_identity.DeadlineExceeded) as caught:
            client.validate_token(KEY)

    assert caught.value.reason == ""


async def test_the_async_client_keeps_deadlines_too(server):
    server.script("ValidateToken", HANG)
    server.script("GetUser", case("GetUser").response)

    async with AsyncIdentityClient(server.target, key=KEY, timeout=4) as client:
        await client.get_user("alice@example.com")
        with pytest.raises(tecken_identity.DeadlineExceeded):
            await client.validate_token(KEY, timeout=0.2)

    (received,) = server.calls("GetUser")
    assert 2 < received.time_remaining <= 4.5


def test_the_service_config_retries_only_unavailable():
    config = service_config(RetryPolicy())

    retried = [entry for entry in config["methodConfig"] if "retryPolicy" in entry]
    (entry,) = retried
    assert entry["retryPolicy"]["retryableStatusCodes"] == ["UNAVAILABLE"]
    assert entry["name"] == [{"service": "tecken.identity.v1.IdentityService"}]
    assert json.loads(json.dumps(config)) == config


@pytest.mark.parametrize(
    "options",
    [
        {"max_attempts": 0},
        {"max_attempts": 6},
        {"initial_backoff": 0},
        {"initial_backoff": 2, "max_backoff": 1},
        {"backoff_multiplier": 0.5},
    ],
)
def test_a_retry_policy_grpc_would_refuse_is_refused_at_once(options):
    with pytest.raises(ValueError):
        RetryPolicy(**options)
