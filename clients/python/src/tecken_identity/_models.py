"""The plain values the clients take and return instead of protobuf messages.

Enums are string enums, so a value prints and serializes as a readable word.
Each enum that the server returns has an UNKNOWN member for a value added to
the API after this client was built, so a newer server never breaks an older
client. Times are timezone-aware datetimes in UTC; a time the server left
unset is None.
"""

import dataclasses
import datetime
import enum


class TokenKind(enum.StrEnum):
    """Whether a token came from CreateToken or from a sign-in."""

    API = "api"
    SESSION = "session"
    UNKNOWN = "unknown"


class BlockStatus(enum.StrEnum):
    """Auth0's live answer about one email."""

    NOT_BLOCKED = "not_blocked"
    BLOCKED = "blocked"
    NOT_FOUND = "not_found"
    UNKNOWN = "unknown"


class InactiveReason(enum.StrEnum):
    """Why a user is inactive."""

    BLOCKED_IN_AUTH0 = "blocked_in_auth0"
    DEACTIVATED = "deactivated"
    UNKNOWN = "unknown"


class TokenState(enum.StrEnum):
    """Which of the caller's API tokens ListTokens returns."""

    ACTIVE = "active"
    EXPIRED = "expired"
    ALL = "all"


@dataclasses.dataclass(frozen=True, slots=True)
class User:
    """One person known to the service.

    `permissions` are the ones granted, sorted; a superuser holds every
    permission besides them.
    `inactive_reason` is None while the user is active.
    """

    email: str
    active: bool
    superuser: bool
    permissions: tuple[str, ...]
    inactive_reason: InactiveReason | None
    create_time: datetime.datetime
    last_login_time: datetime.datetime | None
    auth0_check_time: datetime.datetime | None


@dataclasses.dataclass(frozen=True, slots=True)
class TokenInfo:
    """An API token, described without its key."""

    token_id: str
    key_prefix: str
    permissions: tuple[str, ...]
    notes: str
    create_time: datetime.datetime
    expire_time: datetime.datetime
    revoke_time: datetime.datetime | None
    expired: bool

    @property
    def revoked(self) -> bool:
        """Tell whether the token was revoked."""
        return self.revoke_time is not None


@dataclasses.dataclass(frozen=True, slots=True)
class ValidatedToken:
    """A token that passed ValidateToken: its owner and what it may do now."""

    user: User
    permissions: tuple[str, ...]
    kind: TokenKind
    expire_time: datetime.datetime
    token_id: str


@dataclasses.dataclass(frozen=True, slots=True)
class LoginStart:
    """Where to send the browser, and the state to hand back to `login`."""

    authorization_url: str
    state: str


# The keys below are left out of repr, so that printing or logging one of
# these values cannot leak a credential.


@dataclasses.dataclass(frozen=True, slots=True)
class Session:
    """A finished sign-in: the new session token and its user."""

    session_token: str = dataclasses.field(repr=False)
    expire_time: datetime.datetime
    user: User
    created: bool


@dataclasses.dataclass(frozen=True, slots=True)
class NewToken:
    """A token just created: its key, shown this once, and its description."""

    token: str = dataclasses.field(repr=False)
    info: TokenInfo


@dataclasses.dataclass(frozen=True, slots=True)
class UserChange:
    """A user after an administrator's change, and whether it created them."""

    user: User
    created: bool


@dataclasses.dataclass(frozen=True, slots=True)
class UserPage:
    """One page of ListUsers; `next_page_token` is empty on the last page."""

    users: tuple[User, ...]
    next_page_token: str
