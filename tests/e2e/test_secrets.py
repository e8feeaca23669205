"""No key, secret or email escapes, and keys are strong and stored as hashes.

A whole story runs against one server: sign-ins, grants, tokens created,
listed, extended, validated and revoked, the CLI, an Auth0 block, Auth0
faults and bad input. Everything the server printed, everything the CLI
printed and every error the client received is then searched for each key,
the client secret, any management API token and each email.
"""

import asyncio
import hashlib
import re
from typing import Any

import grpc
import pytest
import sqlalchemy
from google.rpc import error_details_pb2, status_pb2
from module_stack import e2e_conftest, running_stack
from sqlalchemy.ext.asyncio import create_async_engine
from tecken_identity._generated import identity_pb2 as pb

from identity_service import database
from identity_service import permissions as perms

pytestmark = pytest.mark.e2e
# One server serves the module, on TEST_DATABASE_URL when it is set.
USES_TEST_DATABASE = True

ALICE = "alice.secret@example.com"
BOB = "bob.secret@example.com"
CAROL = "carol.secret@example.com"
DAVE = "dave.secret@example.com"
UPLOAD = perms.UPLOAD_SYMBOLS
MANAGE = perms.MANAGE_TOKENS
HOUR = 3600
# The stand-in's management tokens are 43 URL-safe characters, keys 64 hex
# ones; the log has no business holding any run that long.
LONG_OPAQUE = re.compile(r"[A-Za-z0-9_-]{40,}")


class Story:
    """Drives the server and keeps all that any observer could have seen."""

    def __init__(self, stack: Any) -> None:
        self.stack = stack
        self.keys: list[str] = [stack.admin_key]
        self.seen: list[str] = []

    def call(self, method: str, request: Any, key: str | None = None) -> Any:
        return self.stack.call(method, request, key)

    def fail(self, method: str, request: Any, key: str | None = None) -> str:
        """Make a call that must fail; keep its message and details; return reason."""
        with pytest.raises(grpc.RpcError) as caught:
            self.stack.call(method, request, key)

        error = caught.value
        self.seen.append(error.details() or "")
        reason = ""
        for name, value in error.trailing_metadata() or ():
            if name != "grpc-status-details-bin":
                self.seen.append(f"{name}={value!r}")
                continue
            status = status_pb2.Status.FromString(value)
            self.seen.append(status.message)
            for detail in status.details:
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                reason = info.reason
                self.seen.extend([info.reason, *info.metadata.values()])
                self.seen.extend(info.metadata.keys())
        return reason

    def cli(self, *args: str, check: bool = True, prints_key: bool = False) -> str:
        """Run the CLI; keep what it printed, less the key createtoken must print."""
        done = self.stack.cli(*args, check=check)
        out = done.stdout
        if prints_key:
            *rest, key = out.strip().splitlines()
            self.keys.append(key)
            out = "\n".join(rest)
        self.seen.extend([out, done.stderr])
        return out

    def sign_in(self, email: str) -> str:
        key = self.stack.sign_in(email).session_token
        self.keys.append(key)
        return key

    def create(self, key: str, permissions: list[str], **fields: Any) -> Any:
        request = pb.CreateTokenRequest(permissions=permissions, **fields)
        created = self.call("CreateToken", request, key)
        self.keys.append(created.token)
        return created


@pytest.fixture(scope="module")
def secrets_stack(request, tmp_path_factory, provider, auth0_process):
    with running_stack(
        request, tmp_path_factory, provider, auth0_process, "secrets"
    ) as stack:
        yield stack


