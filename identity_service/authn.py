"""Authenticating a token: the work behind ValidateToken and every caller check.

The order of the checks is fixed: the key's shape, then the stored token, its
revocation and expiry, then its owner's state, then the Auth0 re-check when it
is due, and last the permissions asked for. A token is accepted only when
every step passes. The token and its owner come from the process's cache when
it holds them (see cache.py for how long a cached answer can lag a change);
expiry and the interval are decided afresh at every call.
"""

import dataclasses
from collections.abc import Callable, Sequence

from . import errors, keys
from .cache import TokenCache
from .clock import Clock
from .recheck import BlockedCheck
from .store import SESSION, Store, TokenRecord, UserRecord

BEARER = "bearer "


@dataclasses.dataclass(frozen=True)
class Authenticated:
    """A token that passed every check, with its owner and what it may do."""

    token: TokenRecord
    user: UserRecord
    permissions: frozenset[str]


class Authenticator:
    """Checks tokens against the store, the clock and the Auth0 re-check."""

    def __init__(
        self, *, store: Store, clock: Clock, check: BlockedCheck, cache: TokenCache
    ) -> None:
        self.store = store
        self.clock = clock
        self.check = check
        self.cache = cache

    async def authenticate(
        self,
        sent: str,
        *,
        time_left: Callable[[], float | None],
        field: str = "token",
        required: frozenset[str] = frozenset(),
    ) -> Authenticated:
        """Return the token's owner and effective permissions, or raise.

        Raises InvalidArgument (TOKEN_MALFORMED), Unauthenticated
        (TOKEN_NOT_FOUND, TOKEN_EXPIRED), PermissionDenied (USER_INACTIVE,
        USER_BLOCKED, PERMISSION_MISSING) or Unavailable (AUTH0_UNAVAILABLE).
        time_left tells the seconds left of the caller's deadline; it is only
        asked when the Auth0 check runs, which keeps it off the common path.
        """
        key = keys.parse(sent, field=field)
        key_hash = keys.digest(key)
        epoch = self.cache.epoch
        found = self.cache.get(key_hash)
        if found is None:
            found = await self.store.find_token(key_hash)
            if found is not None:
                self.cache.put(key_hash, *found, epoch)
        if found is None or not keys.same_digest(found[0].key_hash, key_hash):
            raise errors.Unauthenticated(errors.TOKEN_NOT_FOUND, "no such token")

        token, user = found
        if token.revoke_time is not None:
            raise errors.Unauthenticated(errors.TOKEN_NOT_FOUND, "no such token")
        now = self.clock.now()
        if token.expire_time <= now:
            raise errors.Unauthenticated(errors.TOKEN_EXPIRED, "the token has expired")
        if not user.active:
            raise errors.PermissionDenied(errors.USER_INACTIVE, "the user is inactive")

        if self.check.is_due(user, now):
            user = await self.check.ensure_not_blocked(user, timeout=time_left())
            self.cache.update_user(user, epoch)
            if not user.active:
                raise errors.PermissionDenied(
                    errors.USER_INACTIVE, "the user is inactive"
                )

        granted = effective_permissions(token, user)
        missing = required - granted
        if missing:
            raise errors.PermissionDenied(
                errors.PERMISSION_MISSING,
                "the token lacks " + ", ".join(sorted(missing)),
                missing=",".join(sorted(missing)),
            )
        return Authenticated(token=token, user=user, permissions=granted)

    async def authenticate_caller(
        self,
        metadata: Sequence[tuple[str, str | bytes]],
        *,
        time_left: Callable[[], float | None],
    ) -> Authenticated:
        """Authenticate the credential in a call's metadata."""
        sent = credential_from(metadata)
        return await self.authenticate(sent, time_left=time_left, field="authorization")


def effective_permissions(token: TokenRecord, user: UserRecord) -> frozenset[str]:
    """Return what a token may do now: its own permissions within its owner's.

    A session token carries exactly its owner's permissions. An API token's
    are intersected with its owner's current ones, so taking a permission from
    a user takes it from all of their tokens at once.
    """
    if token.kind == SESSION:
        return user.effective_permissions
    return token.permissions & user.effective_permissions


def credential_from(metadata: Sequence[tuple[str, str | bytes]]) -> str:
    """Return the caller's key from `authorization: Bearer KEY` or `auth-token`."""
    for name, value in metadata:
        if name not in ("authorization", "auth-token") or isinstance(value, bytes):
            continue

        if name == "auth-token":
            return value.strip()
        if value[: len(BEARER)].lower() == BEARER:
            return value[len(BEARER) :].strip()
        raise errors.Unauthenticated(
            errors.CREDENTIAL_MISSING,
            "the authorization metadata must be 'Bearer KEY'",
        )

    raise errors.Unauthenticated(
        errors.CREDENTIAL_MISSING,
        "this call needs a credential: send metadata 'authorization: Bearer KEY'",
    )
