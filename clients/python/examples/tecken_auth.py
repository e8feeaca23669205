"""Tecken's Auth-Token check, made through the identity service.

Tecken's web app used to look API tokens up in its own database, in a
middleware that read the `Auth-Token` header. With the identity service the
middleware keeps its contract and asks ValidateToken instead:

- no `Auth-Token` header: the request goes on anonymous, and the view decides;
- a token that works: the request goes on with its user and permissions;
- any other token: 403 with a short plain-text reason, and the view never runs.

When the identity service cannot answer, the answer is 503 rather than 403:
the token may be fine, and a caller should try again rather than give up.

`check_auth_token` is the check itself, for any framework; `AuthTokenMiddleware`
wraps it as WSGI middleware, which is what Django's `get_wsgi_application()`
returns, so it drops into Tecken's `wsgi.py`.
"""

import dataclasses
from collections.abc import Iterable
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from tecken_identity import (
    DeadlineExceeded,
    IdentityClient,
    PermissionDenied,
    PermissionMissing,
    TokenExpired,
    TokenMalformed,
    Unauthenticated,
    Unavailable,
    UserBlocked,
    UserInactive,
)

# The WSGI name of the Auth-Token header; it names a header, not a secret.
AUTH_TOKEN_HEADER = "HTTP_AUTH_TOKEN"  # noqa: S105
ENVIRON_KEY = "tecken.auth"


@dataclasses.dataclass(frozen=True)
class Authenticated:
    """Who a working token belongs to, and what it may do."""

    email: str
    permissions: frozenset[str]
    token_id: str

    def has_perm(self, permission: str) -> bool:
        """Tell whether the token carries a permission, as Django's check does."""
        return permission in self.permissions


@dataclasses.dataclass(frozen=True)
class Rejected:
    """Why a request with a token is turned away."""

    status: int
    reason: str


def check_auth_token(
    client: IdentityClient, token: str, required_permissions: Iterable[str] = ()
) -> Authenticated | Rejected:
    """Check a token from an Auth-Token header.

    Args:
        client: a client made once for the whole process; it needs no key of
            its own, since ValidateToken takes the token in the request.
        token: the header's value; a comment after its first hyphen is fine.
        required_permissions: permissions the request needs.

    Returns:
        The token's owner and effective permissions, or the status and reason
        to answer with.
    """
    try:
        found = client.validate_token(token, required_permissions)
    except TokenExpired:
        return Rejected(403, "API token expired")
    except (UserInactive, UserBlocked):
        return Rejected(403, "API token's user is not active")
    except PermissionMissing as error:
        return Rejected(
            403, "API token lacks " + (", ".join(error.missing) or "a permission")
        )
    except (TokenMalformed, Unauthenticated, PermissionDenied):
        # A misspelled required permission is not caught here: it is a bug in
        # the app, and PermissionUnknown should reach its error handling.
        return Rejected(403, "API token not found")
    except (Unavailable, DeadlineExceeded):
        return Rejected(503, "identity service unavailable; try again")

    return Authenticated(
        email=found.user.email,
        permissions=frozenset(found.permissions),
        token_id=found.token_id,
    )


class AuthTokenMiddleware:
    """WSGI middleware that checks the Auth-Token header of every request.

    A request whose token works reaches the app with an `Authenticated` in
    `environ["tecken.auth"]`; one whose token fails gets the rejection.
    """

    def __init__(
        self,
        app: WSGIApplication,
        client: IdentityClient,
        required_permissions: Iterable[str] = (),
    ) -> None:
        self.app = app
        self.client = client
        self.required_permissions = tuple(required_permissions)

    def __call__(
        self, environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        token = str(environ.get(AUTH_TOKEN_HEADER, "")).strip()
        if not token:
            return self.app(environ, start_response)

        outcome = check_auth_token(self.client, token, self.required_permissions)
        if isinstance(outcome, Rejected):
            return reject(outcome, start_response)

        environ[ENVIRON_KEY] = outcome
        return self.app(environ, start_response)


STATUS_LINES = {403: "403 Forbidden", 503: "503 Service Unavailable"}


def reject(rejected: Rejected, start_response: StartResponse) -> list[bytes]:
    """Answer a rejected request with its status and reason as plain text."""
    body = rejected.reason.encode("utf-8")
    start_response(
        STATUS_LINES[rejected.status],
        [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(body))),
        ],
    )
    return [body]