def run_story(story: Story) -> None:
    """Do what a deployment does in its first days, with mistakes and an outage."""
    stack, admin = story.stack, story.stack.admin_key
    stack.auth0.create_user(ALICE)
    bob_in_auth0 = stack.auth0.create_user(BOB)

    alice = story.sign_in(ALICE)
    grant = pb.SetPermissionsRequest(email=ALICE, permissions=[MANAGE, UPLOAD])
    story.call("SetPermissions", grant, admin)
    story.call("GetUser", pb.GetUserRequest(email=ALICE), admin)
    story.call("ListUsers", pb.ListUsersRequest(), admin)
    story.call("IsBlocked", pb.IsBlockedRequest(email=ALICE), admin)

    token = story.create(alice, [UPLOAD], notes="upload script")
    token_id = token.token_info.token_id
    story.call("ListTokens", pb.ListTokensRequest(), alice)
    story.call("ExtendToken", pb.ExtendTokenRequest(token_id=token_id, days=5), alice)
    story.call("ValidateToken", pb.ValidateTokenRequest(token=token.token + "-script"))
    spare = story.create(alice, [UPLOAD])

    story.fail(
        "ValidateToken",
        pb.ValidateTokenRequest(token=token.token, required_permissions=[MANAGE]),
    )
    story.fail("ValidateToken", pb.ValidateTokenRequest(token=token.token[:-1]))
    story.fail("ValidateToken", pb.ValidateTokenRequest(token=token.token + "x"))
    story.fail(
        "ValidateToken", pb.ValidateTokenRequest(token=token.token.upper()[::-1])
    )
    story.fail("GetUser", pb.GetUserRequest(email=ALICE), alice)
    story.fail("GetUser", pb.GetUserRequest(email=CAROL), admin)
    story.fail("GetUser", pb.GetUserRequest(email=ALICE + "\x00"), admin)
    story.fail("SetActive", pb.SetActiveRequest(email="@" + ALICE), admin)
    story.fail("CreateToken", pb.CreateTokenRequest(permissions=[ALICE]), alice)
    story.fail("CreateToken", pb.CreateTokenRequest(permissions=[UPLOAD]), token.token)
    story.fail("GetUser", pb.GetUserRequest(email=ALICE), "Basic " + alice)
    story.fail("Logout", pb.LogoutRequest(token=token.token))
    story.fail(
        "StartLogin",
        pb.StartLoginRequest(redirect_uri=f"http://{ALICE}:x@127.0.0.1/"),
    )

    story.call("RevokeToken", pb.RevokeTokenRequest(token_id=token_id), alice)
    story.fail("ValidateToken", pb.ValidateTokenRequest(token=token.token))

    story.cli("superuser", CAROL)
    story.cli("createtoken", CAROL, "--permission", UPLOAD, prints_key=True)
    story.cli("is-blocked", ALICE)
    story.cli("createtoken", DAVE, check=False)
    story.cli("superuser", "not-an-email", check=False)

    # Bob is blocked in Auth0; once his check is due his token stops.
    bob = story.sign_in(BOB)
    story.call(
        "SetPermissions",
        pb.SetPermissionsRequest(email=BOB, permissions=[MANAGE]),
        admin,
    )
    bob_token = story.create(bob, [MANAGE])
    stack.auth0.set_blocked(bob_in_auth0, True)
    stack.advance(2 * HOUR)
    story.fail("ValidateToken", pb.ValidateTokenRequest(token=bob_token.token))
    story.fail("ListTokens", pb.ListTokensRequest(), bob)
    story.call("IsBlocked", pb.IsBlockedRequest(email=BOB), admin)

    # An outage of Auth0 and a refused management token, while checks are due.
    stack.advance(2 * HOUR)
    stack.auth0.faults(status=503)
    story.fail("ValidateToken", pb.ValidateTokenRequest(token=spare.token))
    story.fail("IsBlocked", pb.IsBlockedRequest(email=ALICE), admin)
    stack.auth0.faults(status=401, applies_to="all")
    story.fail("ValidateToken", pb.ValidateTokenRequest(token=spare.token))
    stack.auth0.faults()
    story.call("ValidateToken", pb.ValidateTokenRequest(token=spare.token))

    story.call("Logout", pb.LogoutRequest(token=alice))
    story.fail("ValidateToken", pb.ValidateTokenRequest(token=alice))


def test_no_key_secret_or_email_is_shown_anywhere(request, secrets_stack):
    story = Story(secrets_stack)
    e2e = e2e_conftest(request.config)

    run_story(story)

    management_token = secrets_stack.auth0.headers()["Authorization"].split()[-1]

    log = secrets_stack.server.text()
    places = {"server output": log, "client and CLI": "\n".join(story.seen)}
    secrets = {
        **{f"key {key[:4]}…": key for key in story.keys},
        "client secret": e2e.CLIENT_SECRET,
        "management token": management_token,
        **{email: email for email in (ALICE, BOB, CAROL, DAVE, e2e.ADMIN)},
    }

    leaks = [
        (label, place)
        for place, text in places.items()
        for label, secret in secrets.items()
        if secret.lower() in text.lower()
    ]
    assert not leaks
    assert not LONG_OPAQUE.findall(log)
    assert "rpc method=" in log, "the server logged nothing to search"


def test_keys_are_long_random_hex_and_never_repeat(secrets_stack):
    admin = secrets_stack.admin_key
    created = [
        secrets_stack.call(
            "CreateToken", pb.CreateTokenRequest(permissions=[UPLOAD]), admin
        ).token
        for _ in range(1000)
    ]

    assert all(re.fullmatch(r"[0-9a-f]{64}", key) for key in created)
    assert len(set(created)) == len(created)


def stored_tokens(url: str) -> list[dict[str, Any]]:
    """Read every row of the tokens table straight from the database."""

    async def read() -> list[dict[str, Any]]:
        engine = create_async_engine(database.async_url(url))
        try:
            async with engine.connect() as connection:
                rows = await connection.execute(sqlalchemy.text("SELECT * FROM tokens"))
                return [dict(row._mapping) for row in rows]
        finally:
            await engine.dispose()

    return asyncio.run(read())


def test_the_database_holds_only_hashes_of_keys(secrets_stack):
    admin = secrets_stack.admin_key
    created = [
        secrets_stack.call(
            "CreateToken", pb.CreateTokenRequest(permissions=[UPLOAD]), admin
        )
        for _ in range(20)
    ]
    created.append(secrets_stack.sign_in("hashes@example.com"))

    rows = stored_tokens(secrets_stack.env["DATABASE_URL"])

    hashes = {bytes(row["key_hash"]) for row in rows}
    for answer in created:
        key = getattr(answer, "token", "") or answer.session_token
        assert hashlib.sha256(key.encode("ascii")).digest() in hashes
        for row in rows:
            for value in row.values():
                text = value.hex() if isinstance(value, bytes) else str(value)
                assert key not in text
                assert key[4:36] not in text


def test_listed_key_prefixes_are_too_short_to_guess_from(secrets_stack):
    admin = secrets_stack.admin_key

    listed = secrets_stack.call(
        "ListTokens", pb.ListTokensRequest(state=pb.TOKEN_STATE_ALL), admin
    ).tokens
    rows = stored_tokens(secrets_stack.env["DATABASE_URL"])

    assert listed
    assert all(re.fullmatch(r"[0-9a-f]{0,4}", info.key_prefix) for info in listed)
    assert all(len(row["key_prefix"]) <= 4 for row in rows)
