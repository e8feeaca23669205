"""The exceptions a client call raises: one class per status, one per reason.

Every failed call raises an IdentityError subclass, never a raw grpc.RpcError.
The class is picked by the status code and, when the service sent a
`google.rpc.ErrorInfo` in its own domain, by the reason as well:

    IdentityError
    ├── InvalidArgument         INVALID_ARGUMENT
    │   ├── TokenMalformed          TOKEN_MALFORMED
    │   ├── EmailInvalid            EMAIL_INVALID
    │   ├── PermissionUnknown       PERMISSION_UNKNOWN
    │   └── FieldInvalid            FIELD_INVALID
    ├── Unauthenticated         UNAUTHENTICATED
    │   ├── TokenNotFound           TOKEN_NOT_FOUND (no such key, or revoked)
    │   ├── TokenExpired            TOKEN_EXPIRED
    │   ├── CredentialMissing       CREDENTIAL_MISSING
    │   └── IdTokenInvalid          ID_TOKEN_INVALID
    ├── PermissionDenied        PERMISSION_DENIED
    │   ├── UserInactive            USER_INACTIVE
    │   ├── UserBlocked             USER_BLOCKED
    │   └── PermissionMissing       PERMISSION_MISSING
    ├── NotFound                NOT_FOUND
    │   ├── UserNotFound            USER_NOT_FOUND
    │   └── TokenIdNotFound         TOKEN_NOT_FOUND (no such token id)
    ├── FailedPrecondition      FAILED_PRECONDITION
    │   └── LoginStateInvalid       LOGIN_STATE_INVALID
    ├── Unavailable             UNAVAILABLE (retried before it is raised)
    │   ├── Auth0Unavailable        AUTH0_UNAVAILABLE
    │   ├── ProviderUnavailable     PROVIDER_UNAVAILABLE
    │   └── DatabaseUnavailable     DATABASE_UNAVAILABLE
    ├── DeadlineExceeded        DEADLINE_EXCEEDED (the call's deadline passed)
    ├── Internal                INTERNAL (a bug in the service)
    └── Cancelled, Unknown, AlreadyExists, ResourceExhausted, Aborted,
        OutOfRange, Unimplemented, DataLoss: the other gRPC codes, which this
        service does not send but a proxy or gRPC itself may

TOKEN_NOT_FOUND comes with two statuses that mean different things: a key
that matches no live token (UNAUTHENTICATED), and a token id that names none of
the caller's tokens (NOT_FOUND). They are two classes, so that catching one
never catches the other.
"""

from collections.abc import Iterable, Mapping
from typing import ClassVar

import grpc
from google.protobuf import message as protobuf_message
from google.rpc import error_details_pb2, status_pb2

DOMAIN = "identity.tecken.mozilla.org"
STATUS_DETAILS_KEY = "grpc-status-details-bin"


