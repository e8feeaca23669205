"""The Auth0 fault matrix, through the real server and the Auth0 stand-in.

Each test makes one person's check due, switches one fault on at the stand-in
(or stops Auth0 altogether) and calls ValidateToken with a deadline. Whatever
the fault, the same promises hold: the overdue token is refused with
UNAVAILABLE and AUTH0_UNAVAILABLE before the caller's deadline; the user stays
active, with no inactive reason and the last check time unchanged; and once
the fault clears, the same token works again. The README's "Failure
behaviour" section is the table of these rows.

The superuser's own key falls due with everybody else's, so the user is read
with GetUser only after the fault is cleared.
"""

import asyncio
import dataclasses
import time
import urllib.parse
from collections.abc import Callable, Iterator

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from tecken_identity._generated import identity_pb2 as pb
from tecken_identity._generated import identity_pb2_grpc as pb_grpc

from identity_service.devstack import processes

pytestmark = pytest.mark.e2e

HOST = "127.0.0.1"
INTERVAL = 3600
# Past the management token's lifetime (a day), so the next check needs a new
# one from the token endpoint; API tokens live a year, so they still work.
TOKEN_LIFETIME = 86400
DEADLINE = 2.0
# A fault answered at once costs one or two loopback round trips; this is far
# above that and far below the deadline.
AT_ONCE = 1.0
MANAGE = "tokens.manage_tokens"


@dataclasses.dataclass(frozen=True)
class Person:
    """A user with an API token, and their check time before any fault."""

    email: str
    key: str
    check_time: object


def reason_of(error: grpc.RpcError) -> str:
    """Return the ErrorInfo reason carried by a failed call."""
    details = dict(error.trailing_metadata() or ()).get("grpc-status-details-bin")
    if details is None:
        return ""

    for detail in status_pb2.Status.FromString(details).details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return info.reason
    return ""


def get_user(stack, email: str) -> pb.User:
    """Read a user as the superuser does."""
    request = pb.GetUserRequest(email=email)
    return stack.call("GetUser", request, stack.admin_key).user


def validate(stack, key: str, deadline: float = DEADLINE) -> pb.ValidateTokenResponse:
    """Validate a token with the caller's deadline."""
    request = pb.ValidateTokenRequest(token=key)
    return stack.call("ValidateToken", request, timeout=deadline)


def enrol(stack, email: str, *, in_auth0: bool = True) -> Person:
    """Sign a person in, give them an API token and note their check time."""
    if in_auth0:
        stack.auth0.create_user(email)
    session = stack.sign_in(email).session_token

    grant = pb.SetPermissionsRequest(email=email, permissions=[MANAGE])
    stack.call("SetPermissions", grant, stack.admin_key)
    create = pb.CreateTokenRequest(permissions=[MANAGE])
    key = stack.call("CreateToken", create, session).token

    check_time = get_user(stack, email).auth0_check_time
    assert check_time.seconds > 0
    return Person(email=email, key=key, check_time=check_time)


def refuse_in_time(stack, person: Person, deadline: float = DEADLINE) -> float:
    """Assert the person's token is refused as Auth0 being unavailable, in time.

    Returns:
        how long the refusal took, in seconds.
    """
    started = time.monotonic()
    with pytest.raises(grpc.RpcError) as caught:
        validate(stack, person.key, deadline)
    took = time.monotonic() - started

    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert reason_of(caught.value) == "AUTH0_UNAVAILABLE"
    assert took < deadline
    return took


def assert_unharmed_and_back(stack, person: Person) -> None:
    """Clear the faults; the user is as before, and the same token works."""
    stack.auth0.faults()

    user = get_user(stack, person.email)
    assert user.active
    assert user.inactive_reason == pb.INACTIVE_REASON_UNSPECIFIED
    assert user.auth0_check_time == person.check_time

    answer = validate(stack, person.key)
    assert answer.user.email == person.email
    assert answer.user.active
    assert answer.user.auth0_check_time != person.check_time
    assert person.email not in stack.server.text()


@pytest.fixture
def respawn(stack) -> Iterator[Callable[..., None]]:
    """Yield a function that restarts the stack's server with other settings.

    The new server shares the database and the clock file, so the superuser
    key and every user carry over.
    """
    started: list[processes.Child] = []

    def restart(**settings: str) -> None:
        stack.channel.close()
        stack.server.stop()

        stack.env = {**stack.env, **settings}
        stack.server = processes.start_identity(stack.env)
        started.append(stack.server)
        stack.target = f"{HOST}:{stack.server.port}"
        stack.env["IDENTITY_TARGET"] = stack.target
        stack.channel = grpc.insecure_channel(stack.target)
        stack.stub = pb_grpc.IdentityServiceStub(stack.channel)

    yield restart
    stack.channel.close()
    for child in started:
        child.stop()


