"""Every identity-admin subcommand, run as a process against the real server."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

from tecken_identity import IdentityClient

pytestmark = pytest.mark.e2e

UPLOAD = "upload.upload_symbols"
MANAGE = "tokens.manage_tokens"
ALICE = "alice@example.com"


def admin(stack, *args, key=None, target=None):
    """Run identity-admin with the target and key in its environment."""
    env = {
        **os.environ,
        "IDENTITY_TARGET": target or stack.target,
        "IDENTITY_TOKEN": key or stack.admin_key,
    }
    return subprocess.run(
        [sys.executable, "-m", "tecken_identity.admin", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def admin_json(stack, *args, key=None):
    """Run identity-admin --json, check it succeeded, and parse its output."""
    result = admin(stack, "--json", *args, key=key)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def permissions_of(stack, token):
    """Return what ValidateToken answers for a token now."""
    with IdentityClient(stack.target) as client:
        return client.validate_token(token).permissions


def test_grant_and_revoke_change_what_validate_token_returns(stack):
    session = stack.sign_in(ALICE).session_token
    assert permissions_of(stack, session) == ()

    granted = admin_json(stack, "users", "grant", ALICE, UPLOAD, MANAGE)
    assert granted["user"]["permissions"] == [MANAGE, UPLOAD]
    assert granted["created"] is False
    assert permissions_of(stack, session) == (MANAGE, UPLOAD)

    created = admin_json(stack, "tokens", "create", UPLOAD, key=session)
    key = created["token"]
    assert permissions_of(stack, key) == (UPLOAD,)

    revoked = admin(stack, "users", "revoke", ALICE, UPLOAD)
    assert revoked.returncode == 0, revoked.stderr
    assert "permissions: tokens.manage_tokens" in revoked.stdout
    assert permissions_of(stack, key) == ()
    assert permissions_of(stack, session) == (MANAGE,)

    again = admin(stack, "users", "grant", ALICE, UPLOAD)
    assert again.returncode == 0, again.stderr
    assert permissions_of(stack, key) == (UPLOAD,)


def test_users_commands(stack):
    stack.sign_in(ALICE)

    listing = admin(stack, "users", "list")
    assert listing.returncode == 0, listing.stderr
    header, *rows = listing.stdout.splitlines()
    assert header.split()[:3] == ["EMAIL", "ACTIVE", "SUPERUSER"]
    assert [row.split()[0] for row in rows] == ["admin@example.com", ALICE]
    listed = admin_json(stack, "users", "list", "--page-size", "1")
    assert [user["email"] for user in listed] == ["admin@example.com", ALICE]

    shown = admin(stack, "users", "show", "ALICE@example.com")
    assert shown.returncode == 0, shown.stderr
    assert "email:" in shown.stdout and ALICE in shown.stdout
    assert admin_json(stack, "users", "show", ALICE)["last_login_time"]

    made = admin_json(stack, "users", "superuser", ALICE)
    assert made["user"]["superuser"] is True
    taken = admin_json(stack, "users", "superuser", ALICE, "--off")
    assert taken["user"]["superuser"] is False
    assert taken["user"]["permissions"] == made["user"]["permissions"]

    created = admin_json(stack, "users", "grant", "new.person@example.com", UPLOAD)
    assert created["created"] is True

    deactivated = admin_json(stack, "users", "deactivate", ALICE)
    assert (deactivated["active"], deactivated["inactive_reason"]) == (
        False,
        "deactivated",
    )
    activated = admin(stack, "users", "activate", ALICE)
    assert activated.returncode == 0, activated.stderr
    assert "active:      yes" in activated.stdout


def test_a_deactivated_users_tokens_stop_working(stack):
    session = stack.sign_in(ALICE).session_token
    assert admin(stack, "users", "deactivate", ALICE).returncode == 0

    denied = admin(stack, "tokens", "list", key=session)

    assert denied.returncode == 3
    assert "USER_INACTIVE" in denied.stderr


def test_tokens_commands(stack):
    created = admin(stack, "tokens", "create", UPLOAD, "--days", "7", "--notes", "ci")
    assert created.returncode == 0, created.stderr
    key = created.stdout.splitlines()[-1]
    assert permissions_of(stack, key) == (UPLOAD,)

    listed = admin_json(stack, "tokens", "list")
    mine = next(token for token in listed if token["notes"] == "ci")
    token_id = mine["token_id"]
    table = admin(stack, "tokens", "list")
    assert table.stdout.splitlines()[0].split()[:3] == ["ID", "PREFIX", "PERMISSIONS"]
    assert token_id in table.stdout
    assert key not in table.stdout

    extended = admin_json(stack, "tokens", "extend", token_id, "--days", "30")
    assert extended["expire_time"] > mine["expire_time"]

    revoked = admin(stack, "tokens", "revoke", token_id)
    assert revoked.returncode == 0, revoked.stderr
    everything = admin_json(stack, "tokens", "list", "--state", "all")
    states = {token["token_id"]: token["state"] for token in everything}
    assert states[token_id] == "revoked"
    assert admin(stack, "tokens", "revoke", token_id).returncode == 1


def test_is_blocked(stack):
    stack.auth0.create_user("blocked@example.com", blocked=True)
    stack.auth0.create_user(ALICE)

    blocked = admin(stack, "is-blocked", "blocked@example.com")
    assert (blocked.returncode, blocked.stdout) == (0, "blocked\n")
    assert admin_json(stack, "is-blocked", ALICE)["status"] == "not_blocked"
    assert (
        admin_json(stack, "is-blocked", "nobody@example.com")["status"] == "not_found"
    )


def test_exit_codes_tell_usage_denial_and_unavailability_apart(stack):
    session = stack.sign_in(ALICE).session_token

    usage = admin(stack, "users", "grant", ALICE)
    denied = admin(stack, "users", "list", key=session)
    unknown = admin(stack, "users", "list", key="0" * 64)
    missing = admin(stack, "users", "show", "nobody@example.com")
    refused = admin(stack, "users", "show", "not an email")

    assert [r.returncode for r in (usage, denied, unknown, missing, refused)] == [
        2,
        3,
        3,
        1,
        2,
    ]
    for result in (usage, denied, unknown, missing, refused):
        assert result.stdout == ""
        assert result.stderr.count("\n") == 1
        assert "Traceback" not in result.stderr
    assert "PERMISSION_MISSING" in denied.stderr
    assert "TOKEN_NOT_FOUND" in unknown.stderr
    assert "USER_NOT_FOUND" in missing.stderr

    stack.server.stop()
    down = admin(stack, "users", "list", "--timeout", "3")
    assert down.returncode == 4
    assert down.stderr.count("\n") == 1
    assert stack.target in down.stderr


def test_the_console_script_is_installed():
    script = pathlib.Path(sys.executable).with_name("identity-admin")

    result = subprocess.run(
        [script, "--help"], capture_output=True, text=True, timeout=60
    )

    assert result.returncode == 0
    for name in ("users", "tokens", "is-blocked", "IDENTITY_TARGET", "IDENTITY_TOKEN"):
        assert name in result.stdout
