"""Fixtures shared by the test modules."""

import asyncio
import os
import select
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from identity_service import config, database, migrate


@pytest.fixture(scope="session")
def auth0_standin() -> Iterator[str]:
    """Run the Auth0 stand-in on a free loopback port and yield its base URL.

    It accepts the client id and secret that `config.load({})` defaults to. One
    process serves the whole session, so a test that needs it clean posts to
    `/_standin/reset` first.
    """
    defaults = config.load({})
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "identity_service.devstack.auth0_standin",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--client-id",
            defaults.auth0_client_id,
            "--client-secret",
            defaults.auth0_client_secret,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None

    try:
        # A stand-in that hangs before printing must fail the run, not stall it.
        ready, _, _ = select.select([process.stdout], [], [], 10)
        line = process.stdout.readline() if ready else ""
        if not line.startswith("auth0-standin listening on "):
            raise RuntimeError(f"the Auth0 stand-in did not start: {line!r}")
        yield line.split()[-1]
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stdout.close()


# The database of each test: SQLite by default; with TEST_DATABASE_URL set to a
# PostgreSQL server (`postgresql://postgres@127.0.0.1:5432/test`), a database of
# its own on that server, created before and dropped after the test, so tests
# never see each other's rows.

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "")


def on_postgresql() -> bool:
    """Tell whether this run uses PostgreSQL."""
    return TEST_DATABASE_URL.startswith(("postgresql", "postgres"))


async def run_admin_sql(statement: str) -> None:
    """Run one statement outside a transaction on TEST_DATABASE_URL's server."""
    engine = create_async_engine(
        database.async_url(TEST_DATABASE_URL), isolation_level="AUTOCOMMIT"
    )
    try:
        async with engine.connect() as connection:
            await connection.execute(sqlalchemy.text(statement))
    finally:
        await engine.dispose()


async def migrate_url(url: str) -> None:
    """Bring the database at url to the newest schema."""
    engine = database.create_engine(url, pool_size=1)
    try:
        await migrate.upgrade(engine)
    finally:
        await engine.dispose()


@pytest.fixture
def empty_database_url(tmp_path) -> Iterator[str]:
    """Yield the plain URL of a new, empty database for one test."""
    if not on_postgresql():
        yield f"sqlite:///{tmp_path / 'identity.sqlite3'}"
        return

    name = f"identity_test_{uuid.uuid4().hex[:12]}"
    asyncio.run(run_admin_sql(f'CREATE DATABASE "{name}"'))
    try:
        url = make_url(TEST_DATABASE_URL).set(database=name)
        yield url.render_as_string(hide_password=False)
    finally:
        asyncio.run(run_admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def database_url(empty_database_url) -> str:
    """Return the plain URL of a new database with the current schema."""
    asyncio.run(migrate_url(empty_database_url))
    return empty_database_url


# With TEST_DATABASE_ONLY set, as CI's PostgreSQL pass sets it, the run keeps
# only the tests that reach TEST_DATABASE_URL: through these fixtures, or, for
# modules that build one server for all their tests, by saying so with
# USES_TEST_DATABASE = True. The rest already ran in the SQLite pass and would
# run the same again.
DATABASE_FIXTURES = {"database_url", "empty_database_url"}


def pytest_collection_modifyitems(config, items):
    if not os.environ.get("TEST_DATABASE_ONLY"):
        return

    kept, dropped = [], []
    for item in items:
        uses = DATABASE_FIXTURES & set(getattr(item, "fixturenames", ()))
        if uses or getattr(item.module, "USES_TEST_DATABASE", False):
            kept.append(item)
        else:
            dropped.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
