"""The `identity-service` command: serve, migrate and Tecken's bootstrap commands.

Every command reads the same settings as the server. Each prints a one-line
message and exits non-zero on bad input: 2 for a usage or settings error, 1 when
a dependency (the database, Auth0) cannot answer.
"""

import argparse
import asyncio
import datetime
import json
import logging
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from . import config as settings
from . import database, errors, keys, migrate, server, validation
from .auth0 import Auth0Client, BlockStatus
from .clock import clock_for
from .config import Config, ConfigError
from .store import API, Store

USAGE_ERROR = 2
UNAVAILABLE = 1

BLOCK_WORDS = {
    BlockStatus.NOT_BLOCKED: "not blocked",
    BlockStatus.BLOCKED: "blocked",
    BlockStatus.NOT_FOUND: "not found",
}


class CommandError(Exception):
    """A failure to report in one line, with the exit code to use."""

    def __init__(self, message: str, exit_code: int = USAGE_ERROR) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def build_parser() -> argparse.ArgumentParser:
    """Describe the commands and their arguments."""
    parser = argparse.ArgumentParser(
        prog="identity-service",
        description="The Tecken identity service. Settings come from the "
        "environment; see `identity-service settings`.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    commands.add_parser("serve", help="run the gRPC server")
    commands.add_parser("migrate", help="bring the database schema up to date")

    superuser = commands.add_parser(
        "superuser", help="create a user or make an existing one a superuser"
    )
    superuser.add_argument("email")

    createtoken = commands.add_parser(
        "createtoken", help="create an API token for a user; prints the key last"
    )
    createtoken.add_argument("email")
    createtoken.add_argument(
        "--permission",
        action="append",
        default=None,
        metavar="P",
        help="a permission of the token (repeatable; default: all the user's)",
    )
    createtoken.add_argument("--days", type=int, default=0, help="days until expiry")
    createtoken.add_argument("--notes", default="", help="what the token is for")

    is_blocked = commands.add_parser("is-blocked", help="ask Auth0 about an email")
    is_blocked.add_argument("email")

    import_tokens = commands.add_parser(
        "import-tokens",
        help="import Tecken's API tokens from a JSON-lines file "
        '({"email", "key", "permissions", "expires_at", "notes"} per line)',
    )
    import_tokens.add_argument("file", type=argparse.FileType("r", encoding="utf-8"))

    show = commands.add_parser("settings", help="list the settings and their values")
    show.add_argument(
        "--markdown", action="store_true", help="print the README's settings table"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command and return its exit code."""
    args = build_parser().parse_args(argv)

    if args.command == "settings" and args.markdown:
        print(settings.settings_markdown(), end="")
        return 0

    try:
        config = settings.load()
        configure_logging(config.log_level)
        if args.command == "serve":
            return server.run(config)
        if args.command == "settings":
            return show_settings(config)
        return asyncio.run(run_command(config, args))
    except ConfigError as error:
        print(f"identity-service: {error}", file=sys.stderr)
        return USAGE_ERROR
    except CommandError as error:
        print(f"identity-service: {error}", file=sys.stderr)
        return error.exit_code


def configure_logging(level: str) -> None:
    """Log to stderr at level, keeping libraries that log URLs quiet."""
    # The server logs a line per call; skipping the caller, thread and process
    # lookups that no line here prints makes each record cheaper to build.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    # httpx logs every request's URL at INFO, and a users-by-email URL holds an
    # email; alembic narrates each connection.
    for name in ("httpx", "httpcore", "alembic"):
        logging.getLogger(name).setLevel(
            max(logging.WARNING, logging.getLevelName(level))
        )


def show_settings(config: Config) -> int:
    """Print each setting's effective value, hiding secrets."""
    hidden = {"oidc_client_secret", "auth0_client_secret"}
    for name, value in vars(config).items():
        print(f"{name} = {'(hidden)' if name in hidden else value}")
    return 0


async def run_command(config: Config, args: argparse.Namespace) -> int:
    """Run a command that needs the database, with its errors made one line."""
    commands: dict[str, Callable[[Store, Config, argparse.Namespace], Awaitable[int]]]
    commands = {
        "migrate": migrate_command,
        "superuser": superuser_command,
        "createtoken": createtoken_command,
        "is-blocked": is_blocked_command,
        "import-tokens": import_tokens_command,
    }
    engine = database.create_engine(config.database_url, pool_size=2)
    try:
        if args.command != "migrate":
            await require_schema(engine)
        return await commands[args.command](Store(engine), config, args)
    except errors.InvalidArgument as error:
        raise CommandError(error.message) from None
    except errors.IdentityError as error:
        raise CommandError(error.message, UNAVAILABLE) from None
    except Exception as error:
        if database.is_unavailable(error):
            raise CommandError(
                f"cannot reach the database: {type(error).__name__}", UNAVAILABLE
            ) from None
        raise
    finally:
        await engine.dispose()


async def require_schema(engine: Any) -> None:
    """Stop with a clear message when the database was never migrated."""
    if await migrate.current_revision(engine) != migrate.head_revision():
        raise CommandError("the database schema is not current: run migrate first")


async def migrate_command(store: Store, config: Config, args: Any) -> int:
    """Bring the schema to the newest revision."""
    revision = await migrate.upgrade(store.engine)
    print(f"database schema is at revision {revision}")
    return 0


async def superuser_command(store: Store, config: Config, args: Any) -> int:
    """Create the user, or promote an existing one, keeping their permissions."""
    email = validation.email(args.email)
    clock = clock_for(config.clock_offset_file)

    existing = await store.get_user(email)
    granted = existing.permissions if existing else frozenset()
    user, created = await store.set_permissions(
        email, granted, True, actor="cli", now=clock.now()
    )
    # The operator typed the email; repeating it would put it in job logs.
    print(f"{'created' if created else 'promoted'} superuser, user id {user.id}")
    return 0


async def createtoken_command(store: Store, config: Config, args: Any) -> int:
    """Create an API token and print its key alone on the last line."""
    email = validation.email(args.email)
    user = await store.get_user(email)
    if user is None:
        raise CommandError("no such user; create one with `superuser` first")

    wanted = (
        validation.permission_set(args.permission, "--permission")
        if args.permission
        else user.effective_permissions
    )
    beyond = wanted - user.effective_permissions
    if beyond:
        raise CommandError("the user lacks " + ", ".join(sorted(beyond)))
    days = validation.days(
        args.days, "--days", default=config.tokens_default_expiration_days
    )
    notes = validation.notes(args.notes)

    key = keys.new_key()
    now = clock_for(config.clock_offset_file).now()
    token = await store.create_token(
        user.id,
        kind=API,
        key_hash=keys.digest(key),
        key_prefix=keys.prefix(key),
        granted=wanted,
        notes=notes,
        now=now,
        expire_time=now + datetime.timedelta(days=days),
        actor="cli",
    )
    print(f"token {token.id} expires {token.expire_time.isoformat()}")
    print(f"permissions: {' '.join(sorted(wanted)) or '(none)'}")
    print(key)
    return 0


async def is_blocked_command(store: Store, config: Config, args: Any) -> int:
    """Print what Auth0 says of an email, live."""
    email = validation.email(args.email)
    client = Auth0Client(config, clock_for(config.clock_offset_file))
    try:
        status = await client.block_status(email, timeout=config.auth0_timeout_seconds)
    finally:
        await client.aclose()
    print(BLOCK_WORDS[status])
    return 0


async def import_tokens_command(store: Store, config: Config, args: Any) -> int:
    """Import Tecken's tokens, one JSON object a line, keeping their keys."""
    now = clock_for(config.clock_offset_file).now()
    imported = 0
    for number, line in enumerate(args.file, start=1):
        if not line.strip():
            continue
        try:
            entry = parse_import_line(line, config, now)
        except (ValueError, KeyError, TypeError, errors.InvalidArgument) as error:
            raise CommandError(f"line {number}: {error}") from None

        user, _ = await store.get_or_create_user(entry["email"], now=now)
        await store.create_token(
            user.id,
            kind=API,
            key_hash=keys.digest(entry["key"]),
            key_prefix=keys.prefix(entry["key"]),
            granted=entry["permissions"],
            notes=entry["notes"],
            now=now,
            expire_time=entry["expires_at"],
            actor="cli",
        )
        imported += 1
    print(f"imported {imported} tokens")
    return 0


def parse_import_line(line: str, config: Config, now: datetime.datetime) -> dict:
    """Read one exported Tecken token, checking every field."""
    raw = json.loads(line)
    if not isinstance(raw, dict):
        raise ValueError("expected a JSON object")

    expires = raw.get("expires_at")
    if expires is None:
        expire_time = now + datetime.timedelta(
            days=config.tokens_default_expiration_days
        )
    else:
        expire_time = datetime.datetime.fromisoformat(str(expires))
        if expire_time.tzinfo is None:
            expire_time = expire_time.replace(tzinfo=datetime.UTC)
    return {
        "email": validation.email(str(raw["email"])),
        "key": keys.parse(str(raw["key"]), field="key"),
        "permissions": validation.permission_set(raw.get("permissions", [])),
        "notes": validation.notes(str(raw.get("notes", ""))),
        "expires_at": expire_time,
    }


if __name__ == "__main__":
    sys.exit(main())
