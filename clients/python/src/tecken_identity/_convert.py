"""Turning the API's protobuf messages into the client's plain values."""

import datetime

from google.protobuf import timestamp_pb2

from . import _models as models
from ._generated import identity_pb2 as pb

TOKEN_KINDS = {
    pb.TOKEN_KIND_API: models.TokenKind.API,
    pb.TOKEN_KIND_SESSION: models.TokenKind.SESSION,
}
BLOCK_STATUSES = {
    pb.BLOCK_STATUS_NOT_BLOCKED: models.BlockStatus.NOT_BLOCKED,
    pb.BLOCK_STATUS_BLOCKED: models.BlockStatus.BLOCKED,
    pb.BLOCK_STATUS_NOT_FOUND: models.BlockStatus.NOT_FOUND,
}
INACTIVE_REASONS = {
    pb.INACTIVE_REASON_BLOCKED_IN_AUTH0: models.InactiveReason.BLOCKED_IN_AUTH0,
    pb.INACTIVE_REASON_DEACTIVATED: models.InactiveReason.DEACTIVATED,
}
TOKEN_STATES = {
    models.TokenState.ACTIVE: pb.TOKEN_STATE_ACTIVE,
    models.TokenState.EXPIRED: pb.TOKEN_STATE_EXPIRED,
    models.TokenState.ALL: pb.TOKEN_STATE_ALL,
}


def to_datetime(value: timestamp_pb2.Timestamp) -> datetime.datetime:
    """Return a Timestamp as an aware datetime in UTC."""
    return value.ToDatetime(tzinfo=datetime.UTC)


def optional_datetime(
    value: timestamp_pb2.Timestamp, present: bool
) -> datetime.datetime | None:
    """Return a Timestamp as a datetime, or None when the server left it unset."""
    return to_datetime(value) if present else None


def user(message: pb.User) -> models.User:
    """Return the User that a User message describes."""
    reason = None
    if message.inactive_reason != pb.INACTIVE_REASON_UNSPECIFIED:
        reason = INACTIVE_REASONS.get(
            message.inactive_reason, models.InactiveReason.UNKNOWN
        )

    return models.User(
        email=message.email,
        active=message.active,
        superuser=message.superuser,
        permissions=tuple(message.permissions),
        inactive_reason=reason,
        create_time=to_datetime(message.create_time),
        last_login_time=optional_datetime(
            message.last_login_time, message.HasField("last_login_time")
        ),
        auth0_check_time=optional_datetime(
            message.auth0_check_time, message.HasField("auth0_check_time")
        ),
    )


def token_info(message: pb.TokenInfo) -> models.TokenInfo:
    """Return the TokenInfo that a TokenInfo message describes."""
    return models.TokenInfo(
        token_id=message.token_id,
        key_prefix=message.key_prefix,
        permissions=tuple(message.permissions),
        notes=message.notes,
        create_time=to_datetime(message.create_time),
        expire_time=to_datetime(message.expire_time),
        revoke_time=optional_datetime(
            message.revoke_time, message.HasField("revoke_time")
        ),
        expired=message.expired,
    )


def validated_token(message: pb.ValidateTokenResponse) -> models.ValidatedToken:
    """Return what ValidateToken answered."""
    return models.ValidatedToken(
        user=user(message.user),
        permissions=tuple(message.permissions),
        kind=TOKEN_KINDS.get(message.kind, models.TokenKind.UNKNOWN),
        expire_time=to_datetime(message.expire_time),
        token_id=message.token_id,
    )


def login_start(message: pb.StartLoginResponse) -> models.LoginStart:
    """Return what StartLogin answered."""
    return models.LoginStart(
        authorization_url=message.authorization_url, state=message.state
    )


def session(message: pb.LoginResponse) -> models.Session:
    """Return what Login answered."""
    return models.Session(
        session_token=message.session_token,
        expire_time=to_datetime(message.expire_time),
        user=user(message.user),
        created=message.created,
    )


def user_change(message: pb.SetPermissionsResponse) -> models.UserChange:
    """Return the user SetPermissions changed, and whether it created them."""
    return models.UserChange(user=user(message.user), created=message.created)


def user_page(message: pb.ListUsersResponse) -> models.UserPage:
    """Return one page of ListUsers."""
    return models.UserPage(
        users=tuple(user(item) for item in message.users),
        next_page_token=message.next_page_token,
    )


def block_status(message: pb.IsBlockedResponse) -> models.BlockStatus:
    """Return IsBlocked's answer."""
    return BLOCK_STATUSES.get(message.status, models.BlockStatus.UNKNOWN)


def new_token(message: pb.CreateTokenResponse) -> models.NewToken:
    """Return the key and description CreateToken answered."""
    return models.NewToken(token=message.token, info=token_info(message.token_info))


def token_state(state: models.TokenState | str) -> "pb.TokenState.ValueType":
    """Return the TokenState enum value for a state or its name."""
    return TOKEN_STATES[models.TokenState(state)]
