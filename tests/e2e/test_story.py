"""The whole story of one person, through the real server, provider and Auth0.

Sign-in gives no permissions; a superuser grants some; the person makes a
token; taking a permission away takes it from the token; a block in Auth0
stops the token once the interval has passed, and a new sign-in after the
unblock brings everything back.
"""

import signal

import grpc
import pytest
from tecken_identity._generated import identity_pb2 as pb

pytestmark = pytest.mark.e2e

UPLOAD = "upload.upload_symbols"
MANAGE = "tokens.manage_tokens"
INTERVAL = 3600


def validate(stack, token, *required):
    """Validate a token through the server."""
    return stack.call(
        "ValidateToken",
        pb.ValidateTokenRequest(token=token, required_permissions=list(required)),
    )


def test_sign_in_grant_token_block_and_return(stack):
    auth0_id = stack.auth0.create_user("Carol@Example.com")

    login = stack.sign_in("carol@example.com")
    assert login.created
    assert login.user.permissions == []
    assert login.user.active
    session = login.session_token
    assert validate(stack, session).kind == pb.TOKEN_KIND_SESSION

    granted = stack.call(
        "SetPermissions",
        pb.SetPermissionsRequest(
            email="carol@example.com", permissions=[UPLOAD, MANAGE]
        ),
        stack.admin_key,
    )
    assert not granted.created
    assert list(granted.user.permissions) == [MANAGE, UPLOAD]

    created = stack.call(
        "CreateToken",
        pb.CreateTokenRequest(permissions=[UPLOAD], notes="upload script"),
        session,
    )
    key = created.token
    for sent in (key, f"{key}-uploadscript"):
        answer = validate(stack, sent, UPLOAD)
        assert list(answer.permissions) == [UPLOAD]
        assert answer.kind == pb.TOKEN_KIND_API
        assert answer.user.email == "carol@example.com"
        assert answer.token_id == created.token_info.token_id

    stack.call(
        "SetPermissions",
        pb.SetPermissionsRequest(email="carol@example.com", permissions=[MANAGE]),
        stack.admin_key,
    )
    assert list(validate(stack, key).permissions) == []
    assert stack.fails(
        "ValidateToken",
        pb.ValidateTokenRequest(token=key, required_permissions=[UPLOAD]),
    ) == (grpc.StatusCode.PERMISSION_DENIED, "PERMISSION_MISSING")
    stack.call(
        "SetPermissions",
        pb.SetPermissionsRequest(
            email="carol@example.com", permissions=[UPLOAD, MANAGE]
        ),
        stack.admin_key,
    )

    stack.auth0.set_blocked(auth0_id, True)
    stack.advance(INTERVAL - 60)
    assert list(validate(stack, key, UPLOAD).permissions) == [UPLOAD]

    stack.advance(120)
    assert stack.fails("ValidateToken", pb.ValidateTokenRequest(token=key)) == (
        grpc.StatusCode.PERMISSION_DENIED,
        "USER_BLOCKED",
    )
    user = stack.call(
        "GetUser", pb.GetUserRequest(email="carol@example.com"), stack.admin_key
    ).user
    assert not user.active
    assert user.inactive_reason == pb.INACTIVE_REASON_BLOCKED_IN_AUTH0
    assert stack.fails("ValidateToken", pb.ValidateTokenRequest(token=session)) == (
        grpc.StatusCode.PERMISSION_DENIED,
        "USER_INACTIVE",
    )
    assert stack.fails("ValidateToken", pb.ValidateTokenRequest(token=key)) == (
        grpc.StatusCode.PERMISSION_DENIED,
        "USER_INACTIVE",
    )

    stack.auth0.set_blocked(auth0_id, False)
    again = stack.sign_in("carol@example.com")
    assert not again.created
    assert again.user.active
    assert list(validate(stack, key, UPLOAD).permissions) == [UPLOAD]
    assert validate(stack, again.session_token).user.active


def test_sign_in_while_still_blocked_is_refused(stack):
    auth0_id = stack.auth0.create_user("dave@example.com")
    stack.sign_in("dave@example.com")
    stack.auth0.set_blocked(auth0_id, True)
    stack.advance(INTERVAL + 1)

    with pytest.raises(grpc.RpcError) as caught:
        stack.sign_in("dave@example.com")
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED

    user = stack.call(
        "GetUser", pb.GetUserRequest(email="dave@example.com"), stack.admin_key
    ).user
    assert not user.active


