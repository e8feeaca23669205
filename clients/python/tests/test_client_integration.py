"""Both clients against the real server, OIDC provider and Auth0 stand-in.

Every method is called for real, and every error the server can be made to
send here arrives as its own exception class.
"""

import datetime
import urllib.parse

import httpx
import pytest

import tecken_identity
from tecken_identity import (
    AsyncIdentityClient,
    BlockStatus,
    IdentityClient,
    InactiveReason,
    RetryPolicy,
    TokenKind,
    TokenState,
)

pytestmark = pytest.mark.e2e

UPLOAD = "upload.upload_symbols"
MANAGE = "tokens.manage_tokens"
REDIRECT_URI = "http://127.0.0.1:8765/callback"


def approve(provider: str, authorization_url: str, email: str) -> str:
    """Sign in at the provider as a browser would; return the code it sends back."""
    query = urllib.parse.urlsplit(authorization_url).query
    response = httpx.post(
        f"{provider}/oauth2/authorize?{query}",
        data={"sub": email},
        follow_redirects=False,
        timeout=10,
    )
    assert response.status_code == 302, response.text

    location = urllib.parse.urlsplit(response.headers["location"])
    return urllib.parse.parse_qs(location.query)["code"][0]


def lookups_during(stack, retry: RetryPolicy) -> int:
    """Count Auth0 look-ups while a call fails with AUTH0_UNAVAILABLE."""
    before = stack.auth0.stats().get("users_by_email_requests", 0)
    with IdentityClient(stack.target, key=stack.admin_key, retry=retry) as client:
        with pytest.raises(tecken_identity.Auth0Unavailable):
            client.get_user("erin@example.com")
    return stack.auth0.stats()["users_by_email_requests"] - before


def test_the_blocking_client_does_every_call(stack):
    stack.auth0.create_user("carol@example.com")
    anonymous = IdentityClient(stack.target)
    admin = IdentityClient(stack.target, key=stack.admin_key)

    started = anonymous.start_login(REDIRECT_URI)
    code = approve(stack.provider, started.authorization_url, "carol@example.com")
    session = anonymous.login(code, started.state, REDIRECT_URI)
    assert session.created
    assert session.user.email == "carol@example.com"
    assert session.expire_time > datetime.datetime.now(datetime.UTC)

    checked = anonymous.validate_token(session.session_token)
    assert (checked.kind, checked.permissions) == (TokenKind.SESSION, ())

    change = admin.set_permissions("carol@example.com", [UPLOAD, MANAGE])
    assert not change.created
    assert change.user.permissions == (MANAGE, UPLOAD)

    with IdentityClient(stack.target, key=session.session_token) as carol:
        new = carol.create_token([UPLOAD], expires_in_days=30, notes="ci upload")
        assert new.info.permissions == (UPLOAD,)
        assert (new.info.expire_time - new.info.create_time).days == 30

        checked = anonymous.validate_token(f"{new.token}-ci", [UPLOAD])
        assert (checked.kind, checked.token_id) == (TokenKind.API, new.info.token_id)
        assert checked.permissions == (UPLOAD,)

        assert [info.token_id for info in carol.list_tokens()] == [new.info.token_id]
        extended = carol.extend_token(new.info.token_id, 10)
        assert extended.expire_time - new.info.expire_time == datetime.timedelta(
            days=10
        )

        carol.revoke_token(new.info.token_id)
        with pytest.raises(tecken_identity.TokenNotFound):
            anonymous.validate_token(new.token)
        (revoked,) = carol.list_tokens(TokenState.ALL)
        assert revoked.revoked
        assert carol.list_tokens() == []

    assert admin.get_user("CAROL@example.com").permissions == (MANAGE, UPLOAD)
    page = admin.list_users(page_size=1)
    assert len(page.users) == 1 and page.next_page_token
    emails = [user.email for user in admin.iter_users(page_size=1)]
    assert emails == ["admin@example.com", "carol@example.com"]

    assert admin.is_blocked("carol@example.com") is BlockStatus.NOT_BLOCKED
    assert admin.is_blocked("nobody@example.com") is BlockStatus.NOT_FOUND

    user = admin.set_active("carol@example.com", False)
    assert (user.active, user.inactive_reason) == (False, InactiveReason.DEACTIVATED)
    with pytest.raises(tecken_identity.UserInactive):
        anonymous.validate_token(session.session_token)
    assert admin.set_active("carol@example.com", True).active

    anonymous.logout(session.session_token)
    with pytest.raises(tecken_identity.TokenNotFound):
        anonymous.validate_token(session.session_token)

    anonymous.close()
    admin.close()


