"""identity-admin against a scripted server: what it sends, prints and exits with.

The real server's answers to every subcommand are in test_admin_integration.py;
here the server side is scripted, so each test can pick the answer it needs.
"""

import json
import os
import subprocess
import sys

import grpc
import pytest
from client_fakes import (
    HANG,
    KEY,
    TOKEN_MESSAGE,
    USER_MESSAGE,
    Failure,
    ScriptedServer,
)
from tls_certificates import make_certificates

from tecken_identity._generated import identity_pb2 as pb
from tecken_identity.admin import main

SUBCOMMANDS = {
    "users": ["list", "show", "grant", "revoke", "superuser", "activate", "deactivate"],
    "tokens": ["list", "create", "revoke", "extend"],
}
UPLOAD = "upload.upload_symbols"
MANAGE = "tokens.manage_tokens"
TRY = "upload.upload_try_symbols"


@pytest.fixture
def server(monkeypatch):
    scripted = ScriptedServer().start()
    monkeypatch.setenv("IDENTITY_TARGET", scripted.target)
    monkeypatch.setenv("IDENTITY_TOKEN", KEY)
    try:
        yield scripted
    finally:
        scripted.stop()


def run(capsys, *argv):
    """Run identity-admin; return its exit code, stdout and stderr."""
    try:
        code = main(list(argv))
    except SystemExit as exit:
        code = exit.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def user_message(**changes):
    """Return the sample User message with some fields changed."""
    message = pb.User()
    message.CopyFrom(USER_MESSAGE)
    for name, value in changes.items():
        if name == "permissions":
            del message.permissions[:]
            message.permissions.extend(value)
        else:
            setattr(message, name, value)
    return message


def test_help_lists_every_subcommand(capsys):
    code, out, _ = run(capsys, "--help")

    assert code == 0
    for group in (*SUBCOMMANDS, "is-blocked"):
        assert group in out
    for group, names in SUBCOMMANDS.items():
        _, out, _ = run(capsys, group, "--help")
        for name in names:
            assert name in out


@pytest.mark.parametrize(
    "argv",
    [
        ["nonsense"],
        ["users"],
        ["users", "grant", "alice@example.com"],
        ["tokens", "extend", "abc", "--days", "zero"],
        ["tokens", "create", UPLOAD, "--days", "0"],
        ["users", "list", "--timeout", "-1"],
        ["users", "grant", "alice@example.com", "upload.upload_everything"],
        ["tokens", "create", "tokens.nothing"],
        ["users", "list", "--ca-file", "/nonexistent/ca.pem"],
    ],
)
def test_usage_errors_exit_2_with_one_line(server, capsys, argv):
    code, out, err = run(capsys, *argv)

    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("identity-admin")
    assert server.received == []


def test_no_key_is_a_usage_error(server, capsys, monkeypatch):
    monkeypatch.delenv("IDENTITY_TOKEN")

    code, _, err = run(capsys, "users", "list")

    assert code == 2
    assert "IDENTITY_TOKEN" in err


def test_denial_exits_3(server, capsys):
    server.script(
        "ListUsers",
        Failure(grpc.StatusCode.PERMISSION_DENIED, "PERMISSION_MISSING", message="no"),
    )

    code, out, err = run(capsys, "users", "list")

    assert code == 3
    assert out == ""
    assert err == "identity-admin: denied: no (PERMISSION_MISSING)\n"


def test_an_unknown_key_exits_3(server, capsys):
    server.script(
        "ListTokens", Failure(grpc.StatusCode.UNAUTHENTICATED, "TOKEN_NOT_FOUND")
    )

    code, _, _ = run(capsys, "tokens", "list")

    assert code == 3


def test_unavailability_exits_4_and_names_the_target(server, capsys):
    server.script(
        "IsBlocked", Failure(grpc.StatusCode.UNAVAILABLE, "AUTH0_UNAVAILABLE")
    )

    code, out, err = run(capsys, "is-blocked", "alice@example.com")

    assert code == 4
    assert out == ""
    assert err.count("\n") == 1
    assert server.target in err
    assert "AUTH0_UNAVAILABLE" in err