def start_second_auth0(stack, port: int = 0) -> processes.Child:
    """Start another Auth0 stand-in that accepts the server's credentials."""
    return processes.start_auth0(
        HOST, port, stack.env["OIDC_RP_CLIENT_ID"], stack.env["OIDC_RP_CLIENT_SECRET"]
    )


# Rows where Auth0 answers, badly or slowly

LOOKUP_FAULTS = {
    "slow-reply": ({"delay_seconds": 3}, DEADLINE),
    "status-500": ({"status": 500}, AT_ONCE),
    "status-503": ({"status": 503}, AT_ONCE),
    "rate-limited-for-an-hour": ({"rate_limit_reset_in": 3600}, AT_ONCE),
    "body-not-json": ({"body": "not-json"}, AT_ONCE),
    "body-wrong-shape": ({"body": "wrong-shape"}, AT_ONCE),
    "blocked-as-a-string": ({"body": "blocked-string"}, AT_ONCE),
}


@pytest.mark.parametrize(
    ("faults", "within"), LOOKUP_FAULTS.values(), ids=LOOKUP_FAULTS.keys()
)
def test_lookup_fault_refuses_in_time_and_deactivates_nobody(stack, faults, within):
    person = enrol(stack, "lookup@example.com")
    stack.advance(INTERVAL + 1)
    stack.auth0.faults(**faults)

    assert refuse_in_time(stack, person) < within
    assert refuse_in_time(stack, person) < within

    assert_unharmed_and_back(stack, person)


TOKEN_FAULTS = {
    "token-endpoint-503": ({"status": 503, "applies_to": "token"}, AT_ONCE),
    "token-endpoint-global-limit": ({"token_status": 500}, AT_ONCE),
    "token-endpoint-slow": ({"delay_seconds": 3, "applies_to": "token"}, DEADLINE),
    "token-endpoint-not-json": ({"body": "not-json", "applies_to": "token"}, AT_ONCE),
    "token-endpoint-rate-limited-for-an-hour": (
        {"rate_limit_reset_in": 3600, "applies_to": "token"},
        AT_ONCE,
    ),
}


@pytest.mark.parametrize(
    ("faults", "within"), TOKEN_FAULTS.values(), ids=TOKEN_FAULTS.keys()
)
def test_token_endpoint_down_while_lookups_work_refuses_in_time(stack, faults, within):
    person = enrol(stack, "tokenless@example.com")
    stack.advance(TOKEN_LIFETIME + 1)
    stack.auth0.faults(**faults)
    before = stack.auth0.stats()

    assert refuse_in_time(stack, person) < within

    after = stack.auth0.stats()
    assert after["token_requests"] == before["token_requests"] + 1
    assert after["users_by_email_requests"] == before["users_by_email_requests"]
    assert_unharmed_and_back(stack, person)


def test_token_endpoint_down_changes_nothing_while_the_token_lasts(stack):
    person = enrol(stack, "cached@example.com")
    stack.advance(INTERVAL + 1)
    stack.auth0.faults(status=503, applies_to="token")
    before = stack.auth0.stats()["token_requests"]

    answer = validate(stack, person.key)

    assert answer.user.auth0_check_time != person.check_time
    assert stack.auth0.stats()["token_requests"] == before


# 401 on the management token: one fresh token, then failure


def test_fresh_token_refused_too_fails_after_one_new_fetch(stack):
    person = enrol(stack, "expired@example.com")
    stack.advance(INTERVAL + 1)
    stack.auth0.faults(status=401)
    before = stack.auth0.stats()

    assert refuse_in_time(stack, person) < AT_ONCE

    after = stack.auth0.stats()
    assert after["token_requests"] == before["token_requests"] + 1
    assert after["users_by_email_requests"] == before["users_by_email_requests"] + 2
    assert_unharmed_and_back(stack, person)


def test_rotated_secret_fails_after_one_new_fetch(stack):
    person = enrol(stack, "rotated@example.com")
    stack.advance(INTERVAL + 1)
    # Every issued token stops working and the old secret no longer gets one.
    stack.auth0.faults(revoke_tokens=True, token_status=401)
    before = stack.auth0.stats()

    assert refuse_in_time(stack, person) < AT_ONCE

    after = stack.auth0.stats()
    assert after["token_requests"] == before["token_requests"] + 1
    assert after["users_by_email_requests"] == before["users_by_email_requests"] + 1
    assert_unharmed_and_back(stack, person)


# 429 with a reset a second away


