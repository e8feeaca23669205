"""Many calls at once: the Auth0 re-check and the management token are shared.

DESIGN: concurrent calls for the same user share one Auth0 request, and the
management token is cached until shortly before it expires, so one server
process fetches it once however many checks it makes. The stand-in counts
every request it receives, the test's own included: Auth0Control fetches a
token of its own before its first create_user, so token counts are read after
that and before the server's first check.
"""

import asyncio

import grpc
import pytest
from tecken_identity._generated import identity_pb2 as pb
from tecken_identity._generated import identity_pb2_grpc as pb_grpc

pytestmark = pytest.mark.e2e

INTERVAL = 3600
CALLS = 100

# Enough rounds that a share which works only when the calls happen to line
# up cannot pass by luck; together they stay far below the management
# token's day-long lifetime on the server's moved clock.
ROUNDS = 10


async def validate_concurrently(target: str, tokens: list[str]) -> list:
    """Send one ValidateToken per token, all at once on one channel."""
    async with grpc.aio.insecure_channel(target) as channel:
        stub = pb_grpc.IdentityServiceStub(channel)
        calls = [
            stub.ValidateToken(pb.ValidateTokenRequest(token=token), timeout=30)
            for token in tokens
        ]
        return await asyncio.gather(*calls)


def lookups(stack) -> int:
    """Return how many users-by-email requests the stand-in has answered."""
    return stack.auth0.stats()["users_by_email_requests"]


def token_fetches(stack) -> int:
    """Return how many client-credentials tokens the stand-in has issued."""
    return stack.auth0.stats()["token_requests"]


def test_concurrent_validations_of_a_due_user_make_one_lookup(stack):
    stack.auth0.create_user("quinn@example.com")
    session = stack.sign_in("quinn@example.com").session_token

    per_round = []
    for _ in range(ROUNDS):
        stack.advance(INTERVAL + 1)
        before = lookups(stack)

        answers = asyncio.run(validate_concurrently(stack.target, [session] * CALLS))

        per_round.append(lookups(stack) - before)
        emails = [answer.user.email for answer in answers]
        assert emails == ["quinn@example.com"] * CALLS

    assert per_round == [1] * ROUNDS


def test_first_checks_of_a_fresh_server_fetch_one_management_token(stack):
    # The admin key's owner was made by the CLI and never checked, so its
    # first validation is due, and no management token is fetched yet: the
    # hundred calls race for the first token.
    assert stack.auth0.stats() == {
        "token_requests": 0,
        "users_by_email_requests": 0,
        "search_requests": 0,
    }

    answers = asyncio.run(
        validate_concurrently(stack.target, [stack.admin_key] * CALLS)
    )

    assert all(answer.user.superuser for answer in answers)
    assert token_fetches(stack) == 1
    assert lookups(stack) >= 1
    assert stack.auth0.stats()["search_requests"] == 0


def test_one_management_token_serves_every_check_of_the_process(stack):
    emails = [f"user{index}@example.com" for index in range(5)]
    for email in emails:
        stack.auth0.create_user(email)
    tokens_before = token_fetches(stack)
    sessions = [stack.sign_in(email).session_token for email in emails]
    assert lookups(stack) == len(emails)

    # Each round makes every user due again, and twenty calls per user arrive
    # together, interleaved, so different users' checks overlap too.
    for round_number in range(4):
        stack.advance(INTERVAL + 1)
        before = lookups(stack)

        answers = asyncio.run(validate_concurrently(stack.target, sessions * 20))

        assert [answer.user.email for answer in answers] == emails * 20
        assert lookups(stack) - before >= len(emails), round_number

    assert token_fetches(stack) - tokens_before == 1
    assert stack.auth0.stats()["search_requests"] == 0
