"""Who may call what: every RPC against every kind of caller, as a table.

Exactly the cells DESIGN's "Who may call what" allows succeed. A denied cell
gets the same code, reason and message whether the user or token it names
exists or not, so a caller who may not look learns nothing by trying. Tokens
minted by tokens never carry more than their parent, however long the chain,
and lose what their owner loses.

Calls that name another user's token by id (RevokeToken, ExtendToken) are
refused with NOT_FOUND rather than PERMISSION_DENIED: the server answers the
same for a token that is not the caller's and for one that does not exist,
which is what keeps token ids from being probed.
"""

import dataclasses
import urllib.parse
from collections.abc import Callable
from typing import Any

import grpc
import httpx
import pytest
from google.rpc import error_details_pb2, status_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from module_stack import running_stack
from tecken_identity._generated import identity_pb2 as pb

from identity_service import permissions as perms

pytestmark = pytest.mark.e2e
# One server serves the module, on TEST_DATABASE_URL when it is set.
USES_TEST_DATABASE = True

REDIRECT = "http://127.0.0.1:8765/callback"
UPLOAD = perms.UPLOAD_SYMBOLS
TRY = perms.UPLOAD_TRY_SYMBOLS
VIEW = perms.VIEW_ALL_UPLOADS
MANAGE = perms.MANAGE_TOKENS
OWNER = "owner@example.com"
OTHER = "other@example.com"
ORDINARY = "ordinary@example.com"
FALLEN = "fallen-admin@example.com"
TARGET = "target@example.com"
NOBODY = "nobody-at-all@example.com"
UNKNOWN_TOKEN_ID = "0" * 32
DAY = 86400

CALLERS = [
    "none",
    "expired",
    "revoked",
    "other",
    "ordinary",
    "owner",
    "superuser",
    "fallen_superuser",
]
ANYBODY = frozenset(CALLERS)
SIGNED_IN = frozenset({"other", "ordinary", "owner", "superuser"})
SUPERUSER = frozenset({"superuser"})
OPEN_RPCS = {"StartLogin", "Login", "Logout", "ValidateToken"}


@dataclasses.dataclass
class Matrix:
    """The module's server, one key per kind of caller and the owner's token."""

    stack: Any
    keys: dict[str, str | None]
    owner_token_id: str = ""

    def metadata(self, caller: str) -> tuple[tuple[str, str], ...]:
        key = self.keys[caller]
        return (("authorization", f"Bearer {key}"),) if key else ()

    def call(self, method: str, request: Any, caller: str) -> Any:
        stub_method = getattr(self.stack.stub, method)
        return stub_method(request, metadata=self.metadata(caller), timeout=15)

    def fresh_token(
        self, permissions: list[str] | None = None
    ) -> pb.CreateTokenResponse:
        """Create a token of the owner's that nothing else uses."""
        request = pb.CreateTokenRequest(permissions=permissions or [UPLOAD])
        return self.call("CreateToken", request, "owner")


def login_request(stack: Any) -> pb.LoginRequest:
    """Walk a browser through the provider; return the Login request it ends in."""
    started = stack.call("StartLogin", pb.StartLoginRequest(redirect_uri=REDIRECT))
    query = urllib.parse.urlsplit(started.authorization_url).query
    response = httpx.post(
        f"{stack.provider}/oauth2/authorize?{query}",
        data={"sub": "login-matrix@example.com"},
        follow_redirects=False,
        timeout=10,
    )
    assert response.status_code == 302, response.text
    code = urllib.parse.parse_qs(
        urllib.parse.urlsplit(response.headers["location"]).query
    )
    return pb.LoginRequest(
        code=code["code"][0], state=started.state, redirect_uri=REDIRECT
    )


@pytest.fixture(scope="module")
def matrix(request, tmp_path_factory, provider, auth0_process):
    """Start a server and make a key for every kind of caller."""
    with running_stack(
        request, tmp_path_factory, provider, auth0_process, "authz"
    ) as stack:
        admin = stack.admin_key
        everything = sorted(perms.ALL)
        expired = stack.call(
            "CreateToken",
            pb.CreateTokenRequest(permissions=everything, expires_in_days=1),
            admin,
        ).token
        revoked = stack.call(
            "CreateToken", pb.CreateTokenRequest(permissions=everything), admin
        )
        stack.call(
            "RevokeToken",
            pb.RevokeTokenRequest(token_id=revoked.token_info.token_id),
            admin,
        )

        # Every check falls due with this move; the Auth0 stand-in knows none
        # of these users, which counts as not blocked.
        stack.advance(2 * DAY)

        for email in (OWNER, OTHER):
            grant = pb.SetPermissionsRequest(email=email, permissions=[MANAGE, UPLOAD])
            stack.call("SetPermissions", grant, admin)
        stack.call(
            "SetPermissions",
            pb.SetPermissionsRequest(email=TARGET, permissions=[VIEW]),
            admin,
        )
        stack.call(
            "SetPermissions",
            pb.SetPermissionsRequest(email=FALLEN, superuser=True),
            admin,
        )
        keys: dict[str, str | None] = {
            "none": None,
            "expired": expired,
            "revoked": revoked.token,
            "superuser": admin,
        }
        for caller, email in (
            ("other", OTHER),
            ("ordinary", ORDINARY),
            ("owner", OWNER),
            ("fallen_superuser", FALLEN),
        ):
            keys[caller] = stack.sign_in(email).session_token
        stack.call("SetActive", pb.SetActiveRequest(email=FALLEN, active=False), admin)

        result = Matrix(stack=stack, keys=keys)
        result.owner_token_id = result.fresh_token().token_info.token_id
        yield result


