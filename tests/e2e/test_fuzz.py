"""Hypothesis against every RPC: whatever arrives, the answer is from the table.

test_hostile_input.py sends a fixed catalogue of bad values; this module lets
hypothesis build the requests instead, from arbitrary text, numbers, lists and
metadata, and also sends raw bytes that are no protobuf at all. Every answer
must be OK or a status of DESIGN's error table with an ErrorInfo reason, the
server must keep serving, and its memory must stay bounded over the run.

The examples are derandomized, so CI sees the same requests every run.
"""

import string
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from module_stack import running_stack
from tecken_identity._generated import identity_pb2 as pb

from identity_service import permissions as perms

pytestmark = pytest.mark.e2e
# One server serves the module, on TEST_DATABASE_URL when it is set.
USES_TEST_DATABASE = True

DOMAIN = "identity.tecken.mozilla.org"
SERVICE = "/tecken.identity.v1.IdentityService/"
REDIRECT = "http://127.0.0.1:8765/callback"
MANAGER = "fuzz-manager@example.com"
MIB = 1 << 20
INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1
RSS_GROWTH_LIMIT_KB = 50 * 1024

# The codes of DESIGN's error table. RESOURCE_EXHAUSTED is not among them: the
# handlers never send it, and only gRPC's own size limits, tested apart
# below, may.
TABLE = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.FAILED_PRECONDITION,
}

SETTINGS = settings(
    max_examples=500,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Protobuf strings are UTF-8, which cannot carry lone surrogates, so no
# client can send them.
TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=200)
PRINTABLE = st.text(
    st.sampled_from(string.ascii_letters + string.digits + string.punctuation + " "),
    max_size=80,
)
HEX = st.from_regex(r"[0-9a-fA-F]{32}|[0-9a-fA-F]{64}", fullmatch=True)
TOKENS = st.one_of(TEXT, HEX, st.builds(lambda key, note: f"{key}-{note}", HEX, TEXT))
TOKEN_IDS = st.one_of(TEXT, st.from_regex(r"[0-9a-f]{32}", fullmatch=True))
EMAILS = st.one_of(TEXT, st.emails(), st.builds(lambda t: t + "@example.com", TEXT))
INT32 = st.integers(INT32_MIN, INT32_MAX)
PERMISSION_NAMES = st.sampled_from(sorted(perms.ALL))
PERMISSION_LISTS = st.one_of(
    st.lists(TEXT, max_size=6),
    st.lists(PERMISSION_NAMES, max_size=6),
    st.lists(st.one_of(TEXT, PERMISSION_NAMES), max_size=70),
)
REDIRECTS = st.one_of(TEXT, st.builds(lambda path: REDIRECT + path, TEXT))

REQUESTS: dict[str, st.SearchStrategy[Any]] = {
    "StartLogin": st.builds(pb.StartLoginRequest, redirect_uri=REDIRECTS),
    "Login": st.builds(pb.LoginRequest, code=TEXT, state=TEXT, redirect_uri=REDIRECTS),
    "Logout": st.builds(pb.LogoutRequest, token=TOKENS),
    "ValidateToken": st.builds(
        pb.ValidateTokenRequest, token=TOKENS, required_permissions=PERMISSION_LISTS
    ),
    "SetPermissions": st.builds(
        pb.SetPermissionsRequest,
        email=EMAILS,
        permissions=PERMISSION_LISTS,
        superuser=st.one_of(st.none(), st.booleans()),
    ),
    "SetActive": st.builds(pb.SetActiveRequest, email=EMAILS, active=st.booleans()),
    "GetUser": st.builds(pb.GetUserRequest, email=EMAILS),
    "ListUsers": st.builds(pb.ListUsersRequest, page_size=INT32, page_token=TEXT),
    "IsBlocked": st.builds(pb.IsBlockedRequest, email=EMAILS),
    "CreateToken": st.builds(
        pb.CreateTokenRequest,
        permissions=PERMISSION_LISTS,
        expires_in_days=INT32,
        notes=TEXT,
    ),
    "ListTokens": st.builds(pb.ListTokensRequest, state=INT32),
    "RevokeToken": st.builds(pb.RevokeTokenRequest, token_id=TOKEN_IDS),
    "ExtendToken": st.builds(pb.ExtendTokenRequest, token_id=TOKEN_IDS, days=INT32),
}

# Keys that gRPC reserves for itself are left out: the client library refuses
# to send them, so they never reach the server.
METADATA_KEYS = st.from_regex(r"[a-z0-9._-]{1,20}", fullmatch=True).filter(
    lambda key: not key.startswith("grpc-")
)


def metadata_entry(key: str) -> st.SearchStrategy[tuple[str, Any]]:
    """Return entries for key: bytes for a binary key, printable text otherwise."""
    value = st.binary(max_size=64) if key.endswith("-bin") else PRINTABLE
    return st.tuples(st.just(key), value)


AUTHORIZATION_VALUES = st.one_of(
    st.sampled_from(["Bearer ", "bearer", "", "Basic x", "Bearer", "bearer  "]),
    st.builds(lambda junk: "Bearer " + junk, PRINTABLE),
    st.builds(lambda junk: "bearer " + junk, HEX),
)
ODD_METADATA = st.lists(
    st.one_of(
        METADATA_KEYS.flatmap(metadata_entry),
        st.tuples(
            st.sampled_from(["authorization", "auth-token"]), AUTHORIZATION_VALUES
        ),
    ),
    max_size=4,
)
CALLERS = st.sampled_from(["none", "user", "manager", "admin"])


