"""One identity server for a whole test module, built like the `stack` fixture.

Starting a server, migrating its database and making its superuser takes
seconds; the fuzz, authorization and secrets modules make thousands of calls
against one server, so they share it for the module instead of paying that per
test. The pieces (Stack, stack_env, Auth0Control) are the e2e conftest's own,
fetched from pytest since conftest modules are not importable by name.
"""

import asyncio
import contextlib
import pathlib
import types
import uuid
from collections.abc import Iterator

import grpc
import pytest
from sqlalchemy.engine import make_url
from tecken_identity._generated import identity_pb2_grpc as pb_grpc

from identity_service.devstack import processes

HERE = pathlib.Path(__file__).resolve().parent


def conftest_module(config: pytest.Config, directory: pathlib.Path) -> types.ModuleType:
    """Return the conftest module pytest loaded from directory."""
    module = config.pluginmanager.get_plugin(str(directory / "conftest.py"))
    assert isinstance(module, types.ModuleType), directory
    return module


def e2e_conftest(config: pytest.Config) -> types.ModuleType:
    """Return tests/e2e/conftest.py as loaded by pytest."""
    return conftest_module(config, HERE)


@contextlib.contextmanager
def migrated_database(
    config: pytest.Config, tmp_path_factory: pytest.TempPathFactory, label: str
) -> Iterator[str]:
    """Yield the URL of a fresh migrated database on SQLite or PostgreSQL."""
    root = conftest_module(config, HERE.parent)
    if not root.on_postgresql():
        url = f"sqlite:///{tmp_path_factory.mktemp(label) / 'identity.sqlite3'}"
        asyncio.run(root.migrate_url(url))
        yield url
        return

    name = f"identity_test_{uuid.uuid4().hex[:12]}"
    asyncio.run(root.run_admin_sql(f'CREATE DATABASE "{name}"'))
    try:
        url = make_url(root.TEST_DATABASE_URL).set(database=name)
        plain = url.render_as_string(hide_password=False)
        asyncio.run(root.migrate_url(plain))
        yield plain
    finally:
        asyncio.run(
            root.run_admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        )


@contextlib.contextmanager
def running_stack(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    provider: str,
    auth0_url: str,
    label: str,
    extra_env: dict[str, str] | None = None,
) -> Iterator[object]:
    """Yield a conftest Stack whose server lives as long as the block."""
    e2e = e2e_conftest(request.config)
    with migrated_database(request.config, tmp_path_factory, label) as url:
        auth0 = e2e.Auth0Control(auth0_url)
        auth0.reset()
        clock = tmp_path_factory.mktemp(f"{label}-clock") / "clock-offset"
        clock.write_text("0\n")
        env = e2e.stack_env(url, provider, auth0.base_url, clock) | (extra_env or {})

        server = processes.start_identity(env)
        target = f"{e2e.HOST}:{server.port}"
        env["IDENTITY_TARGET"] = target
        channel = grpc.insecure_channel(target)
        stack = e2e.Stack(
            target=target,
            env=env,
            clock_file=clock,
            provider=provider,
            auth0=auth0,
            server=server,
            channel=channel,
            stub=pb_grpc.IdentityServiceStub(channel),
        )
        try:
            stack.cli("superuser", e2e.ADMIN)
            stack.admin_key = stack.cli("createtoken", e2e.ADMIN).stdout.split()[-1]
            yield stack
        finally:
            channel.close()
            server.stop()
            auth0.http.close()
