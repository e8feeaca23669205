"""The Tecken Auth-Token example: scripted answers first, then the real server."""

import pathlib
import sys
from wsgiref.util import setup_testing_defaults

import grpc
import pytest
from client_fakes import KEY, Failure, ScriptedServer, case

from tecken_identity import IdentityClient, PermissionUnknown, RetryPolicy

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "examples"))

import tecken_auth  # noqa: E402

UPLOAD = "upload.upload_symbols"


class App:
    """A WSGI app that records what the middleware let through."""

    def __init__(self) -> None:
        self.seen: list[object] = []

    def __call__(self, environ, start_response):
        self.seen.append(environ.get(tecken_auth.ENVIRON_KEY))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"uploaded"]


def request(middleware, token=None):
    """Send one request through the middleware; return its status and body."""
    environ: dict[str, object] = {}
    setup_testing_defaults(environ)
    if token is not None:
        environ["HTTP_AUTH_TOKEN"] = token
    answer: dict[str, str] = {}

    def start_response(status, headers, exc_info=None):
        answer["status"] = status
        return lambda data: None

    body = b"".join(middleware(environ, start_response))
    return answer["status"], body.decode()


@pytest.fixture
def server():
    scripted = ScriptedServer().start()
    try:
        yield scripted
    finally:
        scripted.stop()


@pytest.mark.parametrize(
    ("code", "reason", "metadata", "status", "text"),
    [
        (
            grpc.StatusCode.UNAUTHENTICATED,
            "TOKEN_EXPIRED",
            {},
            403,
            "API token expired",
        ),
        (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_NOT_FOUND", {}, 403, "not found"),
        (grpc.StatusCode.INVALID_ARGUMENT, "TOKEN_MALFORMED", {}, 403, "not found"),
        (grpc.StatusCode.PERMISSION_DENIED, "USER_INACTIVE", {}, 403, "not active"),
        (grpc.StatusCode.PERMISSION_DENIED, "USER_BLOCKED", {}, 403, "not active"),
        (
            grpc.StatusCode.PERMISSION_DENIED,
            "PERMISSION_MISSING",
            {"missing": UPLOAD},
            403,
            f"API token lacks {UPLOAD}",
        ),
        (grpc.StatusCode.UNAVAILABLE, "AUTH0_UNAVAILABLE", {}, 503, "unavailable"),
    ],
)
def test_each_failure_has_its_status_and_short_reason(
    server, code, reason, metadata, status, text
):
    server.script("ValidateToken", Failure(code, reason, metadata))
    app = App()

    with IdentityClient(server.target, retry=RetryPolicy(max_attempts=1)) as client:
        answer = request(tecken_auth.AuthTokenMiddleware(app, client, [UPLOAD]), KEY)

    assert answer[0].startswith(str(status))
    assert text in answer[1]
    assert len(answer[1]) < 80
    assert app.seen == []


def test_a_working_token_reaches_the_app_with_its_user(server):
    server.script("ValidateToken", case("ValidateToken").response)
    app = App()

    with IdentityClient(server.target) as client:
        answer = request(tecken_auth.AuthTokenMiddleware(app, client, [UPLOAD]), KEY)

    assert answer == ("200 OK", "uploaded")
    (auth,) = app.seen
    assert auth.email == "Alice@Example.com"
    assert auth.has_perm(UPLOAD)
    assert not auth.has_perm("tokens.manage_tokens")
    (sent,) = server.calls("ValidateToken")
    assert list(sent.request.required_permissions) == [UPLOAD]
    assert "authorization" not in sent.metadata


def test_no_header_goes_on_anonymous_without_a_call(server):
    app = App()

    with IdentityClient(server.target) as client:
        answer = request(tecken_auth.AuthTokenMiddleware(app, client), None)

    assert answer == ("200 OK", "uploaded")
    assert app.seen == [None]
    assert server.received == []


def test_a_misspelled_required_permission_is_a_bug_not_a_403(server):
    server.script(
        "ValidateToken",
        Failure(grpc.StatusCode.INVALID_ARGUMENT, "PERMISSION_UNKNOWN"),
    )

    with IdentityClient(server.target) as client:
        with pytest.raises(PermissionUnknown):
            tecken_auth.check_auth_token(client, KEY, ["upload.upload_symbol"])


@pytest.mark.e2e
def test_the_middleware_against_the_real_server(stack):
    app = App()
    with IdentityClient(stack.target, key=stack.admin_key) as admin:
        admin.set_permissions("gus@example.com", [UPLOAD, "tokens.manage_tokens"])
    session = stack.sign_in("gus@example.com").session_token
    with IdentityClient(stack.target, key=session) as gus:
        key = gus.create_token([UPLOAD]).token

    with IdentityClient(stack.target) as client:
        middleware = tecken_auth.AuthTokenMiddleware(app, client, [UPLOAD])
        working = request(middleware, f"{key}-uploadscript")
        unknown = request(middleware, "0" * 32)
        lacking = request(
            tecken_auth.AuthTokenMiddleware(app, client, ["upload.view_all_uploads"]),
            key,
        )
        stack.advance(366 * 86400)
        expired = request(middleware, key)

    assert working == ("200 OK", "uploaded")
    assert app.seen[0].email == "gus@example.com"
    assert app.seen[0].permissions == frozenset({UPLOAD})
    assert unknown == ("403 Forbidden", "API token not found")
    assert lacking == ("403 Forbidden", "API token lacks upload.view_all_uploads")
    assert expired == ("403 Forbidden", "API token expired")
    assert len(app.seen) == 1
