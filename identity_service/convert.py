"""Building the API's messages from stored records."""

import datetime

from google.protobuf import timestamp_pb2
from tecken_identity._generated import identity_pb2 as pb

from .store import BLOCKED_IN_AUTH0, DEACTIVATED, SESSION, TokenRecord, UserRecord

INACTIVE_REASONS = {
    None: pb.INACTIVE_REASON_UNSPECIFIED,
    BLOCKED_IN_AUTH0: pb.INACTIVE_REASON_BLOCKED_IN_AUTH0,
    DEACTIVATED: pb.INACTIVE_REASON_DEACTIVATED,
}


def timestamp(value: datetime.datetime) -> timestamp_pb2.Timestamp:
    """Return value as a protobuf Timestamp."""
    message = timestamp_pb2.Timestamp()
    message.FromDatetime(value)
    return message


def user_message(user: UserRecord) -> pb.User:
    """Return the User message for a stored user."""
    message = pb.User(
        email=user.email,
        active=user.active,
        superuser=user.superuser,
        permissions=sorted(user.permissions),
        inactive_reason=INACTIVE_REASONS.get(
            user.inactive_reason, pb.INACTIVE_REASON_UNSPECIFIED
        ),
        create_time=timestamp(user.create_time),
    )
    if user.last_login_time is not None:
        message.last_login_time.CopyFrom(timestamp(user.last_login_time))
    if user.auth0_check_time is not None:
        message.auth0_check_time.CopyFrom(timestamp(user.auth0_check_time))
    return message


def token_info(token: TokenRecord, now: datetime.datetime) -> pb.TokenInfo:
    """Return the TokenInfo message for a stored token; never its key."""
    message = pb.TokenInfo(
        token_id=token.id,
        key_prefix=token.key_prefix,
        permissions=sorted(token.permissions),
        notes=token.notes,
        create_time=timestamp(token.create_time),
        expire_time=timestamp(token.expire_time),
        expired=token.expire_time <= now,
    )
    if token.revoke_time is not None:
        message.revoke_time.CopyFrom(timestamp(token.revoke_time))
    return message


def token_kind(token: TokenRecord) -> int:
    """Return the TokenKind of a stored token."""
    return pb.TOKEN_KIND_SESSION if token.kind == SESSION else pb.TOKEN_KIND_API


class ValidateResponses:
    """ValidateToken responses, built once per token and owner as cached.

    A response depends only on the token and its owner's records. While the
    token cache hands out the same record objects, the response built for them
    is reused as it is; a changed record is a new object, so a new response is
    built. gRPC only reads a response it sends, so sharing one is safe.
    """

    def __init__(self, limit: int = 20_000) -> None:
        self.limit = limit
        self._built: dict[bytes, tuple[object, object, pb.ValidateTokenResponse]] = {}

    def response_for(
        self, token: TokenRecord, user: UserRecord, granted: frozenset[str]
    ) -> pb.ValidateTokenResponse:
        """Return the response for a validated token, reusing a built one."""
        entry = self._built.get(token.key_hash)
        if entry is not None and entry[0] is token and entry[1] is user:
            return entry[2]

        response = pb.ValidateTokenResponse(
            user=user_message(user),
            permissions=sorted(granted),
            kind=token_kind(token),
            expire_time=timestamp(token.expire_time),
            token_id=token.id,
        )
        if len(self._built) >= self.limit:
            self._built.clear()
        self._built[token.key_hash] = (token, user, response)
        return response
