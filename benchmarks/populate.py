"""Filling a benchmark database with users and many API tokens, quickly.

Rows go in with the driver's bulk paths (executemany for SQLite, COPY for
PostgreSQL), bypassing the service, since creating a million tokens one RPC at
a time would take longer than the whole benchmark. The rows are the same as
CreateToken makes: random 256-bit keys of which only SHA-256 is stored.
"""

import datetime
import hashlib
import secrets
import sqlite3
import uuid

import asyncpg
from sqlalchemy.engine import make_url

from identity_service import permissions as perms

PERMISSIONS = perms.encode({perms.UPLOAD_SYMBOLS, perms.MANAGE_TOKENS})


def user_rows(
    start: int, count: int, *, now: datetime.datetime, checked: datetime.datetime
) -> list[tuple]:
    """Rows of users bench-N@example.com last checked in Auth0 at checked."""
    return [
        (
            number,
            f"bench-{number}@example.com",
            f"bench-{number}@example.com",
            True,
            False,
            PERMISSIONS,
            None,
            now,
            None,
            checked,
        )
        for number in range(start, start + count)
    ]


def token_rows(
    count: int, *, users: range, keep: int, now: datetime.datetime
) -> tuple[list[tuple], list[str]]:
    """Make count token rows, dealt round-robin to users; keep the first keys.

    The n-th token belongs to users[n % len(users)], so the n-th kept key is a
    token of that user.
    """
    expire = now + datetime.timedelta(days=365)
    rows, kept = [], []
    for number in range(count):
        key = secrets.token_hex(32)
        if len(kept) < keep:
            kept.append(key)
        rows.append(
            (
                uuid.uuid4().hex,
                users[number % len(users)],
                "api",
                hashlib.sha256(key.encode("ascii")).digest(),
                key[:4],
                PERMISSIONS,
                "",
                now,
                expire,
                None,
            )
        )
    return rows, kept


USER_COLUMNS = (
    "id, email, email_key, active, superuser, permissions, inactive_reason, "
    "create_time, last_login_time, auth0_check_time"
)
TOKEN_COLUMNS = (
    "id, user_id, kind, key_hash, key_prefix, permissions, notes, create_time, "
    "expire_time, revoke_time"
)


def fill_sqlite(path: str, users: list, tokens: list) -> None:
    """Insert rows into a SQLite database in one transaction."""

    def text(row: tuple) -> tuple:
        # The service's UTCDateTime writes naive UTC text; match it.
        return tuple(
            value.replace(tzinfo=None).isoformat(" ")
            if isinstance(value, datetime.datetime)
            else value
            for value in row
        )

    connection = sqlite3.connect(path)
    with connection:
        connection.executemany(
            f"INSERT INTO users ({USER_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?)",
            [text(row) for row in users],
        )
        connection.executemany(
            f"INSERT INTO tokens ({TOKEN_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?)",
            [text(row) for row in tokens],
        )
    connection.close()


async def fill_postgresql(url: str, users: list, tokens: list) -> None:
    """COPY rows into a PostgreSQL database, then refresh its statistics."""
    parsed = make_url(url)
    connection = await asyncpg.connect(
        user=parsed.username,
        password=parsed.password,
        host=parsed.host,
        port=parsed.port,
        database=parsed.database,
    )
    try:
        if users:
            await connection.copy_records_to_table(
                "users", records=users, columns=USER_COLUMNS.split(", ")
            )
            await connection.execute(
                "SELECT setval(pg_get_serial_sequence('users', 'id'), "
                "(SELECT max(id) FROM users))"
            )
        await connection.copy_records_to_table(
            "tokens", records=tokens, columns=TOKEN_COLUMNS.split(", ")
        )
        await connection.execute("ANALYZE users; ANALYZE tokens")
    finally:
        await connection.close()