def test_a_call_past_its_deadline_exits_4(server, capsys):
    server.script("GetUser", HANG)

    code, _, err = run(capsys, "users", "show", "alice@example.com", "--timeout", "0.2")

    assert code == 4
    assert "Deadline" in err


def test_nothing_found_exits_1(server, capsys):
    server.script(
        "RevokeToken",
        Failure(grpc.StatusCode.NOT_FOUND, "TOKEN_NOT_FOUND", message="no such token"),
    )

    code, _, err = run(capsys, "tokens", "revoke", TOKEN_MESSAGE.token_id)

    assert code == 1
    assert err == "identity-admin: failed: no such token (TOKEN_NOT_FOUND)\n"


def test_input_the_service_refuses_exits_2(server, capsys):
    server.script(
        "GetUser",
        Failure(
            grpc.StatusCode.INVALID_ARGUMENT, "EMAIL_INVALID", message="email: bad"
        ),
    )

    code, _, err = run(capsys, "users", "show", "not-an-email")

    assert code == 2
    assert "EMAIL_INVALID" in err


def test_options_win_over_the_environment_and_go_after_the_command(
    server, capsys, monkeypatch
):
    monkeypatch.setenv("IDENTITY_TARGET", "127.0.0.1:1")
    monkeypatch.setenv("IDENTITY_TOKEN", "b" * 64)
    server.script("GetUser", pb.GetUserResponse(user=USER_MESSAGE))

    code, out, _ = run(
        capsys,
        "users",
        "show",
        "alice@example.com",
        "--target",
        server.target,
        "--token",
        KEY,
        "--json",
    )

    assert code == 0
    assert json.loads(out)["email"] == USER_MESSAGE.email
    (received,) = server.calls("GetUser")
    assert received.metadata["authorization"] == f"Bearer {KEY}"


def test_grant_adds_to_the_current_permissions(server, capsys):
    server.script(
        "GetUser", pb.GetUserResponse(user=user_message(permissions=[MANAGE]))
    )
    server.script("SetPermissions", pb.SetPermissionsResponse(user=USER_MESSAGE))

    code, out, _ = run(capsys, "users", "grant", "alice@example.com", UPLOAD, TRY)

    assert code == 0
    (sent,) = server.calls("SetPermissions")
    assert list(sent.request.permissions) == [MANAGE, UPLOAD, TRY]
    assert not sent.request.HasField("superuser")
    assert "permissions:" in out


def test_grant_to_a_new_email_creates_the_user(server, capsys):
    server.script("GetUser", Failure(grpc.StatusCode.NOT_FOUND, "USER_NOT_FOUND"))
    server.script(
        "SetPermissions", pb.SetPermissionsResponse(user=USER_MESSAGE, created=True)
    )

    code, out, _ = run(capsys, "--json", "users", "grant", "new@example.com", UPLOAD)

    assert code == 0
    assert list(server.calls("SetPermissions")[0].request.permissions) == [UPLOAD]
    assert json.loads(out)["created"] is True


def test_revoke_takes_from_the_current_permissions(server, capsys):
    current = user_message(permissions=[MANAGE, UPLOAD])
    server.script("GetUser", pb.GetUserResponse(user=current))
    server.script("SetPermissions", pb.SetPermissionsResponse(user=USER_MESSAGE))

    code, _, _ = run(capsys, "users", "revoke", "alice@example.com", UPLOAD)

    assert code == 0
    assert list(server.calls("SetPermissions")[0].request.permissions) == [MANAGE]


def test_revoke_from_a_superuser_changes_what_they_keep(server, capsys):
    granted = user_message(superuser=True, permissions=[MANAGE, UPLOAD])
    server.script("GetUser", pb.GetUserResponse(user=granted))
    server.script("SetPermissions", pb.SetPermissionsResponse(user=USER_MESSAGE))

    code, _, _ = run(capsys, "users", "revoke", "alice@example.com", UPLOAD)

    assert code == 0
    request = server.calls("SetPermissions")[0].request
    assert list(request.permissions) == [MANAGE]
    assert not request.HasField("superuser")