class IdentityError(Exception):
    """A failed call, with the status code and the reason the service gave.

    `reason` and `metadata` come from the call's `google.rpc.ErrorInfo`; both
    are empty when there was none (for example when the failure came from gRPC
    itself, such as an expired deadline).
    """

    code: ClassVar[grpc.StatusCode] = grpc.StatusCode.UNKNOWN

    def __init__(
        self,
        message: str,
        *,
        reason: str = "",
        domain: str = "",
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason
        self.domain = domain
        self.metadata: dict[str, str] = dict(metadata or {})

    def __str__(self) -> str:
        if self.reason:
            return f"{self.message} ({self.reason})"
        return self.message


class InvalidArgument(IdentityError):
    """The request was malformed; `field` names what was wrong."""

    code = grpc.StatusCode.INVALID_ARGUMENT

    @property
    def field(self) -> str:
        """Return the request field the service named, or an empty string."""
        return self.metadata.get("field", "")


class TokenMalformed(InvalidArgument):
    """What was sent cannot be a key."""


class EmailInvalid(InvalidArgument):
    """An email is empty, too long or not of the form name@domain."""


class PermissionUnknown(InvalidArgument):
    """A permission name is not one the service knows."""


class FieldInvalid(InvalidArgument):
    """Some other field is out of range or malformed."""


class Unauthenticated(IdentityError):
    """The token or the caller's credential is missing, unknown or expired."""

    code = grpc.StatusCode.UNAUTHENTICATED


class TokenNotFound(Unauthenticated):
    """No live token has this key: it never existed or was revoked."""


class TokenExpired(Unauthenticated):
    """The token is past its expiry."""


class CredentialMissing(Unauthenticated):
    """The call needs the caller's own key and none was sent."""


class IdTokenInvalid(Unauthenticated):
    """The provider's ID token failed a check at sign-in."""


class PermissionDenied(IdentityError):
    """The user is inactive or blocked, or lacks a permission."""

    code = grpc.StatusCode.PERMISSION_DENIED


class UserInactive(PermissionDenied):
    """The token's owner is inactive."""


class UserBlocked(PermissionDenied):
    """The token's owner was just found blocked in Auth0."""


class PermissionMissing(PermissionDenied):
    """The token or caller lacks a permission the call needs."""

    @property
    def missing(self) -> tuple[str, ...]:
        """Return the permissions the service named as missing, if it did."""
        named = self.metadata.get("missing", "")
        return tuple(name for name in named.split(",") if name)


class NotFound(IdentityError):
    """An administrator's or a token call names nothing that exists."""

    code = grpc.StatusCode.NOT_FOUND


class UserNotFound(NotFound):
    """No user has this email."""


class TokenIdNotFound(NotFound):
    """The token id names none of the caller's tokens."""


class FailedPrecondition(IdentityError):
    """The call cannot be made in the current state."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class LoginStateInvalid(FailedPrecondition):
    """The login state is unknown, was used already, or expired."""


class Unavailable(IdentityError):
    """The service, or what it depends on, cannot answer now.

    The client has already retried the call within its deadline.
    """

    code = grpc.StatusCode.UNAVAILABLE


class Auth0Unavailable(Unavailable):
    """The Auth0 re-check was due and Auth0 did not answer."""


class ProviderUnavailable(Unavailable):
    """The OpenID Connect provider did not answer."""


class DatabaseUnavailable(Unavailable):
    """The service's database could not be reached."""


class DeadlineExceeded(IdentityError):
    """The call's deadline passed before it finished."""

    code = grpc.StatusCode.DEADLINE_EXCEEDED


class Internal(IdentityError):
    """The service failed with a bug; its log has the details."""

    code = grpc.StatusCode.INTERNAL


class Cancelled(IdentityError):
    """The call was cancelled."""

    code = grpc.StatusCode.CANCELLED


class Unknown(IdentityError):
    """The call failed with no more specific status."""

    code = grpc.StatusCode.UNKNOWN


class AlreadyExists(IdentityError):
    """What the call would create exists already."""

    code = grpc.StatusCode.ALREADY_EXISTS


class ResourceExhausted(IdentityError):
    """A quota or a size limit was reached."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Aborted(IdentityError):
    """The call was aborted, typically by a concurrency conflict."""

    code = grpc.StatusCode.ABORTED


class OutOfRange(IdentityError):
    """A value was past the valid range."""

    code = grpc.StatusCode.OUT_OF_RANGE


class Unimplemented(IdentityError):
    """The server does not implement this call."""

    code = grpc.StatusCode.UNIMPLEMENTED


class DataLoss(IdentityError):
    """Data was lost or corrupted."""

    code = grpc.StatusCode.DATA_LOSS


BY_CODE: dict[grpc.StatusCode, type[IdentityError]] = {
    cls.code: cls
    for cls in (
        InvalidArgument,
        Unauthenticated,
        PermissionDenied,
        NotFound,
        FailedPrecondition,
        Unavailable,
        DeadlineExceeded,
        Internal,
        Cancelled,
        Unknown,
        AlreadyExists,
        ResourceExhausted,
        Aborted,
        OutOfRange,
        Unimplemented,
        DataLoss,
    )
}

BY_REASON: dict[tuple[grpc.StatusCode, str], type[IdentityError]] = {
    (grpc.StatusCode.INVALID_ARGUMENT, "TOKEN_MALFORMED"): TokenMalformed,
    (grpc.StatusCode.INVALID_ARGUMENT, "EMAIL_INVALID"): EmailInvalid,
    (grpc.StatusCode.INVALID_ARGUMENT, "PERMISSION_UNKNOWN"): PermissionUnknown,
    (grpc.StatusCode.INVALID_ARGUMENT, "FIELD_INVALID"): FieldInvalid,
    (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_NOT_FOUND"): TokenNotFound,
    (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_EXPIRED"): TokenExpired,
    (grpc.StatusCode.UNAUTHENTICATED, "CREDENTIAL_MISSING"): CredentialMissing,
    (grpc.StatusCode.UNAUTHENTICATED, "ID_TOKEN_INVALID"): IdTokenInvalid,
    (grpc.StatusCode.PERMISSION_DENIED, "USER_INACTIVE"): UserInactive,
    (grpc.StatusCode.PERMISSION_DENIED, "USER_BLOCKED"): UserBlocked,
    (grpc.StatusCode.PERMISSION_DENIED, "PERMISSION_MISSING"): PermissionMissing,
    (grpc.StatusCode.NOT_FOUND, "USER_NOT_FOUND"): UserNotFound,
    (grpc.StatusCode.NOT_FOUND, "TOKEN_NOT_FOUND"): TokenIdNotFound,
    (grpc.StatusCode.FAILED_PRECONDITION, "LOGIN_STATE_INVALID"): LoginStateInvalid,
    (grpc.StatusCode.UNAVAILABLE, "AUTH0_UNAVAILABLE"): Auth0Unavailable,
    (grpc.StatusCode.UNAVAILABLE, "PROVIDER_UNAVAILABLE"): ProviderUnavailable,
    (grpc.StatusCode.UNAVAILABLE, "DATABASE_UNAVAILABLE"): DatabaseUnavailable,
}


def error_info(
    trailing_metadata: Iterable[object] | None,
) -> error_details_pb2.ErrorInfo | None:
    """Return the ErrorInfo in a call's rich status details, if it carries one.

    Blocking calls give their metadata as named tuples, asyncio calls as a
    Metadata collection and test channels as plain tuples; each item of all
    three unpacks as (key, value).
    """
    for item in trailing_metadata or ():
        if not isinstance(item, tuple) or len(item) != 2:
            continue
        key, value = item
        if key != STATUS_DETAILS_KEY or not isinstance(value, bytes):
            continue

        try:
            status = status_pb2.Status.FromString(value)
        except protobuf_message.DecodeError:
            return None
        for detail in status.details:
            info = error_details_pb2.ErrorInfo()
            if detail.Unpack(info):
                return info
    return None


def from_status(
    code: grpc.StatusCode,
    message: str | None,
    trailing_metadata: Iterable[object] | None,
) -> IdentityError:
    """Return the most specific exception for a failed call's status."""
    info = error_info(trailing_metadata)
    cls = BY_CODE.get(code, Unknown)
    if info is None:
        return cls(message or code.name)

    if info.domain == DOMAIN:
        cls = BY_REASON.get((code, info.reason), cls)
    return cls(
        message or code.name,
        reason=info.reason,
        domain=info.domain,
        metadata=dict(info.metadata),
    )


def from_rpc_error(error: grpc.RpcError) -> IdentityError:
    """Translate what a failed gRPC call raised into our exception."""
    if not callable(getattr(error, "code", None)):
        # An RpcError that is not a finished call carries no status; none of
        # the calls this client makes raise one, but a custom channel might.
        return Unknown(str(error) or "the call failed without a status")

    return from_status(error.code(), error.details(), error.trailing_metadata())