def test_rate_limit_for_a_second_is_waited_out_when_the_deadline_allows(stack):
    person = enrol(stack, "patient@example.com")
    stack.advance(INTERVAL + 1)
    stack.auth0.faults(rate_limit_reset_in=1)
    before = stack.auth0.stats()["users_by_email_requests"]

    started = time.monotonic()
    answer = validate(stack, person.key, deadline=4.0)
    took = time.monotonic() - started

    assert answer.user.email == person.email
    assert took < 4.0
    assert stack.auth0.stats()["users_by_email_requests"] >= before + 2
    stack.auth0.faults()
    assert get_user(stack, person.email).auth0_check_time != person.check_time


def test_rate_limit_for_a_second_beyond_the_deadline_refuses_at_once(stack):
    person = enrol(stack, "hasty@example.com")
    stack.advance(INTERVAL + 1)
    stack.auth0.faults(rate_limit_reset_in=1)

    assert refuse_in_time(stack, person, deadline=0.8) < 0.5

    assert_unharmed_and_back(stack, person)


# Auth0 unreachable


def test_connection_refused_refuses_at_once(stack, respawn):
    auth0 = start_second_auth0(stack)
    try:
        url = f"http://{HOST}:{auth0.port}"
        domain = urllib.parse.urlsplit(url).netloc
        respawn(AUTH0_MANAGEMENT_URL=url, AUTH0_DOMAIN=domain)
        person = enrol(stack, "nowhere@example.com", in_auth0=False)
        stack.advance(INTERVAL + 1)

        auth0.stop()
        assert refuse_in_time(stack, person) < AT_ONCE
        assert refuse_in_time(stack, person) < AT_ONCE

        # Auth0 back on the same address, knowing nobody: the user counts as
        # not blocked, and the old management token is replaced once.
        auth0 = start_second_auth0(stack, port=auth0.port)
        assert_unharmed_and_back(stack, person)
    finally:
        auth0.stop()


# A slow reply, with another caller who has more time


def test_caller_joining_a_slow_check_leaves_at_its_own_deadline(stack):
    person = enrol(stack, "shared@example.com")
    stack.advance(INTERVAL + 1)
    stack.auth0.faults(delay_seconds=5)
    before = stack.auth0.stats()["users_by_email_requests"]

    patient = stack.stub.ValidateToken.future(
        pb.ValidateTokenRequest(token=person.key), timeout=10
    )
    # Each stats request is a real round trip, so this waits for the event
    # (the patient caller's lookup reaching Auth0), not for time to pass.
    for _ in range(5000):
        if stack.auth0.stats()["users_by_email_requests"] > before:
            break

    assert refuse_in_time(stack, person, deadline=1.0) < 1.0
    assert stack.auth0.stats()["users_by_email_requests"] == before + 1
    with pytest.raises(grpc.RpcError) as caught:
        patient.result()
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert reason_of(caught.value) == "AUTH0_UNAVAILABLE"

    assert_unharmed_and_back(stack, person)


# The rate budget


@dataclasses.dataclass(frozen=True)
class Answer:
    """How one call ended: "OK" or the code and reason, its message, its time."""

    outcome: str
    message: str
    seconds: float


async def validate_at_once(target: str, keys: list[str], deadline: float) -> list:
    """Validate every key at the same moment; return each call's Answer."""

    async def one(stub: pb_grpc.IdentityServiceStub, key: str) -> Answer:
        started = time.monotonic()
        try:
            await stub.ValidateToken(
                pb.ValidateTokenRequest(token=key), timeout=deadline
            )
        except grpc.aio.AioRpcError as error:
            outcome = f"{error.code().name} {reason_of(error)}"
            message = error.details() or ""
        else:
            outcome, message = "OK", ""
        return Answer(outcome, message, time.monotonic() - started)

    async with grpc.aio.insecure_channel(target) as channel:
        stub = pb_grpc.IdentityServiceStub(channel)
        return await asyncio.gather(*(one(stub, key) for key in keys))


def test_many_users_due_at_once_never_exceed_the_ceiling(stack, respawn):
    respawn(AUTH0_MAX_REQUESTS_PER_SECOND="20")
    emails = [f"crowd{number}@example.com" for number in range(30)]
    sessions = [stack.sign_in(email).session_token for email in emails]
    stack.advance(INTERVAL + 1)

    answers = asyncio.run(validate_at_once(stack.target, sessions, deadline=1.0))

    rate = stack.auth0.http.get("/_standin/rate").json()
    assert rate["requests"] > len(emails)
    assert rate["max_requests_in_any_second"] <= 20
    assert {a.outcome for a in answers} == {"OK", "UNAVAILABLE AUTH0_UNAVAILABLE"}
    assert all(a.seconds < 1.0 for a in answers)
    assert sum(a.outcome != "OK" for a in answers) >= 10

    # A call refused a turn hears so at once. A call given a late turn may
    # still run out of time at Auth0, and is refused by its deadline instead.
    over_budget = [a.seconds for a in answers if "request budget" in a.message]
    assert over_budget
    assert max(over_budget) < 0.5