def test_superuser_on_and_off_keep_the_granted_permissions(server, capsys):
    server.script(
        "GetUser", pb.GetUserResponse(user=user_message(permissions=[UPLOAD]))
    )
    server.script("SetPermissions", pb.SetPermissionsResponse(user=USER_MESSAGE))

    assert run(capsys, "users", "superuser", "alice@example.com")[0] == 0
    assert run(capsys, "users", "superuser", "alice@example.com", "--off")[0] == 0

    on, off = (call.request for call in server.calls("SetPermissions"))
    assert (list(on.permissions), on.superuser) == ([UPLOAD], True)
    assert (list(off.permissions), off.superuser) == ([UPLOAD], False)


def test_tokens_create_prints_the_key_alone_on_the_last_line(server, capsys):
    server.script(
        "CreateToken", pb.CreateTokenResponse(token=KEY, token_info=TOKEN_MESSAGE)
    )

    code, out, _ = run(
        capsys, "tokens", "create", UPLOAD, "--days", "30", "--notes", "ci"
    )

    assert code == 0
    assert out.splitlines()[-1] == KEY
    (sent,) = server.calls("CreateToken")
    assert (list(sent.request.permissions), sent.request.expires_in_days) == (
        [UPLOAD],
        30,
    )
    assert sent.request.notes == "ci"


@pytest.mark.parametrize(
    ("argv", "method", "response"),
    [
        (["users", "list"], "ListUsers", pb.ListUsersResponse(users=[USER_MESSAGE])),
        (
            ["users", "show", "a@x.org"],
            "GetUser",
            pb.GetUserResponse(user=USER_MESSAGE),
        ),
        (
            ["users", "activate", "a@x.org"],
            "SetActive",
            pb.SetActiveResponse(user=USER_MESSAGE),
        ),
        (
            ["users", "deactivate", "a@x.org"],
            "SetActive",
            pb.SetActiveResponse(user=USER_MESSAGE),
        ),
        (
            ["tokens", "list"],
            "ListTokens",
            pb.ListTokensResponse(tokens=[TOKEN_MESSAGE]),
        ),
        (
            ["tokens", "create", UPLOAD],
            "CreateToken",
            pb.CreateTokenResponse(token=KEY, token_info=TOKEN_MESSAGE),
        ),
        (
            ["tokens", "revoke", TOKEN_MESSAGE.token_id],
            "RevokeToken",
            pb.RevokeTokenResponse(),
        ),
        (
            ["tokens", "extend", TOKEN_MESSAGE.token_id],
            "ExtendToken",
            pb.ExtendTokenResponse(token_info=TOKEN_MESSAGE),
        ),
        (
            ["is-blocked", "a@x.org"],
            "IsBlocked",
            pb.IsBlockedResponse(status=pb.BLOCK_STATUS_NOT_FOUND),
        ),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, list) else None,
)
def test_every_command_prints_a_table_or_json(server, capsys, argv, method, response):
    server.script(method, response)

    code, table, _ = run(capsys, *argv)
    json_code, out, _ = run(capsys, *argv, "--json")

    assert (code, json_code) == (0, 0)
    assert table.strip()
    assert not table.lstrip().startswith(("{", "["))
    assert json.loads(out) is not None


def test_tables_align_their_columns(server, capsys):
    second = user_message(email="bob.with.a.long.name@example.com", permissions=[])
    server.script("ListUsers", pb.ListUsersResponse(users=[USER_MESSAGE, second]))

    _, out, _ = run(capsys, "users", "list")

    header, *rows = out.splitlines()
    column = header.index("ACTIVE")
    assert all(row[column - 2 : column] == "  " for row in rows)
    assert "bob.with.a.long.name@example.com" in rows[1]


