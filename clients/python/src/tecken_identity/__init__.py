"""Client for the Tecken identity service.

    from tecken_identity import IdentityClient, TokenExpired

    with IdentityClient("127.0.0.1:50051") as client:
        checked = client.validate_token(key, ["upload.upload_symbols"])

`IdentityClient` blocks; `AsyncIdentityClient` has the same methods for
asyncio. Both take and return the plain values defined here and raise the
exceptions of `tecken_identity` (all subclasses of IdentityError), never a raw
grpc.RpcError. `tecken_identity._generated` holds the code generated from
`protos/identity.proto`; the server imports its messages from there too.
"""

from ._async_client import AsyncIdentityClient
from ._channel import DEFAULT_TARGET, DEFAULT_TIMEOUT, RetryPolicy
from ._client import IdentityClient
from ._errors import (
    Aborted,
    AlreadyExists,
    Auth0Unavailable,
    Cancelled,
    CredentialMissing,
    DatabaseUnavailable,
    DataLoss,
    DeadlineExceeded,
    EmailInvalid,
    FailedPrecondition,
    FieldInvalid,
    IdentityError,
    IdTokenInvalid,
    Internal,
    InvalidArgument,
    LoginStateInvalid,
    NotFound,
    OutOfRange,
    PermissionDenied,
    PermissionMissing,
    PermissionUnknown,
    ProviderUnavailable,
    ResourceExhausted,
    TokenExpired,
    TokenIdNotFound,
    TokenMalformed,
    TokenNotFound,
    Unauthenticated,
    Unavailable,
    Unimplemented,
    Unknown,
    UserBlocked,
    UserInactive,
    UserNotFound,
)
from ._models import (
    BlockStatus,
    InactiveReason,
    LoginStart,
    NewToken,
    Session,
    TokenInfo,
    TokenKind,
    TokenState,
    User,
    UserChange,
    UserPage,
    ValidatedToken,
)
from ._version import __version__

__all__ = [
    "DEFAULT_TARGET",
    "DEFAULT_TIMEOUT",
    "Aborted",
    "AlreadyExists",
    "AsyncIdentityClient",
    "Auth0Unavailable",
    "BlockStatus",
    "Cancelled",
    "CredentialMissing",
    "DataLoss",
    "DatabaseUnavailable",
    "DeadlineExceeded",
    "EmailInvalid",
    "FailedPrecondition",
    "FieldInvalid",
    "IdTokenInvalid",
    "IdentityClient",
    "IdentityError",
    "InactiveReason",
    "Internal",
    "InvalidArgument",
    "LoginStart",
    "LoginStateInvalid",
    "NewToken",
    "NotFound",
    "OutOfRange",
    "PermissionDenied",
    "PermissionMissing",
    "PermissionUnknown",
    "ProviderUnavailable",
    "ResourceExhausted",
    "RetryPolicy",
    "Session",
    "TokenExpired",
    "TokenIdNotFound",
    "TokenInfo",
    "TokenKind",
    "TokenMalformed",
    "TokenNotFound",
    "TokenState",
    "Unauthenticated",
    "Unavailable",
    "Unimplemented",
    "Unknown",
    "User",
    "UserBlocked",
    "UserChange",
    "UserInactive",
    "UserNotFound",
    "UserPage",
    "ValidatedToken",
    "__version__",
]
