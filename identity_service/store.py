"""Reading and changing the service's state in the database.

Every statement is SQLAlchemy Core over the typed models' tables, run on a
pooled connection: no ORM session is opened per call, which keeps
ValidateToken's lookup to one indexed query. Each change runs in one
transaction together with its audit record, so a change is either whole or
absent, whatever happens to the process.
"""

import contextlib
import dataclasses
import datetime
import json
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import sqlalchemy
from sqlalchemy import func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from . import permissions as perms
from .database import translated_errors
from .models import AuditEvent, ChangeCounter, LoginAttempt, Token, User

users = User.__table__
tokens = Token.__table__
attempts = LoginAttempt.__table__
audit = AuditEvent.__table__
changes = ChangeCounter.__table__

BLOCKED_IN_AUTH0 = "blocked_in_auth0"
DEACTIVATED = "deactivated"

API = "api"
SESSION = "session"


def email_key(email: str) -> str:
    """Fold an email for comparison: one person is one user, however cased."""
    return email.strip().lower()


@dataclasses.dataclass(frozen=True)
class UserRecord:
    """A user as stored."""

    id: int
    email: str
    active: bool
    superuser: bool
    permissions: frozenset[str]
    inactive_reason: str | None
    create_time: datetime.datetime
    last_login_time: datetime.datetime | None
    auth0_check_time: datetime.datetime | None

    @property
    def effective_permissions(self) -> frozenset[str]:
        """Return what the user holds now: everything for a superuser."""
        return perms.ALL if self.superuser else self.permissions


@dataclasses.dataclass(frozen=True)
class TokenRecord:
    """A token as stored, without its key."""

    id: str
    user_id: int
    kind: str
    key_hash: bytes
    key_prefix: str
    permissions: frozenset[str]
    notes: str
    create_time: datetime.datetime
    expire_time: datetime.datetime
    revoke_time: datetime.datetime | None


@dataclasses.dataclass(frozen=True)
class AttemptRecord:
    """A login attempt begun by StartLogin."""

    state: str
    nonce: str
    code_verifier: str
    redirect_uri: str


USER_COLUMNS = (
    users.c.id,
    users.c.email,
    users.c.active,
    users.c.superuser,
    users.c.permissions,
    users.c.inactive_reason,
    users.c.create_time,
    users.c.last_login_time,
    users.c.auth0_check_time,
)
TOKEN_COLUMNS = (
    tokens.c.id,
    tokens.c.user_id,
    tokens.c.kind,
    tokens.c.key_hash,
    tokens.c.key_prefix,
    tokens.c.permissions,
    tokens.c.notes,
    tokens.c.create_time,
    tokens.c.expire_time,
    tokens.c.revoke_time,
)


def user_from(row: Row[Any], offset: int = 0) -> UserRecord:
    """Build a UserRecord from USER_COLUMNS starting at offset in row."""
    values = tuple(row)[offset : offset + len(USER_COLUMNS)]
    fields = dict(zip((c.name for c in USER_COLUMNS), values, strict=True))
    fields["permissions"] = perms.decode(fields["permissions"])
    return UserRecord(**fields)


def token_from(row: Row[Any], offset: int = 0) -> TokenRecord:
    """Build a TokenRecord from TOKEN_COLUMNS starting at offset in row."""
    values = tuple(row)[offset : offset + len(TOKEN_COLUMNS)]
    fields = dict(zip((c.name for c in TOKEN_COLUMNS), values, strict=True))
    fields["permissions"] = perms.decode(fields["permissions"])
    return TokenRecord(**fields)


# Compiled once: the hot path of ValidateToken.
FIND_TOKEN = (
    select(*TOKEN_COLUMNS, *USER_COLUMNS)
    .select_from(tokens.join(users, tokens.c.user_id == users.c.id))
    .where(tokens.c.key_hash == sqlalchemy.bindparam("key_hash"))
)