def test_tokens_extend_defaults_to_a_year(server, capsys):
    server.script("ExtendToken", pb.ExtendTokenResponse(token_info=TOKEN_MESSAGE))

    run(capsys, "tokens", "extend", TOKEN_MESSAGE.token_id)

    assert server.calls("ExtendToken")[0].request.days == 365


def test_ca_file_turns_tls_on(capsys, monkeypatch, tmp_path):
    certificates = make_certificates()
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(certificates.ca)
    credentials = grpc.ssl_server_credentials(
        [(certificates.server_key, certificates.server_certificate)]
    )
    scripted = ScriptedServer(credentials).start()
    scripted.script("IsBlocked", pb.IsBlockedResponse(status=pb.BLOCK_STATUS_BLOCKED))
    monkeypatch.setenv("IDENTITY_TOKEN", KEY)

    try:
        code, out, _ = run(
            capsys,
            "--target",
            scripted.target,
            "--ca-file",
            str(ca_file),
            "is-blocked",
            "a@x.org",
        )
    finally:
        scripted.stop()

    assert (code, out) == (0, "blocked\n")


def test_a_superusers_permissions_read_all_in_the_table(server, capsys):
    boss = user_message(superuser=True, permissions=[MANAGE, UPLOAD, TRY])
    server.script("ListUsers", pb.ListUsersResponse(users=[boss]))

    _, table, _ = run(capsys, "users", "list")
    _, out, _ = run(capsys, "users", "list", "--json")

    header, row = table.splitlines()
    assert row[header.index("PERMISSIONS") :].split()[0] == "all"
    assert json.loads(out)[0]["permissions"] == [MANAGE, UPLOAD, TRY]


def test_a_reader_that_stops_early_gets_no_traceback(server):
    many = [user_message(email=f"user{number:05}@example.com") for number in range(500)]
    pages = [
        pb.ListUsersResponse(users=many, next_page_token=f"page{page}")
        for page in range(3)
    ]
    server.script("ListUsers", *pages, pb.ListUsersResponse(users=many))
    env = {**os.environ, "IDENTITY_TARGET": server.target, "IDENTITY_TOKEN": KEY}

    # More output than a pipe holds, so the write meets the closed pipe.
    child = subprocess.Popen(
        [sys.executable, "-m", "tecken_identity.admin", "users", "list"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert child.stdout is not None and child.stderr is not None
    first = child.stdout.readline()
    child.stdout.close()
    errors = child.stderr.read()
    child.stderr.close()

    assert child.wait(timeout=60) == 0
    assert first.startswith(b"EMAIL")
    assert errors == b""


def test_cert_and_key_files_answer_a_server_that_asks(capsys, monkeypatch, tmp_path):
    certificates = make_certificates()
    for name in ("ca", "client_certificate", "client_key"):
        (tmp_path / f"{name}.pem").write_bytes(getattr(certificates, name))
    credentials = grpc.ssl_server_credentials(
        [(certificates.server_key, certificates.server_certificate)],
        root_certificates=certificates.ca,
        require_client_auth=True,
    )
    scripted = ScriptedServer(credentials).start()
    scripted.script("IsBlocked", pb.IsBlockedResponse(status=pb.BLOCK_STATUS_BLOCKED))
    monkeypatch.setenv("IDENTITY_TARGET", scripted.target)
    monkeypatch.setenv("IDENTITY_TOKEN", KEY)

    try:
        alone = run(capsys, "is-blocked", "a@x.org", "--cert-file", "x.pem")
        answered = run(
            capsys,
            "is-blocked",
            "a@x.org",
            "--ca-file",
            str(tmp_path / "ca.pem"),
            "--cert-file",
            str(tmp_path / "client_certificate.pem"),
            "--key-file",
            str(tmp_path / "client_key.pem"),
        )
    finally:
        scripted.stop()

    assert alone[0] == 2
    assert answered[:2] == (0, "blocked\n")