class Fuzz:
    """The module's server, the keys the examples send and its starting RSS."""

    def __init__(self, stack: Any) -> None:
        self.stack = stack
        self.keys: dict[str, str | None] = {"none": None, "admin": stack.admin_key}
        self.start_rss_kb = 0

    def metadata(self, caller: str, odd: list[tuple[str, Any]]) -> list[Any]:
        """Return the caller's credential, if any, then the odd entries."""
        key = self.keys[caller]
        credential = [("authorization", f"Bearer {key}")] if key else []
        return credential + odd


def rss_kb(pid: int) -> int:
    """Return a process's resident set size in KiB from /proc."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS line")


@pytest.fixture(scope="module")
def fuzz(request, tmp_path_factory, provider, auth0_process):
    """Start one server for the module, with a user, a manager and the admin."""
    with running_stack(
        request, tmp_path_factory, provider, auth0_process, "fuzz"
    ) as stack:
        result = Fuzz(stack)
        stack.call(
            "SetPermissions",
            pb.SetPermissionsRequest(email=MANAGER, permissions=sorted(perms.ALL)),
            stack.admin_key,
        )
        result.keys["user"] = stack.sign_in("fuzz-user@example.com").session_token
        result.keys["manager"] = stack.sign_in(MANAGER).session_token
        result.start_rss_kb = rss_kb(stack.server.process.pid)
        yield result


def error_info(error: grpc.RpcError) -> error_details_pb2.ErrorInfo | None:
    """Return the ErrorInfo detail of a failed call, if it has one."""
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            for detail in status_pb2.Status.FromString(value).details:
                info = error_details_pb2.ErrorInfo()
                if detail.Unpack(info):
                    return info
    return None


def assert_from_the_table(error: grpc.RpcError) -> None:
    """Fail unless the error is a code of DESIGN's table with a reason."""
    code = error.code()
    assert code in TABLE, (code, error.details())
    info = error_info(error)
    assert info is not None, ("no ErrorInfo", code, error.details())
    assert info.domain == DOMAIN
    assert info.reason


def assert_answer_is_fine(call: Any, request: Any, metadata: list[Any]) -> None:
    """Make the call; the answer is OK or an error from the table."""
    try:
        call(request, metadata=metadata, timeout=30)
    except grpc.RpcError as error:
        assert_from_the_table(error)


@pytest.mark.parametrize("method", sorted(REQUESTS))
def test_arbitrary_requests_get_answers_from_the_table(fuzz, method):
    call = getattr(fuzz.stack.stub, method)

    @SETTINGS
    @given(request=REQUESTS[method], caller=CALLERS, odd=ODD_METADATA)
    def check(request, caller, odd):
        assert_answer_is_fine(call, request, fuzz.metadata(caller, odd))

    check()

    assert fuzz.stack.server.process.poll() is None, "the server stopped"


@pytest.mark.parametrize("method", sorted(REQUESTS))
def test_raw_bytes_get_answers_from_the_table(fuzz, method):
    # No serializer: the bytes go out as they are and the server's protobuf
    # parser is what meets them.
    call = fuzz.stack.channel.unary_unary(SERVICE + method)

    @settings(SETTINGS, max_examples=200)
    @given(body=st.binary(max_size=512), caller=CALLERS)
    def check(body, caller):
        assert_answer_is_fine(call, body, fuzz.metadata(caller, []))

    check()

    assert fuzz.stack.server.process.poll() is None, "the server stopped"


def test_request_over_the_maximum_is_refused_by_grpc(fuzz):
    stack = fuzz.stack
    request = pb.ValidateTokenRequest(token="x" * (3 * MIB))

    with pytest.raises(grpc.RpcError) as caught:
        stack.call("ValidateToken", request)

    # RESOURCE_EXHAUSTED, outside DESIGN's table, is right here: gRPC's
    # transport refuses a message over MAX_REQUEST_BYTES before any handler
    # runs, so no ErrorInfo can be attached, and the code tells the caller
    # exactly what went wrong.
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert_still_serving(fuzz)


def test_request_just_under_the_maximum_reaches_the_handler(fuzz):
    stack = fuzz.stack
    request = pb.ValidateTokenRequest(token="x" * (2 * MIB - 64))

    code, reason = stack.fails("ValidateToken", request)

    assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "TOKEN_MALFORMED")


def test_metadata_over_the_maximum_is_refused(fuzz):
    stack = fuzz.stack
    metadata = (("x-padding", "p" * (20 * 1024)),)

    with pytest.raises(grpc.RpcError) as caught:
        stack.stub.ValidateToken(
            pb.ValidateTokenRequest(token=stack.admin_key),
            metadata=metadata,
            timeout=15,
        )

    # Like an oversized message, oversized metadata is refused by gRPC's
    # transport before any handler runs.
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert_still_serving(fuzz)


def assert_still_serving(fuzz: Fuzz) -> None:
    """Fail unless the server is alive, healthy and validates the admin key."""
    stack = fuzz.stack
    health = health_pb2_grpc.HealthStub(stack.channel)

    answer = health.Check(health_pb2.HealthCheckRequest(), timeout=10)
    admin = stack.call("ValidateToken", pb.ValidateTokenRequest(token=stack.admin_key))

    assert stack.server.process.poll() is None
    assert answer.status == health_pb2.HealthCheckResponse.SERVING
    assert admin.user.superuser


def test_server_serves_and_stays_small_after_the_run(fuzz):
    assert_still_serving(fuzz)

    grown = rss_kb(fuzz.stack.server.process.pid) - fuzz.start_rss_kb

    assert grown < RSS_GROWTH_LIMIT_KB, f"RSS grew by {grown} KiB"
    log = fuzz.stack.server.text()
    assert "Traceback" not in log
    assert "code=INTERNAL" not in log
    assert "code=UNKNOWN" not in log