def test_administrator_deactivation_survives_sign_in(stack):
    stack.sign_in("erin@example.com")
    stack.call(
        "SetActive",
        pb.SetActiveRequest(email="erin@example.com", active=False),
        stack.admin_key,
    )

    with pytest.raises(grpc.RpcError) as caught:
        stack.sign_in("erin@example.com")
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED

    user = stack.call(
        "GetUser", pb.GetUserRequest(email="erin@example.com"), stack.admin_key
    ).user
    assert user.inactive_reason == pb.INACTIVE_REASON_DEACTIVATED


def test_auth0_unreachable_when_due_refuses_without_deactivating(stack):
    session = stack.sign_in("frank@example.com").session_token
    stack.call(
        "SetPermissions",
        pb.SetPermissionsRequest(email="frank@example.com", permissions=[MANAGE]),
        stack.admin_key,
    )
    key = stack.call(
        "CreateToken", pb.CreateTokenRequest(permissions=[MANAGE]), session
    ).token

    stack.advance(INTERVAL + 1)
    stack.auth0.faults(status=503, applies_to="all")
    assert stack.fails("ValidateToken", pb.ValidateTokenRequest(token=key)) == (
        grpc.StatusCode.UNAVAILABLE,
        "AUTH0_UNAVAILABLE",
    )
    stack.auth0.faults()
    # The admin's own check is due too, so the look is taken once Auth0 is back.
    user = stack.call(
        "GetUser", pb.GetUserRequest(email="frank@example.com"), stack.admin_key
    ).user
    assert user.active
    assert user.inactive_reason == pb.INACTIVE_REASON_UNSPECIFIED

    answer = validate(stack, key)
    assert answer.user.email == "frank@example.com"
    assert answer.user.active


def test_logout_ends_the_session(stack):
    session = stack.sign_in("gina@example.com").session_token
    stack.call("Logout", pb.LogoutRequest(token=session))
    assert stack.fails("ValidateToken", pb.ValidateTokenRequest(token=session)) == (
        grpc.StatusCode.UNAUTHENTICATED,
        "TOKEN_NOT_FOUND",
    )


def test_login_state_works_once(stack):
    redirect_uri = "http://127.0.0.1:8765/callback"
    started = stack.call("StartLogin", pb.StartLoginRequest(redirect_uri=redirect_uri))
    request = pb.LoginRequest(
        code="x" * 20, state=started.state, redirect_uri=redirect_uri
    )

    # The first use spends the state even though the code is bad.
    code, _ = stack.fails("Login", request)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert stack.fails("Login", request) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "LOGIN_STATE_INVALID",
    )


def test_login_state_expires(stack):
    redirect_uri = "http://127.0.0.1:8765/callback"
    started = stack.call("StartLogin", pb.StartLoginRequest(redirect_uri=redirect_uri))
    stack.advance(601)
    request = pb.LoginRequest(
        code="x" * 20, state=started.state, redirect_uri=redirect_uri
    )
    assert stack.fails("Login", request) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "LOGIN_STATE_INVALID",
    )


def test_graceful_shutdown_exits_zero(stack):
    assert stack.server.stop() == 0


def test_shutdown_lets_a_call_in_flight_finish_and_refuses_new_ones(stack):
    session = stack.sign_in("hana@example.com").session_token
    stack.call(
        "SetPermissions",
        pb.SetPermissionsRequest(email="hana@example.com", permissions=[MANAGE]),
        stack.admin_key,
    )
    key = stack.call(
        "CreateToken", pb.CreateTokenRequest(permissions=[MANAGE]), session
    ).token
    stack.advance(INTERVAL + 1)
    # The check now due takes a second at Auth0, so the call is in flight
    # when the server is told to stop.
    stack.auth0.faults(delay_seconds=1.0)

    before = stack.auth0.stats()["users_by_email_requests"]
    in_flight = stack.stub.ValidateToken.future(
        pb.ValidateTokenRequest(token=key), timeout=10
    )
    # Each stats request is a real round trip, so this loop waits on the
    # event (the lookup arriving at Auth0), not on time.
    for _ in range(5000):
        if stack.auth0.stats()["users_by_email_requests"] > before:
            break
    assert not in_flight.done()
    stack.server.process.send_signal(signal.SIGTERM)

    assert in_flight.result().user.email == "hana@example.com"
    assert stack.server.process.wait(timeout=15) == 0
    with pytest.raises(grpc.RpcError) as caught:
        stack.call("ValidateToken", pb.ValidateTokenRequest(token=key), timeout=2)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
