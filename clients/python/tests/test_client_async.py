"""AsyncIdentityClient against a scripted server on a free loopback port.

grpcio-testing's channel has no asyncio form, so the asyncio client talks to
a real gRPC server whose answers each test scripts in advance.
"""

import grpc
import pytest
from client_fakes import (
    CASES,
    KEY,
    STATUS_CLASSES,
    Failure,
    ScriptedServer,
    case,
    reason_cases,
)

import tecken_identity
from tecken_identity import AsyncIdentityClient, RetryPolicy


@pytest.fixture
def server():
    scripted = ScriptedServer().start()
    try:
        yield scripted
    finally:
        scripted.stop()


def client_of(server, **options):
    """Return an asyncio client of the scripted server."""
    return AsyncIdentityClient(server.target, key=KEY, **options)


@pytest.mark.parametrize("item", CASES, ids=lambda item: item.method)
async def test_each_method_sends_its_request_and_returns_plain_values(server, item):
    server.script(item.method, item.response)

    async with client_of(server) as client:
        result = await getattr(client, item.call)(*item.args, **item.kwargs)

    (received,) = server.calls(item.method)
    assert received.request == item.request
    assert received.metadata["authorization"] == f"Bearer {KEY}"
    assert result == item.result


@pytest.mark.parametrize(
    ("code", "reason", "name"), list(reason_cases()), ids=lambda value: str(value)
)
async def test_every_reason_raises_its_own_class(server, code, reason, name):
    server.script("GetUser", Failure(code, reason, {"field": "email"}))

    async with client_of(server, retry=RetryPolicy(max_attempts=1)) as client:
        with pytest.raises(tecken_identity.IdentityError) as caught:
            await client.get_user("alice@example.com")

    assert type(caught.value).__name__ == name
    assert caught.value.reason == reason
    assert caught.value.metadata == {"field": "email"}
    assert isinstance(caught.value.__cause__, grpc.aio.AioRpcError)


@pytest.mark.parametrize(
    "code",
    [code for code in STATUS_CLASSES if code is not grpc.StatusCode.DEADLINE_EXCEEDED],
    ids=lambda code: code.name,
)
async def test_every_status_raises_its_own_class(server, code):
    server.script("GetUser", Failure(code))

    async with client_of(server, retry=RetryPolicy(max_attempts=1)) as client:
        with pytest.raises(tecken_identity.IdentityError) as caught:
            await client.get_user("alice@example.com")

    assert type(caught.value).__name__ == STATUS_CLASSES[code]


async def test_iter_users_follows_next_page_tokens(server):
    first = case("ListUsers").response
    last = type(first)(users=first.users)
    server.script("ListUsers", first, last)

    async with client_of(server) as client:
        emails = [user.email async for user in client.iter_users(page_size=1)]

    assert len(emails) == 2
    tokens = [call.request.page_token for call in server.calls("ListUsers")]
    assert tokens == ["", first.next_page_token]


async def test_close_ends_the_channel(server):
    server.script("GetUser", case("GetUser").response)
    client = client_of(server)

    await client.close()

    with pytest.raises(Exception):  # noqa: B017, PT011
        await client.get_user("alice@example.com")
    assert server.calls("GetUser") == []


async def test_the_key_stays_out_of_the_repr(server):
    async with client_of(server) as client:
        assert KEY not in repr(client)