# Each RPC: who may call it, and the request of a cell. A builder takes the
# matrix and whether the user or token it names should exist.
Builder = Callable[[Matrix, bool], Any]


def email_for(exists: bool) -> str:
    return TARGET if exists else NOBODY


def token_id_for(m: Matrix, exists: bool, *, fresh: bool = False) -> str:
    if not exists:
        return UNKNOWN_TOKEN_ID
    return m.fresh_token().token_info.token_id if fresh else m.owner_token_id


RULES: dict[str, tuple[frozenset[str], Builder]] = {
    "StartLogin": (ANYBODY, lambda m, e: pb.StartLoginRequest(redirect_uri=REDIRECT)),
    "Login": (ANYBODY, lambda m, e: login_request(m.stack)),
    "Logout": (
        ANYBODY,
        lambda m, e: pb.LogoutRequest(
            token=m.stack.sign_in("leaver@example.com").session_token
        ),
    ),
    "ValidateToken": (
        ANYBODY,
        lambda m, e: pb.ValidateTokenRequest(token=m.keys["owner"]),
    ),
    "SetPermissions": (
        SUPERUSER,
        lambda m, e: pb.SetPermissionsRequest(email=email_for(e), permissions=[VIEW]),
    ),
    "SetActive": (
        SUPERUSER,
        lambda m, e: pb.SetActiveRequest(email=email_for(e), active=True),
    ),
    "GetUser": (SUPERUSER, lambda m, e: pb.GetUserRequest(email=email_for(e))),
    "ListUsers": (SUPERUSER, lambda m, e: pb.ListUsersRequest(page_size=5)),
    "IsBlocked": (SUPERUSER, lambda m, e: pb.IsBlockedRequest(email=email_for(e))),
    "CreateToken": (
        frozenset({"owner", "other", "superuser"}),
        lambda m, e: pb.CreateTokenRequest(permissions=[UPLOAD], expires_in_days=1),
    ),
    "ListTokens": (SIGNED_IN, lambda m, e: pb.ListTokensRequest()),
    "RevokeToken": (
        frozenset({"owner", "superuser"}),
        lambda m, e: pb.RevokeTokenRequest(token_id=token_id_for(m, e, fresh=True)),
    ),
    "ExtendToken": (
        frozenset({"owner"}),
        lambda m, e: pb.ExtendTokenRequest(token_id=token_id_for(m, e), days=1),
    ),
}
# The RPCs whose request names a user or a token that may or may not exist.
TARGETED = {
    "SetPermissions",
    "SetActive",
    "GetUser",
    "IsBlocked",
    "RevokeToken",
    "ExtendToken",
}

