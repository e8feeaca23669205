"""IdentityClient against grpcio-testing's channel, the server side scripted.

Each test makes a call in a worker thread, takes the RPC from the testing
channel as the server would, checks what was sent and ends the RPC with the
response or the status under test.
"""

from collections.abc import Callable
from concurrent import futures
from typing import Any

import grpc
import grpc_testing
import pytest
from client_fakes import CASES, KEY, SERVICE, Case, case, rich_trailers

import tecken_identity
from tecken_identity import IdentityClient
from tecken_identity._generated import identity_pb2 as pb

OK = grpc.StatusCode.OK


class Exchange:
    """A client on a testing channel, and a way to answer its calls."""

    def __init__(self, key: str | None = KEY) -> None:
        self.channel = grpc_testing.channel([SERVICE], grpc_testing.strict_real_time())
        self.client = IdentityClient(key=key, channel=self.channel)
        self.pool = futures.ThreadPoolExecutor(max_workers=1)

    def run(
        self,
        call: Callable[[IdentityClient], Any],
        method: str,
        response: Any = None,
        *,
        code: grpc.StatusCode = OK,
        trailers: tuple[tuple[str, Any], ...] = (),
        details: str = "",
    ) -> tuple[Any, Any, dict[str, str]]:
        """Make call, answer its RPC, and return (result, request, metadata)."""
        future = self.pool.submit(call, self.client)
        metadata, request, rpc = self.channel.take_unary_unary(
            SERVICE.methods_by_name[method]
        )
        rpc.terminate(response, trailers, code, details)
        return future.result(timeout=10), request, dict(metadata)

    def close(self) -> None:
        self.pool.shutdown()


@pytest.fixture
def exchange():
    result = Exchange()
    try:
        yield result
    finally:
        result.close()


def invoke(item: Case) -> Callable[[IdentityClient], Any]:
    """Return a function that makes the item's call on a client."""
    return lambda client: getattr(client, item.call)(*item.args, **item.kwargs)


def test_the_table_covers_every_rpc():
    assert sorted(case.method for case in CASES) == sorted(SERVICE.methods_by_name)


@pytest.mark.parametrize("item", CASES, ids=lambda item: item.method)
def test_each_method_sends_its_request_and_returns_plain_values(exchange, item):
    result, request, metadata = exchange.run(invoke(item), item.method, item.response)

    assert request == item.request
    assert result == item.result
    assert metadata["authorization"] == f"Bearer {KEY}"


def test_a_client_without_a_key_sends_no_authorization():
    exchange = Exchange(key=None)
    try:
        _, _, metadata = exchange.run(
            lambda client: client.validate_token(KEY),
            "ValidateToken",
            case("ValidateToken").response,
        )
    finally:
        exchange.close()

    assert "authorization" not in metadata


def test_set_permissions_leaves_superuser_unset_unless_given(exchange):
    _, request, _ = exchange.run(
        lambda client: client.set_permissions("a@example.com", []),
        "SetPermissions",
        case("SetPermissions").response,
    )

    assert not request.HasField("superuser")


def test_create_token_without_days_asks_for_the_servers_default(exchange):
    _, request, _ = exchange.run(
        lambda client: client.create_token(["upload.upload_symbols"]),
        "CreateToken",
        case("CreateToken").response,
    )

    assert request.expires_in_days == 0


def test_list_tokens_takes_a_state_by_name(exchange):
    _, request, _ = exchange.run(
        lambda client: client.list_tokens("expired"),
        "ListTokens",
        case("ListTokens").response,
    )

    assert request.state == pb.TOKEN_STATE_EXPIRED


def test_iter_users_follows_next_page_tokens(exchange):
    pages = [
        pb.ListUsersResponse(users=[pb.User(email="a@x.org")], next_page_token="p2"),
        pb.ListUsersResponse(users=[pb.User(email="b@x.org")], next_page_token=""),
    ]
    future = exchange.pool.submit(
        lambda: [user.email for user in exchange.client.iter_users(page_size=1)]
    )
    sent = []
    for page in pages:
        _, request, rpc = exchange.channel.take_unary_unary(
            SERVICE.methods_by_name["ListUsers"]
        )
        sent.append(request.page_token)
        rpc.terminate(page, (), OK, "")

    assert future.result(timeout=10) == ["a@x.org", "b@x.org"]
    assert sent == ["", "p2"]


def test_a_failure_is_raised_as_our_exception_chained_to_the_rpc_error(exchange):
    trailers = rich_trailers(
        grpc.StatusCode.UNAUTHENTICATED, "TOKEN_EXPIRED", metadata={"a": "b"}
    )

    with pytest.raises(tecken_identity.TokenExpired) as caught:
        exchange.run(
            lambda client: client.validate_token(KEY),
            "ValidateToken",
            code=grpc.StatusCode.UNAUTHENTICATED,
            trailers=trailers,
            details="the token has expired",
        )

    error = caught.value
    assert isinstance(error, tecken_identity.Unauthenticated)
    assert isinstance(error.__cause__, grpc.RpcError)
    assert (error.reason, error.metadata) == ("TOKEN_EXPIRED", {"a": "b"})
    assert error.domain == "identity.tecken.mozilla.org"
    assert str(error) == "the token has expired (TOKEN_EXPIRED)"


def test_the_key_stays_out_of_the_clients_repr(exchange):
    assert KEY not in repr(exchange.client)
    assert "IdentityClient" in repr(exchange.client)


def test_secrets_stay_out_of_the_values_repr():
    for item in CASES:
        if item.method in ("Login", "CreateToken"):
            assert KEY not in repr(item.result)
