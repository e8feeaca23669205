"""The database tables, as SQLAlchemy 2 typed models.

The migrations in `identity_service/migrations` create these tables; a test
compares the two so they cannot drift apart. Queries on the hot path use the
tables through SQLAlchemy Core (`Token.__table__`), not ORM sessions.
"""

import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(TypeDecorator[datetime.datetime]):
    """A timestamp stored in UTC and always read back timezone-aware.

    SQLite keeps no zone and returns naive datetimes; PostgreSQL returns aware
    ones. This type makes both behave like PostgreSQL, so comparisons with the
    clock's aware datetimes never mix the two kinds.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(
        self, value: datetime.datetime | None, dialect: Dialect
    ) -> datetime.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; use the clock's time")
        return value.astimezone(datetime.UTC)

    def process_result_value(
        self, value: datetime.datetime | None, dialect: Dialect
    ) -> datetime.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=datetime.UTC)
        return value.astimezone(datetime.UTC)


class Base(DeclarativeBase):
    """The declarative base of every table."""


class User(Base):
    """A person who signed in, or whom an administrator named ahead of time."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # The email as last given by the provider or an administrator, for display.
    email: Mapped[str] = mapped_column(String(320))
    # The email folded to lower case: one person is one user however their
    # email is cased, so every lookup goes through this column.
    email_key: Mapped[str] = mapped_column(String(320), unique=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    superuser: Mapped[bool] = mapped_column(Boolean, default=False)
    # Granted permissions, space-separated and sorted (see permissions.py). The
    # set is small and fixed, and is always read whole with its user.
    permissions: Mapped[str] = mapped_column(Text, default="")
    # Why the user is inactive: "blocked_in_auth0", which a sign-in undoes, or
    # "deactivated" by an administrator, which only SetActive undoes.
    inactive_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    create_time: Mapped[datetime.datetime] = mapped_column(UTCDateTime)
    last_login_time: Mapped[datetime.datetime | None] = mapped_column(
        UTCDateTime, nullable=True
    )
    # The last clear answer from Auth0; the re-check is due once it is older
    # than NOT_BLOCKED_IN_AUTH0_INTERVAL_SECONDS, or when it is null.
    auth0_check_time: Mapped[datetime.datetime | None] = mapped_column(
        UTCDateTime, nullable=True
    )


class Token(Base):
    """A session token from Login or an API token from CreateToken."""

    __tablename__ = "tokens"
    __table_args__ = (Index("ix_tokens_user_id_kind", "user_id", "kind"),)

    # A random public identifier, so token ids say nothing about how many exist.
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    # "api" or "session".
    kind: Mapped[str] = mapped_column(String(16))
    # SHA-256 of the key; the key itself is never stored.
    key_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    # The first characters of the key, to tell tokens apart in listings.
    key_prefix: Mapped[str] = mapped_column(String(8))
    # The token's own permissions; its effective ones are these intersected
    # with its owner's current ones. Unused for session tokens, which carry
    # exactly their owner's permissions.
    permissions: Mapped[str] = mapped_column(Text, default="")
    notes: Mapped[str] = mapped_column(Text, default="")
    create_time: Mapped[datetime.datetime] = mapped_column(UTCDateTime)
    expire_time: Mapped[datetime.datetime] = mapped_column(UTCDateTime)
    revoke_time: Mapped[datetime.datetime | None] = mapped_column(
        UTCDateTime, nullable=True
    )


class LoginAttempt(Base):
    """A sign-in begun by StartLogin and not yet finished by Login.

    Kept in the database rather than in memory so that Login may reach any
    replica. A row is used at most once: Login marks it used in the same
    statement that checks it.
    """

    __tablename__ = "login_attempts"
    __table_args__ = (Index("ix_login_attempts_expire_time", "expire_time"),)

    state: Mapped[str] = mapped_column(String(128), primary_key=True)
    nonce: Mapped[str] = mapped_column(String(128))
    code_verifier: Mapped[str] = mapped_column(String(128))
    redirect_uri: Mapped[str] = mapped_column(Text)
    create_time: Mapped[datetime.datetime] = mapped_column(UTCDateTime)
    expire_time: Mapped[datetime.datetime] = mapped_column(UTCDateTime)
    use_time: Mapped[datetime.datetime | None] = mapped_column(
        UTCDateTime, nullable=True
    )


class ChangeCounter(Base):
    """One row counting the changes that can make a cached answer wrong.

    Every revocation, permission change, activation, deactivation and extension
    adds one in its own transaction; each server process reads it twice a
    second and drops its token cache when it moves (see cache.py).
    """

    __tablename__ = "change_counter"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    value: Mapped[int] = mapped_column(BigInteger, default=0)


class AuditEvent(Base):
    """A record of a grant, token creation, revocation or deactivation.

    Rows are only ever added. `actor` names who acted ("user:ID", "cli" or
    "auth0-check"); `detail` is JSON and never holds a key or a secret.
    """

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_user_id", "user_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    time: Mapped[datetime.datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))
    user_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    token_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    detail: Mapped[str] = mapped_column(Text, default="{}")