class Store:
    """The service's queries and changes, over one async engine."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        # Called after this process commits a change that can make a cached
        # answer wrong; the token cache drops itself there.
        self.change_listeners: list[Callable[[], None]] = []

    @contextlib.asynccontextmanager
    async def changing(self) -> AsyncIterator[AsyncConnection]:
        """Open a transaction for a change that cached answers must not outlive.

        The change counter moves in the same transaction, so other processes
        see it exactly when they can see the change; this process's listeners
        run once it is committed.
        """
        async with translated_errors(), self.engine.begin() as connection:
            yield connection
            # Last, so the counter's row is locked only for the moment before
            # the commit, and concurrent changes do not queue behind each other.
            await connection.execute(
                update(changes)
                .where(changes.c.id == 1)
                .values(value=changes.c.value + 1)
            )
        for listener in self.change_listeners:
            listener()

    async def read_generation(self) -> int:
        """Return the change counter, which moves with every such change."""
        async with translated_errors(), self.engine.connect() as connection:
            result = await connection.execute(
                select(changes.c.value).where(changes.c.id == 1)
            )
            return int(result.scalar_one())

    async def find_token(
        self, key_hash: bytes
    ) -> tuple[TokenRecord, UserRecord] | None:
        """Return the token with this key hash and its owner, if any."""
        async with translated_errors(), self.engine.connect() as connection:
            result = await connection.execute(FIND_TOKEN, {"key_hash": key_hash})
            row = result.first()
        if row is None:
            return None
        return token_from(row), user_from(row, len(TOKEN_COLUMNS))

    async def get_user(self, email: str) -> UserRecord | None:
        """Return the user with this email, compared without regard to case."""
        async with translated_errors(), self.engine.connect() as connection:
            return await fetch_user(connection, email_key(email))

    async def get_user_by_id(self, user_id: int) -> UserRecord | None:
        """Return the user with this id."""
        async with translated_errors(), self.engine.connect() as connection:
            result = await connection.execute(
                select(*USER_COLUMNS).where(users.c.id == user_id)
            )
            row = result.first()
        return None if row is None else user_from(row)

    async def list_users(self, *, after: str, limit: int) -> list[UserRecord]:
        """Return up to limit users whose folded email sorts after `after`."""
        query = (
            select(*USER_COLUMNS)
            .where(users.c.email_key > after)
            .order_by(users.c.email_key)
            .limit(limit)
        )
        async with translated_errors(), self.engine.connect() as connection:
            result = await connection.execute(query)
            return [user_from(row) for row in result]

    async def set_permissions(
        self,
        email: str,
        granted: frozenset[str],
        superuser: bool | None,
        *,
        actor: str,
        now: datetime.datetime,
    ) -> tuple[UserRecord, bool]:
        """Replace a user's permissions, creating the user if unknown."""
        async with self.changing() as connection:
            user, created = await ensure_user(connection, email, now)

            values: dict[str, Any] = {"permissions": perms.encode(granted)}
            if superuser is not None:
                values["superuser"] = superuser
            await connection.execute(
                update(users).where(users.c.id == user.id).values(**values)
            )

            detail: dict[str, Any] = {"permissions": sorted(granted)}
            if superuser is not None:
                detail["superuser"] = superuser
            await record(
                connection, now, actor, "set_permissions", user.id, None, detail
            )
            return await fetch_user_by_id(connection, user.id), created

    async def set_active(
        self, email: str, active: bool, *, actor: str, now: datetime.datetime
    ) -> UserRecord | None:
        """Activate or deactivate a user as an administrator; None if unknown."""
        async with self.changing() as connection:
            user = await fetch_user(connection, email_key(email), for_update=True)
            if user is None:
                return None

            if active:
                # Forgetting the last check makes the next use ask Auth0 again,
                # so activating a user blocked in Auth0 cannot bypass the check.
                values: dict[str, Any] = {
                    "active": True,
                    "inactive_reason": None,
                    "auth0_check_time": None,
                }
            else:
                values = {"active": False, "inactive_reason": DEACTIVATED}
            await connection.execute(
                update(users).where(users.c.id == user.id).values(**values)
            )

            action = "activate" if active else "deactivate"
            await record(connection, now, actor, action, user.id, None, {})
            return await fetch_user_by_id(connection, user.id)

    async def get_or_create_user(
        self, email: str, *, now: datetime.datetime
    ) -> tuple[UserRecord, bool]:
        """Return the user with this email, creating them with no permissions."""
        async with translated_errors(), self.engine.begin() as connection:
            return await ensure_user(connection, email, now)

    async def sign_in(
        self, email: str, *, now: datetime.datetime
    ) -> tuple[UserRecord, bool]:
        """Find or create the user signing in and record the time."""
        async with translated_errors(), self.engine.begin() as connection:
            user, created = await ensure_user(connection, email, now)
            await connection.execute(
                update(users)
                .where(users.c.id == user.id)
                .values(last_login_time=now, email=email.strip())
            )
            return await fetch_user_by_id(connection, user.id), created

    async def reactivate_after_block(
        self, user_id: int, *, now: datetime.datetime
    ) -> UserRecord:
        """Make a user whom the Auth0 check deactivated active again.

        Only a deactivation by the check is undone: one by an administrator
        stays, whatever the order of events.
        """
        async with self.changing() as connection:
            result = await connection.execute(
                update(users)
                .where(users.c.id == user_id)
                .where(users.c.inactive_reason == BLOCKED_IN_AUTH0)
                .values(active=True, inactive_reason=None)
            )
            if result.rowcount:
                await record(
                    connection, now, "sign-in", "reactivate", user_id, None, {}
                )
            return await fetch_user_by_id(connection, user_id)

    async def record_not_blocked(self, user_id: int, *, now: datetime.datetime) -> None:
        """Remember that Auth0 said the user is not blocked (or unknown)."""
        async with translated_errors(), self.engine.begin() as connection:
            await connection.execute(
                update(users).where(users.c.id == user_id).values(auth0_check_time=now)
            )

    async def record_blocked(self, user_id: int, *, now: datetime.datetime) -> None:
        """Deactivate a user whom Auth0 reports blocked, with its audit record.

        A user an administrator already deactivated keeps that reason, so a
        later sign-in does not reactivate them.
        """
        async with self.changing() as connection:
            result = await connection.execute(
                update(users)
                .where(users.c.id == user_id)
                .where(users.c.active.is_(True))
                .values(
                    active=False, inactive_reason=BLOCKED_IN_AUTH0, auth0_check_time=now
                )
            )
            if result.rowcount:
                await record(
                    connection,
                    now,
                    "auth0-check",
                    "deactivate",
                    user_id,
                    None,
                    {"reason": BLOCKED_IN_AUTH0},
                )
            else:
                await connection.execute(
                    update(users)
                    .where(users.c.id == user_id)
                    .values(auth0_check_time=now)
                )

    async def create_token(
        self,
        user_id: int,
        *,
        kind: str,
        key_hash: bytes,
        key_prefix: str,
        granted: frozenset[str],
        notes: str,
        now: datetime.datetime,
        expire_time: datetime.datetime,
        actor: str,
    ) -> TokenRecord:
        """Store a new token (its hash only) and, for API tokens, audit it."""
        token_id = uuid.uuid4().hex
        async with translated_errors(), self.engine.begin() as connection:
            await connection.execute(
                insert(tokens).values(
                    id=token_id,
                    user_id=user_id,
                    kind=kind,
                    key_hash=key_hash,
                    key_prefix=key_prefix,
                    permissions=perms.encode(granted),
                    notes=notes,
                    create_time=now,
                    expire_time=expire_time,
                    revoke_time=None,
                )
            )
            if kind == API:
                detail = {
                    "permissions": sorted(granted),
                    "expire_time": str(expire_time),
                }
                await record(
                    connection, now, actor, "create_token", user_id, token_id, detail
                )
            return await fetch_token(connection, token_id)

    async def list_tokens(
        self, user_id: int, *, state: str, now: datetime.datetime
    ) -> list[TokenRecord]:
        """Return a user's API tokens, newest first: active, expired or all."""
        query = (
            select(*TOKEN_COLUMNS)
            .where(tokens.c.user_id == user_id, tokens.c.kind == API)
            .order_by(tokens.c.create_time.desc(), tokens.c.id)
        )
        if state == "active":
            query = query.where(
                tokens.c.revoke_time.is_(None), tokens.c.expire_time > now
            )
        elif state == "expired":
            query = query.where(
                tokens.c.revoke_time.is_(None), tokens.c.expire_time <= now
            )

        async with translated_errors(), self.engine.connect() as connection:
            result = await connection.execute(query)
            return [token_from(row) for row in result]

    async def get_api_token(self, token_id: str) -> TokenRecord | None:
        """Return an API token that is not revoked, by id."""
        async with translated_errors(), self.engine.connect() as connection:
            result = await connection.execute(
                select(*TOKEN_COLUMNS).where(
                    tokens.c.id == token_id,
                    tokens.c.kind == API,
                    tokens.c.revoke_time.is_(None),
                )
            )
            row = result.first()
        return None if row is None else token_from(row)

    async def revoke_token(
        self, token_id: str, *, actor: str, now: datetime.datetime
    ) -> bool:
        """Revoke a token that is not yet revoked; False if there was none."""
        async with self.changing() as connection:
            result = await connection.execute(
                update(tokens)
                .where(tokens.c.id == token_id, tokens.c.revoke_time.is_(None))
                .values(revoke_time=now)
                .returning(tokens.c.user_id, tokens.c.kind)
            )
            row = result.first()
            if row is None:
                return False

            if row.kind == API:
                await record(
                    connection, now, actor, "revoke_token", row.user_id, token_id, {}
                )
            return True

    async def extend_token(
        self,
        token_id: str,
        expire_time: datetime.datetime,
        *,
        actor: str,
        now: datetime.datetime,
    ) -> TokenRecord:
        """Set a token's new expiry, with its audit record."""
        async with self.changing() as connection:
            result = await connection.execute(
                update(tokens)
                .where(tokens.c.id == token_id)
                .values(expire_time=expire_time)
                .returning(tokens.c.user_id)
            )
            user_id = result.scalar_one()
            detail = {"expire_time": str(expire_time)}
            await record(
                connection, now, actor, "extend_token", user_id, token_id, detail
            )
            return await fetch_token(connection, token_id)

    async def save_attempt(
        self,
        attempt: AttemptRecord,
        *,
        now: datetime.datetime,
        expire_time: datetime.datetime,
    ) -> None:
        """Store a login attempt, and drop attempts that expired long ago."""
        async with translated_errors(), self.engine.begin() as connection:
            await connection.execute(
                attempts.delete().where(
                    attempts.c.expire_time < now - datetime.timedelta(days=1)
                )
            )
            await connection.execute(
                insert(attempts).values(
                    state=attempt.state,
                    nonce=attempt.nonce,
                    code_verifier=attempt.code_verifier,
                    redirect_uri=attempt.redirect_uri,
                    create_time=now,
                    expire_time=expire_time,
                    use_time=None,
                )
            )

    async def use_attempt(
        self, state: str, *, now: datetime.datetime
    ) -> AttemptRecord | None:
        """Mark a login attempt used and return it, if it was unused and current.

        The check and the mark are one statement, so two replicas given the
        same state cannot both succeed.
        """
        async with translated_errors(), self.engine.begin() as connection:
            result = await connection.execute(
                update(attempts)
                .where(
                    attempts.c.state == state,
                    attempts.c.use_time.is_(None),
                    attempts.c.expire_time > now,
                )
                .values(use_time=now)
                .returning(
                    attempts.c.state,
                    attempts.c.nonce,
                    attempts.c.code_verifier,
                    attempts.c.redirect_uri,
                )
            )
            row = result.first()
        return None if row is None else AttemptRecord(*row)

    async def audit_events(self, user_id: int | None = None) -> list[dict[str, Any]]:
        """Return audit records, oldest first, optionally of one user."""
        query = select(audit).order_by(audit.c.id)
        if user_id is not None:
            query = query.where(audit.c.user_id == user_id)
        async with translated_errors(), self.engine.connect() as connection:
            result = await connection.execute(query)
            return [dict(row._mapping) for row in result]

    async def count_tokens(self) -> int:
        """Return how many tokens are stored, of every kind."""
        async with translated_errors(), self.engine.connect() as connection:
            result = await connection.execute(select(func.count()).select_from(tokens))
            return int(result.scalar_one())


