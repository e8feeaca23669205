"""The service's domain errors, one class per status a caller can receive.

    IdentityError
    ├── InvalidArgument     INVALID_ARGUMENT     bad input, the field named
    ├── Unauthenticated     UNAUTHENTICATED      no such token, revoked, expired
    ├── PermissionDenied    PERMISSION_DENIED    inactive, blocked, lacks a permission
    ├── NotFound            NOT_FOUND            names no user or token that exists
    ├── FailedPrecondition  FAILED_PRECONDITION  unknown, used or expired login state
    └── Unavailable         UNAVAILABLE          Auth0, the provider or the database

Each carries a `reason` from DESIGN.md's table that callers switch on, and
optional metadata (such as the field that was wrong). The servicer turns them
into a gRPC status with a `google.rpc.ErrorInfo` detail in one place
(`identity_service.status`). Messages never contain a key, a secret or an email.
"""

import grpc

DOMAIN = "identity.tecken.mozilla.org"


class IdentityError(Exception):
    """A failure the caller is told about, with its status code and reason."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL

    def __init__(self, reason: str, message: str, **metadata: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.metadata = metadata


class InvalidArgument(IdentityError):
    """The request is malformed; `field` names what was wrong."""

    code = grpc.StatusCode.INVALID_ARGUMENT

    def __init__(self, reason: str, field: str, message: str) -> None:
        super().__init__(reason, f"{field}: {message}", field=field)
        self.field = field


class Unauthenticated(IdentityError):
    """The credential or token is unknown, revoked or expired."""

    code = grpc.StatusCode.UNAUTHENTICATED


class PermissionDenied(IdentityError):
    """The user is inactive or blocked, or lacks a permission."""

    code = grpc.StatusCode.PERMISSION_DENIED


class NotFound(IdentityError):
    """The user or token named does not exist (or is not the caller's)."""

    code = grpc.StatusCode.NOT_FOUND


class FailedPrecondition(IdentityError):
    """The login state is unknown, used or expired."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class Unavailable(IdentityError):
    """An upstream cannot answer now; the call can be retried."""

    code = grpc.StatusCode.UNAVAILABLE


# Reasons, as callers see them in ErrorInfo.reason. They name kinds of failure,
# not secrets, which the S105 lint cannot tell.
TOKEN_MALFORMED = "TOKEN_MALFORMED"  # noqa: S105
EMAIL_INVALID = "EMAIL_INVALID"
PERMISSION_UNKNOWN = "PERMISSION_UNKNOWN"
FIELD_INVALID = "FIELD_INVALID"
TOKEN_NOT_FOUND = "TOKEN_NOT_FOUND"  # noqa: S105
TOKEN_EXPIRED = "TOKEN_EXPIRED"  # noqa: S105
CREDENTIAL_MISSING = "CREDENTIAL_MISSING"
ID_TOKEN_INVALID = "ID_TOKEN_INVALID"  # noqa: S105
USER_INACTIVE = "USER_INACTIVE"
USER_BLOCKED = "USER_BLOCKED"
PERMISSION_MISSING = "PERMISSION_MISSING"
USER_NOT_FOUND = "USER_NOT_FOUND"
AUTH0_UNAVAILABLE = "AUTH0_UNAVAILABLE"
PROVIDER_UNAVAILABLE = "PROVIDER_UNAVAILABLE"
DATABASE_UNAVAILABLE = "DATABASE_UNAVAILABLE"
LOGIN_STATE_INVALID = "LOGIN_STATE_INVALID"
