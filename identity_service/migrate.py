"""Bringing the database schema up to date with the Alembic migrations."""

import pathlib

import sqlalchemy
from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS = pathlib.Path(__file__).parent / "migrations"

# Any constant works; it only has to be the same for every replica, so that
# two replicas started at once take turns instead of racing to create tables.
MIGRATION_LOCK_ID = 7_201_517


def alembic_config() -> AlembicConfig:
    """Return an Alembic configuration pointing at the packaged migrations."""
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str:
    """Return the newest revision the code knows."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError("the migrations folder has no revision")
    return head


def upgrade_on(connection: Connection) -> None:
    """Run every pending migration over one synchronous connection."""
    if connection.dialect.name == "postgresql":
        connection.execute(
            sqlalchemy.text("SELECT pg_advisory_xact_lock(:id)"),
            {"id": MIGRATION_LOCK_ID},
        )

    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


def revision_on(connection: Connection) -> str | None:
    """Return the schema revision recorded in the database, if any."""
    return MigrationContext.configure(connection).get_current_revision()


async def upgrade(engine: AsyncEngine) -> str:
    """Migrate the database to the newest revision and return it."""
    async with engine.begin() as connection:
        await connection.run_sync(upgrade_on)
    return head_revision()


async def current_revision(engine: AsyncEngine) -> str | None:
    """Return the database's schema revision (None before the first migration)."""
    async with engine.connect() as connection:
        return await connection.run_sync(revision_on)