def test_the_real_servers_errors_arrive_as_their_classes(stack):
    login = stack.sign_in("dave@example.com")
    anonymous = IdentityClient(stack.target)
    admin = IdentityClient(stack.target, key=stack.admin_key)
    dave = IdentityClient(stack.target, key=login.session_token)

    with pytest.raises(tecken_identity.TokenMalformed) as caught:
        anonymous.validate_token("not a key")
    assert caught.value.field == "token"
    with pytest.raises(tecken_identity.TokenNotFound):
        anonymous.validate_token("0" * 64)
    with pytest.raises(tecken_identity.PermissionMissing) as missing:
        anonymous.validate_token(login.session_token, [UPLOAD])
    assert missing.value.missing == (UPLOAD,)
    with pytest.raises(tecken_identity.PermissionUnknown):
        anonymous.validate_token(login.session_token, ["upload.everything"])

    with pytest.raises(tecken_identity.CredentialMissing):
        anonymous.list_tokens()
    with pytest.raises(tecken_identity.PermissionMissing):
        dave.get_user("admin@example.com")
    with pytest.raises(tecken_identity.PermissionMissing):
        dave.create_token([UPLOAD])

    with pytest.raises(tecken_identity.UserNotFound):
        admin.get_user("nobody@example.com")
    with pytest.raises(tecken_identity.EmailInvalid):
        admin.set_permissions("not an email", [])
    with pytest.raises(tecken_identity.TokenIdNotFound):
        admin.revoke_token("f" * 32)
    with pytest.raises(tecken_identity.FieldInvalid):
        admin.extend_token("f" * 32, 0)

    started = anonymous.start_login(REDIRECT_URI)
    code = approve(stack.provider, started.authorization_url, "dave@example.com")
    anonymous.login(code, started.state, REDIRECT_URI)
    with pytest.raises(tecken_identity.LoginStateInvalid):
        anonymous.login(code, started.state, REDIRECT_URI)

    for client in (anonymous, admin, dave):
        client.close()


def test_expiry_and_an_auth0_outage_arrive_as_their_classes(stack):
    admin = IdentityClient(stack.target, key=stack.admin_key)
    admin.set_permissions("erin@example.com", [MANAGE])
    login = stack.sign_in("erin@example.com")
    with IdentityClient(stack.target, key=login.session_token) as erin:
        short = erin.create_token([MANAGE], expires_in_days=1)

    stack.advance(2 * 86400)
    with pytest.raises(tecken_identity.TokenExpired):
        admin.validate_token(short.token)

    # The re-check of the admin's own key is now due, so every call meets the
    # outage; the client with retries makes its attempts reach Auth0 again.
    stack.auth0.faults(status=503)
    once = lookups_during(stack, RetryPolicy(max_attempts=1))
    retried = lookups_during(stack, RetryPolicy(initial_backoff=0.01, max_backoff=0.05))
    stack.auth0.faults()

    assert 0 < once < retried
    assert admin.get_user("erin@example.com").active
    admin.close()


async def test_the_async_client_does_the_same_calls(stack):
    stack.auth0.create_user("fay@example.com")

    async with (
        AsyncIdentityClient(stack.target) as anonymous,
        AsyncIdentityClient(stack.target, key=stack.admin_key) as admin,
    ):
        started = await anonymous.start_login(REDIRECT_URI)
        code = approve(stack.provider, started.authorization_url, "fay@example.com")
        session = await anonymous.login(code, started.state, REDIRECT_URI)
        await admin.set_permissions("fay@example.com", [UPLOAD, MANAGE])

        async with AsyncIdentityClient(stack.target, key=session.session_token) as fay:
            new = await fay.create_token([UPLOAD, MANAGE], notes="async")
            checked = await anonymous.validate_token(new.token, [UPLOAD])
            assert checked.permissions == (MANAGE, UPLOAD)
            assert (await fay.list_tokens())[0].notes == "async"
            await fay.extend_token(new.info.token_id, 5)
            await fay.revoke_token(new.info.token_id)
            with pytest.raises(tecken_identity.TokenNotFound):
                await anonymous.validate_token(new.token)

        assert (await admin.get_user("fay@example.com")).permissions == (MANAGE, UPLOAD)
        users = [user.email async for user in admin.iter_users(page_size=1)]
        assert users == ["admin@example.com", "fay@example.com"]
        assert (await admin.list_users()).next_page_token == ""
        assert await admin.is_blocked("fay@example.com") is BlockStatus.NOT_BLOCKED
        assert not (await admin.set_active("fay@example.com", False)).active
        with pytest.raises(tecken_identity.UserInactive):
            await anonymous.validate_token(session.session_token)
        await admin.set_active("fay@example.com", True)

        await anonymous.logout(session.session_token)
        with pytest.raises(tecken_identity.TokenNotFound):
            await anonymous.validate_token(session.session_token)
        with pytest.raises(tecken_identity.UserNotFound):
            await admin.get_user("nobody@example.com")
