"""Connecting to the database named by DATABASE_URL.

Operators write the plain URL (`sqlite:///var/identity.sqlite3`,
`postgresql://user@host:5432/db`); the service picks the async driver itself:
aiosqlite for SQLite, asyncpg for PostgreSQL.
"""

import asyncio
import contextlib
import pathlib
from collections.abc import AsyncIterator

import sqlalchemy
from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from . import deadline, errors
from .config import ConfigError

ASYNC_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
}


def async_url(database_url: str) -> URL:
    """Turn a plain DATABASE_URL into the URL of its async driver."""
    try:
        url = make_url(database_url)
    except ArgumentError:
        raise ConfigError(f"DATABASE_URL {database_url!r} is not a URL") from None

    backend = url.get_backend_name()
    if backend not in ("sqlite", "postgresql", "postgres"):
        raise ConfigError(
            f"DATABASE_URL uses {backend!r}; use sqlite:///PATH or postgresql://..."
        )

    if backend == "sqlite" and url.database in (None, "", ":memory:"):
        raise ConfigError(
            "DATABASE_URL must name a SQLite file; an in-memory database is not "
            "shared between connections"
        )

    return url.set(drivername=ASYNC_DRIVERS[backend])


def create_engine(
    database_url: str, *, pool_size: int = 10, timeout: float | None = None
) -> AsyncEngine:
    """Create the async engine for DATABASE_URL, creating a SQLite file's folder.

    On PostgreSQL, timeout bounds each wait: for a connection from the pool,
    for a new connection, and for one statement. A database that stops
    answering without closing its connections (paused, or cut off by the
    network) then fails calls within seconds instead of holding them until
    their deadline, or forever when they set none. Commands that may wait
    on purpose, such as a migration queued behind another, leave it unset.
    """
    url = async_url(database_url)

    if url.get_backend_name() == "sqlite":
        pathlib.Path(url.database or "").parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": 15})
        event.listen(engine.sync_engine, "connect", configure_sqlite)
        return engine

    # pre_ping replaces connections that died while idle, so the service comes
    # back by itself after PostgreSQL restarts.
    connect_args = (
        {} if timeout is None else {"timeout": timeout, "command_timeout": timeout}
    )
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        pool_timeout=10 if timeout is None else timeout,
        connect_args=connect_args,
    )


def configure_sqlite(dbapi_connection: object, _record: object) -> None:
    """Turn on foreign keys and WAL, and wait on locks instead of failing."""
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=15000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def is_unavailable(error: BaseException) -> bool:
    """Tell whether error means the database cannot be reached right now."""
    if isinstance(error, OperationalError | InterfaceError):
        return True
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return True
    return isinstance(error, OSError | ConnectionError | TimeoutError)


@contextlib.asynccontextmanager
async def translated_errors() -> AsyncIterator[None]:
    """Turn a lost database connection into errors.Unavailable.

    The work also ends at the current call's deadline (deadline.current),
    with Unavailable too, so that the caller hears why in time.
    """
    try:
        async with asyncio.timeout_at(deadline.current()):
            yield
    except errors.IdentityError:
        raise
    except Exception as error:
        if is_unavailable(error):
            message = "the database cannot be reached"
            if isinstance(error, TimeoutError):
                message = "the database did not answer in time"
            raise errors.Unavailable(errors.DATABASE_UNAVAILABLE, message) from error
        raise


async def database_is_reachable(engine: AsyncEngine) -> bool:
    """Run a trivial query, for the health check."""
    try:
        async with engine.connect() as connection:
            await connection.execute(sqlalchemy.text("SELECT 1"))
    except Exception as error:
        if is_unavailable(error):
            return False
        raise
    return True