async def fetch_user(
    connection: AsyncConnection, key: str, *, for_update: bool = False
) -> UserRecord | None:
    """Return the user with this folded email on an open connection."""
    query = select(*USER_COLUMNS).where(users.c.email_key == key)
    if for_update and connection.dialect.name == "postgresql":
        query = query.with_for_update()
    result = await connection.execute(query)
    row = result.first()
    return None if row is None else user_from(row)


async def fetch_user_by_id(connection: AsyncConnection, user_id: int) -> UserRecord:
    """Return the user with this id on an open connection; it must exist."""
    result = await connection.execute(
        select(*USER_COLUMNS).where(users.c.id == user_id)
    )
    return user_from(result.one())


async def fetch_token(connection: AsyncConnection, token_id: str) -> TokenRecord:
    """Return the token with this id on an open connection; it must exist."""
    result = await connection.execute(
        select(*TOKEN_COLUMNS).where(tokens.c.id == token_id)
    )
    return token_from(result.one())


async def ensure_user(
    connection: AsyncConnection, email: str, now: datetime.datetime
) -> tuple[UserRecord, bool]:
    """Return the user with this email, creating them with no permissions.

    Two callers creating the same user at once are safe: the insert does
    nothing when the folded email already exists, and both then read the one
    row.
    """
    key = email_key(email)
    existing = await fetch_user(connection, key, for_update=True)
    if existing is not None:
        return existing, False

    values = {
        "email": email.strip(),
        "email_key": key,
        "active": True,
        "superuser": False,
        "permissions": "",
        "inactive_reason": None,
        "create_time": now,
    }
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    statement = (
        dialect.insert(users)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["email_key"])
    )
    result = await connection.execute(statement)
    created = bool(result.rowcount)

    user = await fetch_user(connection, key)
    if user is None:
        raise RuntimeError("a user row vanished between its insert and its read")
    return user, created


async def record(
    connection: AsyncConnection,
    now: datetime.datetime,
    actor: str,
    action: str,
    user_id: int | None,
    token_id: str | None,
    detail: dict[str, Any],
) -> None:
    """Add an audit record in the caller's transaction."""
    await connection.execute(
        insert(audit).values(
            time=now,
            actor=actor,
            action=action,
            user_id=user_id,
            token_id=token_id,
            detail=json.dumps(detail, sort_keys=True),
        )
    )