DENIALS = {
    "none": (grpc.StatusCode.UNAUTHENTICATED, "CREDENTIAL_MISSING"),
    "expired": (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_EXPIRED"),
    "revoked": (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_NOT_FOUND"),
    "fallen_superuser": (grpc.StatusCode.PERMISSION_DENIED, "USER_INACTIVE"),
}


def expected_denial(method: str, caller: str) -> tuple[grpc.StatusCode, str]:
    """Return the code and reason a denied cell must get."""
    if caller in DENIALS:
        return DENIALS[caller]
    if method in ("RevokeToken", "ExtendToken"):
        return grpc.StatusCode.NOT_FOUND, "TOKEN_NOT_FOUND"
    return grpc.StatusCode.PERMISSION_DENIED, "PERMISSION_MISSING"


def refusal(m: Matrix, method: str, request: Any, caller: str) -> tuple[Any, ...]:
    """Make a call that must fail; return all it tells the caller."""
    with pytest.raises(grpc.RpcError) as caught:
        m.call(method, request, caller)

    error = caught.value
    info = error_details_pb2.ErrorInfo()
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            status_pb2.Status.FromString(value).details[0].Unpack(info)
    return error.code(), info.reason, error.details(), dict(info.metadata)


CELLS = [
    pytest.param(method, caller, id=f"{method}-{caller}")
    for method in RULES
    for caller in CALLERS
]


@pytest.mark.parametrize(("method", "caller"), CELLS)
def test_only_allowed_callers_succeed(matrix, method, caller):
    allowed, build = RULES[method]

    if caller in allowed:
        matrix.call(method, build(matrix, True), caller)
        return

    code, reason, _, _ = refusal(matrix, method, build(matrix, True), caller)

    assert (code, reason) == expected_denial(method, caller)


DENIED_TARGETED = [
    pytest.param(method, caller, id=f"{method}-{caller}")
    for method in sorted(TARGETED)
    for caller in CALLERS
    if caller not in RULES[method][0]
]


@pytest.mark.parametrize(("method", "caller"), DENIED_TARGETED)
def test_denied_caller_learns_nothing_about_the_target(matrix, method, caller):
    build = RULES[method][1]

    existing = refusal(matrix, method, build(matrix, True), caller)
    missing = refusal(matrix, method, build(matrix, False), caller)

    assert existing == missing


def test_denied_calls_change_nothing(matrix):
    admin = matrix.stack.admin_key
    token = matrix.fresh_token()

    for caller in CALLERS:
        if caller == "superuser":
            continue
        stranger = matrix.keys[caller]
        with pytest.raises(grpc.RpcError):
            matrix.stack.call(
                "SetPermissions",
                pb.SetPermissionsRequest(email=TARGET, superuser=True),
                stranger,
            )
        if caller != "owner":
            with pytest.raises(grpc.RpcError):
                matrix.stack.call(
                    "RevokeToken",
                    pb.RevokeTokenRequest(token_id=token.token_info.token_id),
                    stranger,
                )

    target = matrix.stack.call("GetUser", pb.GetUserRequest(email=TARGET), admin)
    assert not target.user.superuser
    still = matrix.stack.call(
        "ValidateToken", pb.ValidateTokenRequest(token=token.token)
    )
    assert still.token_id == token.token_info.token_id


def test_listing_shows_only_the_callers_own_tokens(matrix):
    own = {matrix.owner_token_id}

    listings = {
        caller: {
            info.token_id
            for info in matrix.call(
                "ListTokens", pb.ListTokensRequest(state=pb.TOKEN_STATE_ALL), caller
            ).tokens
        }
        for caller in ("other", "ordinary", "superuser")
    }
    owner_listing = matrix.call(
        "ListTokens", pb.ListTokensRequest(state=pb.TOKEN_STATE_ALL), "owner"
    )

    assert all(not (ids & own) for ids in listings.values()), listings
    assert own <= {info.token_id for info in owner_listing.tokens}


CHAINER = "chainer@example.com"
PERMISSION_SETS = st.frozensets(st.sampled_from(sorted(perms.ALL)))


def create(stack: Any, key: str, wanted: frozenset[str]) -> str | None:
    """Mint a token with key; return the new key, or None if refused."""
    try:
        created = stack.call(
            "CreateToken", pb.CreateTokenRequest(permissions=sorted(wanted)), key
        )
    except grpc.RpcError as error:
        assert error.code() in (
            grpc.StatusCode.PERMISSION_DENIED,
            grpc.StatusCode.INVALID_ARGUMENT,
        ), error.details()
        return None
    return created.token


def effective(stack: Any, key: str) -> frozenset[str]:
    answer = stack.call("ValidateToken", pb.ValidateTokenRequest(token=key))
    return frozenset(answer.permissions)


@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    granted=PERMISSION_SETS,
    chain=st.lists(PERMISSION_SETS, min_size=1, max_size=4),
    taken=PERMISSION_SETS,
)
def test_a_chain_of_tokens_never_gains_permissions(matrix, granted, chain, taken):
    stack = matrix.stack
    admin = stack.admin_key
    stack.call(
        "SetPermissions",
        pb.SetPermissionsRequest(email=CHAINER, permissions=sorted(granted)),
        admin,
    )
    key = stack.sign_in(CHAINER).session_token
    keys = [key]

    # Each link asks for a set; it gets it only when its parent holds the
    # right to mint and every permission asked for.
    holds = granted
    for wanted in chain:
        minted = create(stack, key, wanted)
        allowed = MANAGE in holds and bool(wanted) and wanted <= holds
        assert (minted is not None) == allowed, (holds, wanted)
        if minted is None:
            break
        assert effective(stack, minted) == wanted
        key, holds = minted, wanted
        keys.append(key)

    remaining = granted - taken
    stack.call(
        "SetPermissions",
        pb.SetPermissionsRequest(email=CHAINER, permissions=sorted(remaining)),
        admin,
    )

    for link in keys:
        assert effective(stack, link) <= remaining
    if taken & holds:
        assert create(stack, key, holds) is None
