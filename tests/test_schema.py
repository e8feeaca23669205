"""The migrations make exactly the models' schema; the generated code is current."""

import asyncio
import pathlib
import subprocess
import sys

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from identity_service import database, migrate
from identity_service.models import Base

ROOT = pathlib.Path(__file__).resolve().parent.parent


async def schema_differences(url: str) -> list:
    engine = database.create_engine(url, pool_size=1)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(
                lambda sync: compare_metadata(
                    MigrationContext.configure(sync, opts={"compare_type": True}),
                    Base.metadata,
                )
            )
    finally:
        await engine.dispose()


def test_migrations_match_the_models(database_url):
    assert asyncio.run(schema_differences(database_url)) == []


def test_migrating_twice_changes_nothing(database_url):
    async def run() -> str | None:
        engine = database.create_engine(database_url, pool_size=1)
        try:
            await migrate.upgrade(engine)
            return await migrate.current_revision(engine)
        finally:
            await engine.dispose()

    assert asyncio.run(run()) == migrate.head_revision()


def test_generated_code_matches_the_proto():
    done = subprocess.run(
        [sys.executable, "scripts/generate_protos.py", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )

    assert done.returncode == 0, done.stderr
