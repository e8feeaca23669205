"""Durability: a server killed inside a change leaves it whole or absent.

The kills land inside the transactions on purpose, not by luck of timing. The
test holds a PostgreSQL lock of its own so that the server's transactions stop
at a known statement, sees in pg_stat_activity that they wait there, sends
SIGKILL, lets go of its lock, restarts the server on the same database and
reads what was kept:

- "between": the audit table is locked, so each change has written its row
  (the permissions, the token, the deactivation) and waits to add its audit
  record. Nothing of it may remain.
- "before": the rows and table each change writes first are locked, so the
  kill comes before any write.
- "after": no lock; the kill comes once every call has answered, and each
  change must then be whole. This keeps the checks honest: they can tell.

Each run kills three changes at once: SetPermissions, CreateToken, and the
deactivation of a user whom Auth0 reports blocked, found by ValidateToken.
The database is a PostgreSQL of the test's own, which the outage tests at the
end stop, restart and pause while a server keeps running.
"""

import asyncio
import contextlib
import dataclasses
import json
import os
import pathlib
import signal
import subprocess
import sys
import time
import urllib.parse
from collections.abc import AsyncIterator, Iterator

import asyncpg
import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from private_postgres import PrivatePostgres, Unavailable
from tecken_identity._generated import identity_pb2 as pb
from tecken_identity._generated import identity_pb2_grpc as pb_grpc

from identity_service import keys
from identity_service.devstack import processes

pytestmark = pytest.mark.e2e

ADMIN = "admin@example.com"
# The session's Auth0 stand-in (tests/e2e/conftest.py) accepts this client.
CLIENT_ID = "tecken-e2e"
CLIENT_SECRET = "e2e-secret-value"
UPLOAD = "upload.upload_symbols"
TRY = "upload.upload_try_symbols"

KILLS = [
    *(("between", run) for run in range(20)),
    *(("before", run) for run in range(2)),
    *(("after", run) for run in range(2)),
]
# What the server's transactions wait on when the test's lock is in place.
WAITING = {
    "between": ["INSERT INTO audit_events"] * 3,
    "before": ["INSERT INTO tokens", "SELECT users", "UPDATE users"],
}


def server_env(database_url: str, provider: str, auth0_url: str) -> dict[str, str]:
    """Return the settings of a server on the private database."""
    return {
        "IDENTITY_LISTEN": "127.0.0.1:0",
        "DATABASE_URL": database_url,
        "OIDC_OP_ISSUER": provider,
        "OIDC_RP_CLIENT_ID": CLIENT_ID,
        "OIDC_RP_CLIENT_SECRET": CLIENT_SECRET,
        "AUTH0_MANAGEMENT_URL": auth0_url,
        "AUTH0_DOMAIN": urllib.parse.urlsplit(auth0_url).netloc,
        "NOT_BLOCKED_IN_AUTH0_INTERVAL_SECONDS": "3600",
        "AUTH0_TIMEOUT_SECONDS": "2",
        "SHUTDOWN_GRACE_SECONDS": "2",
    }


def cli(env: dict[str, str], *args: str) -> str:
    """Run an identity-service command on the private database; return stdout."""
    result = subprocess.run(
        [sys.executable, "-m", "identity_service.cli", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return result.stdout


def blocked_email(pin: str, run: int) -> str:
    """Name the user whom Auth0 reports blocked in one run."""
    return f"blocked-{pin}-{run}@example.com"


def import_blocked_users(env: dict[str, str], folder: pathlib.Path) -> dict[str, str]:
    """Give every run's blocked user a key, in one command; return keys by email.

    The users are never checked in Auth0, so the first ValidateToken of each
    key runs the check.
    """
    found = {blocked_email(pin, run): keys.new_key() for pin, run in KILLS}
    lines = [
        json.dumps({"email": email, "key": key, "permissions": []})
        for email, key in found.items()
    ]
    path = folder / "blocked-users.jsonl"
    path.write_text("\n".join(lines) + "\n")
    cli(env, "import-tokens", str(path))
    return found


@dataclasses.dataclass
class Chain:
    """A server on the private database, killed and restarted run after run."""

    postgres: PrivatePostgres
    env: dict[str, str]
    admin_key: str
    blocked_keys: dict[str, str]
    server: processes.Child

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.server.port}"

    @property
    def database_url(self) -> str:
        return self.env["DATABASE_URL"]

    def restart(self) -> None:
        """Start a new server on the same database, the old one being gone."""
        self.server.stop(signal.SIGKILL)
        self.server = processes.start_identity(self.env)


@pytest.fixture(scope="module")
def postgres() -> Iterator[PrivatePostgres]:
    """Run a PostgreSQL of this module's own for its tests."""
    try:
        server = PrivatePostgres()
    except Unavailable as error:
        pytest.skip(f"cannot run a private PostgreSQL: {error}")
    try:
        server.create()
    except Unavailable as error:
        server.destroy()
        pytest.skip(f"cannot run a private PostgreSQL: {error}")
    try:
        yield server
    finally:
        server.destroy()


@pytest.fixture(scope="module")
def chain(postgres, provider, auth0_process, tmp_path_factory) -> Iterator[Chain]:
    """Migrate the private database, make the users, and start the first server."""
    env = server_env(postgres.create_database("durability"), provider, auth0_process)
    cli(env, "migrate")
    cli(env, "superuser", ADMIN)
    admin_key = cli(env, "createtoken", ADMIN).split()[-1]
    blocked_keys = import_blocked_users(env, tmp_path_factory.mktemp("durability"))

    result = Chain(
        postgres, env, admin_key, blocked_keys, processes.start_identity(env)
    )
    try:
        yield result
    finally:
        result.server.stop()


def reason_of(error: grpc.aio.AioRpcError) -> str:
    """Return the ErrorInfo reason of a failed call."""
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            for detail in status_pb2.Status.FromString(value).details:
                info = error_details_pb2.ErrorInfo()
                if detail.Unpack(info):
                    return info.reason
    return ""


def credential(key: str) -> tuple[tuple[str, str], ...]:
    """Return the metadata carrying key as the caller's credential."""
    return (("authorization", f"Bearer {key}"),)


@contextlib.asynccontextmanager
async def connect(url: str) -> AsyncIterator[asyncpg.Connection]:
    """Open a connection of the test's own to the private database."""
    connection = await asyncpg.connect(url)
    try:
        yield connection
    finally:
        await connection.close()


@dataclasses.dataclass(frozen=True)
class Run:
    """The names one run works with."""

    pin: str
    run: int

    @property
    def grantee(self) -> str:
        return f"grantee-{self.pin}-{self.run}@example.com"

    @property
    def blocked(self) -> str:
        return blocked_email(self.pin, self.run)

    @property
    def notes(self) -> str:
        return f"made in run {self.pin}-{self.run}"


async def take_lock(holder: asyncpg.Connection, names: Run) -> None:
    """Lock, in holder's open transaction, what the run's pin names."""
    if names.pin == "between":
        # SHARE lets the changes' reads and row writes through but no insert.
        await holder.execute("LOCK TABLE audit_events IN SHARE MODE")
        return

    await holder.execute("LOCK TABLE tokens IN SHARE MODE")
    await holder.execute(
        "SELECT id FROM users WHERE email_key = ANY($1::text[]) FOR UPDATE",
        [names.grantee, names.blocked],
    )


def start_changes(stub: pb_grpc.IdentityServiceStub, chain: Chain, names: Run):
    """Start the three changes at once; return their calls."""
    admin = credential(chain.admin_key)
    grant = stub.SetPermissions(
        pb.SetPermissionsRequest(email=names.grantee, permissions=[UPLOAD, TRY]),
        metadata=admin,
        timeout=30,
    )
    token = stub.CreateToken(
        pb.CreateTokenRequest(permissions=[UPLOAD], notes=names.notes),
        metadata=admin,
        timeout=30,
    )
    check = stub.ValidateToken(
        pb.ValidateTokenRequest(token=chain.blocked_keys[names.blocked]), timeout=30
    )
    return [asyncio.ensure_future(call) for call in (grant, token, check)]


async def wait_until_blocked(watcher: asyncpg.Connection, count: int) -> list[str]:
    """Poll pg_stat_activity until count sessions wait on a lock.

    Returns what each waits in, cut to its verb and table (statement_of).
    """
    deadline = time.monotonic() + 20
    while True:
        rows = await watcher.fetch(
            "SELECT query FROM pg_stat_activity"
            " WHERE wait_event_type = 'Lock' AND datname = current_database()"
        )
        if len(rows) >= count or time.monotonic() > deadline:
            return sorted(statement_of(row["query"]) for row in rows)
        await asyncio.sleep(0.01)


def statement_of(query: str) -> str:
    """Cut an SQL statement to its verb and table: 'INSERT INTO tokens'."""
    words = query.replace('"', "").split()
    verb = words[0].upper()
    if verb == "INSERT":
        return f"INSERT INTO {words[2]}"
    if verb == "UPDATE":
        return f"UPDATE {words[1]}"
    return f"SELECT {words[words.index('FROM') + 1]}"


async def grant_outcome(db: asyncpg.Connection, names: Run) -> str:
    """Read whether the grant is whole or absent; fail on anything partial."""
    user = await db.fetchrow(
        "SELECT id, permissions FROM users WHERE email_key = $1", names.grantee
    )
    records = await db.fetch(
        "SELECT detail FROM audit_events"
        " WHERE user_id = $1 AND action = 'set_permissions' ORDER BY id",
        user["id"],
    )
    granted = sorted(user["permissions"].split())
    assert records, "the grant made before the kill has no audit record"
    assert json.loads(records[-1]["detail"])["permissions"] == granted, (
        "the user's permissions differ from their last audit record"
    )
    assert len(records) in (1, 2)
    return "whole" if len(records) == 2 else "absent"


async def token_outcome(db: asyncpg.Connection, names: Run) -> str:
    """Read whether the token is whole or absent; fail on anything partial."""
    admin_id = await db.fetchval("SELECT id FROM users WHERE email_key = $1", ADMIN)
    stored = {
        row["id"]
        for row in await db.fetch(
            "SELECT id FROM tokens WHERE user_id = $1 AND kind = 'api'", admin_id
        )
    }
    audited = [
        row["token_id"]
        for row in await db.fetch(
            "SELECT token_id FROM audit_events"
            " WHERE user_id = $1 AND action = 'create_token'",
            admin_id,
        )
    ]
    # Over every run so far: each token has one record, each record a token.
    assert sorted(audited) == sorted(stored), "a token and its record came apart"

    made = await db.fetchval(
        "SELECT count(*) FROM tokens WHERE notes = $1", names.notes
    )
    assert made in (0, 1)
    return "whole" if made else "absent"


async def deactivation_outcome(db: asyncpg.Connection, names: Run) -> str:
    """Read whether the deactivation is whole or absent; fail if partial."""
    user = await db.fetchrow(
        "SELECT id, active, inactive_reason, auth0_check_time FROM users"
        " WHERE email_key = $1",
        names.blocked,
    )
    records = await db.fetchval(
        "SELECT count(*) FROM audit_events WHERE user_id = $1"
        " AND action = 'deactivate' AND actor = 'auth0-check'",
        user["id"],
    )
    if user["active"]:
        assert user["inactive_reason"] is None and records == 0, "partial"
        assert user["auth0_check_time"] is None, "a check was half recorded"
        return "absent"

    assert user["inactive_reason"] == "blocked_in_auth0", "partial deactivation"
    assert records == 1, "a deactivation without exactly one audit record"
    return "whole"


async def read_outcomes(url: str, names: Run) -> dict[str, str]:
    """Read the three changes' outcomes from the database."""
    async with connect(url) as db:
        return {
            "grant": await grant_outcome(db, names),
            "token": await token_outcome(db, names),
            "deactivation": await deactivation_outcome(db, names),
        }


async def kill_during_changes(chain: Chain, names: Run) -> None:
    """Start the changes, pin them per the run, and SIGKILL the server."""
    async with (
        connect(chain.database_url) as holder,
        connect(chain.database_url) as watcher,
        grpc.aio.insecure_channel(chain.target) as channel,
    ):
        stub = pb_grpc.IdentityServiceStub(channel)
        await stub.SetPermissions(
            pb.SetPermissionsRequest(email=names.grantee, permissions=[UPLOAD]),
            metadata=credential(chain.admin_key),
            timeout=30,
        )

        transaction = holder.transaction()
        await transaction.start()
        if names.pin != "after":
            await take_lock(holder, names)
        calls = start_changes(stub, chain, names)

        if names.pin == "after":
            answers = await asyncio.gather(*calls, return_exceptions=True)
            assert not isinstance(answers[0], Exception)
            assert not isinstance(answers[1], Exception)
            assert reason_of(answers[2]) == "USER_BLOCKED"
        else:
            waiting = await wait_until_blocked(watcher, 3)
            assert waiting == WAITING[names.pin]

        await asyncio.to_thread(chain.server.stop, signal.SIGKILL)
        await transaction.rollback()

        answers = await asyncio.gather(*calls, return_exceptions=True)
        if names.pin != "after":
            assert all(
                isinstance(answer, grpc.aio.AioRpcError)
                and answer.code() == grpc.StatusCode.UNAVAILABLE
                for answer in answers
            ), answers


@pytest.mark.parametrize(("pin", "run"), KILLS, ids=[f"{p}-{r}" for p, r in KILLS])
async def test_sigkill_leaves_each_change_whole_or_absent(pin, run, chain, auth0):
    names = Run(pin, run)
    await asyncio.to_thread(auth0.create_user, names.blocked, blocked=True)

    await kill_during_changes(chain, names)
    await asyncio.to_thread(chain.restart)

    expected = "whole" if pin == "after" else "absent"
    outcomes = await read_outcomes(chain.database_url, names)
    assert outcomes == dict.fromkeys(outcomes, expected)

    # The restarted server finishes what the killed one could not.
    async with grpc.aio.insecure_channel(chain.target) as channel:
        stub = pb_grpc.IdentityServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.ValidateToken(
                pb.ValidateTokenRequest(token=chain.blocked_keys[names.blocked]),
                timeout=30,
            )
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert reason_of(refused.value) == (
        "USER_INACTIVE" if expected == "whole" else "USER_BLOCKED"
    )
    after = await read_outcomes(chain.database_url, names)
    assert after["deactivation"] == "whole"


@pytest.fixture
def outage_server(chain) -> Iterator[processes.Child]:
    """Start a server that waits at most a second for the database."""
    server = processes.start_identity({**chain.env, "DATABASE_TIMEOUT_SECONDS": "1"})
    try:
        yield server
    finally:
        server.stop()
        if not chain.postgres.running:
            chain.postgres.start()


def outage_calls(stub: pb_grpc.IdentityServiceStub, admin_key: str, timeout):
    """Return one call of each kind that needs the database: reads and changes."""
    admin = credential(admin_key)
    return {
        "ValidateToken": stub.ValidateToken(
            pb.ValidateTokenRequest(token=admin_key), timeout=timeout
        ),
        "GetUser": stub.GetUser(
            pb.GetUserRequest(email=ADMIN), metadata=admin, timeout=timeout
        ),
        "ListUsers": stub.ListUsers(
            pb.ListUsersRequest(page_size=10), metadata=admin, timeout=timeout
        ),
        "SetPermissions": stub.SetPermissions(
            pb.SetPermissionsRequest(email="outage@example.com", permissions=[UPLOAD]),
            metadata=admin,
            timeout=timeout,
        ),
        "CreateToken": stub.CreateToken(
            pb.CreateTokenRequest(permissions=[UPLOAD], notes="outage"),
            metadata=admin,
            timeout=timeout,
        ),
        "ListTokens": stub.ListTokens(
            pb.ListTokensRequest(), metadata=admin, timeout=timeout
        ),
    }


OK = ("OK", "")
DATABASE_DOWN = ("UNAVAILABLE", "DATABASE_UNAVAILABLE")


async def answers_of(calls) -> dict[str, tuple[str, str]]:
    """Await each call; return its code name and reason."""
    answers = {}
    for name, call in calls.items():
        try:
            await call
            answers[name] = ("OK", "")
        except grpc.aio.AioRpcError as error:
            answers[name] = (error.code().name, reason_of(error))
    return answers


def every(answers: dict[str, tuple[str, str]], expected: tuple[str, str]) -> bool:
    """Tell whether every call got the expected answer."""
    return answers == dict.fromkeys(answers, expected)


# TOKEN_CACHE_SECONDS's default, which these servers use: for that long after
# the database goes away, a token validated just before may still be answered
# from the process's cache, never longer. Slack covers a loaded machine.
CACHE_SECONDS = 1.0
CACHE_SLACK = 1.0


def assert_down(answers: dict[str, tuple[str, str]], since: float) -> None:
    """Every call failed with DATABASE_DOWN, or ValidateToken hit the cache in time."""
    validated = answers.pop("ValidateToken")
    assert every(answers, DATABASE_DOWN)
    if validated == OK:
        assert time.monotonic() - since <= CACHE_SECONDS + CACHE_SLACK
    else:
        assert validated == DATABASE_DOWN


async def refused_after(stub: pb_grpc.IdentityServiceStub, key: str) -> float:
    """Poll ValidateToken until the outage reaches it; return how long it took."""
    started = time.monotonic()
    while time.monotonic() - started < CACHE_SECONDS + CACHE_SLACK + 5:
        try:
            await stub.ValidateToken(pb.ValidateTokenRequest(token=key), timeout=5)
        except grpc.aio.AioRpcError as error:
            assert (error.code().name, reason_of(error)) == DATABASE_DOWN
            return time.monotonic() - started
    raise AssertionError("ValidateToken kept answering without its database")


async def test_database_restart_gives_unavailable_then_full_service(
    chain, outage_server
):
    async with (
        grpc.aio.insecure_channel(f"127.0.0.1:{outage_server.port}") as channel,
        connect(chain.database_url) as holder,
        connect(chain.database_url) as watcher,
    ):
        stub = pb_grpc.IdentityServiceStub(channel)
        assert every(await answers_of(outage_calls(stub, chain.admin_key, 10)), OK)

        # A change in flight when the database goes away must fail cleanly too.
        transaction = holder.transaction()
        await transaction.start()
        await holder.execute("LOCK TABLE audit_events IN SHARE MODE")
        in_flight = stub.SetPermissions(
            pb.SetPermissionsRequest(email="in-flight@example.com", permissions=[TRY]),
            metadata=credential(chain.admin_key),
            timeout=10,
        )
        assert await wait_until_blocked(watcher, 1) == ["INSERT INTO audit_events"]
        await asyncio.to_thread(chain.postgres.stop)
        stopped = time.monotonic()
        assert every(await answers_of({"in flight": in_flight}), DATABASE_DOWN)

        started = time.monotonic()
        down = await answers_of(outage_calls(stub, chain.admin_key, 10))
        assert time.monotonic() - started < 10
        assert_down(down, stopped)
        assert await refused_after(stub, chain.admin_key) <= CACHE_SECONDS + CACHE_SLACK
        assert outage_server.process.poll() is None

        await asyncio.to_thread(chain.postgres.start)
        assert every(await answers_of(outage_calls(stub, chain.admin_key, 10)), OK)
        assert outage_server.process.poll() is None

        # The change that was in flight left nothing, not even its new user.
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await stub.GetUser(
                pb.GetUserRequest(email="in-flight@example.com"),
                metadata=credential(chain.admin_key),
                timeout=10,
            )
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND


async def test_database_that_stops_answering_gives_unavailable_in_bounded_time(
    chain, outage_server
):
    async with grpc.aio.insecure_channel(f"127.0.0.1:{outage_server.port}") as channel:
        stub = pb_grpc.IdentityServiceStub(channel)
        assert every(await answers_of(outage_calls(stub, chain.admin_key, 10)), OK)

        chain.postgres.pause()
        try:
            paused = started = time.monotonic()
            # No deadline: without DATABASE_TIMEOUT_SECONDS these would wait
            # for as long as the database stays frozen.
            frozen = await asyncio.wait_for(
                answers_of(outage_calls(stub, chain.admin_key, None)), 60
            )
            took = time.monotonic() - started
        finally:
            chain.postgres.resume()

        assert_down(frozen, paused)
        # Each call waits at most a second for its pooled connection's ping and
        # a second for a new connection; the calls run at the same time.
        assert took < 5
        assert every(await answers_of(outage_calls(stub, chain.admin_key, 10)), OK)
        assert outage_server.process.poll() is None


async def test_database_busy_past_the_deadline_answers_unavailable_in_time(chain):
    names = Run("deadline", 0)
    async with (
        grpc.aio.insecure_channel(chain.target) as channel,
        connect(chain.database_url) as holder,
    ):
        stub = pb_grpc.IdentityServiceStub(channel)
        admin = credential(chain.admin_key)
        await stub.SetPermissions(
            pb.SetPermissionsRequest(email=names.grantee, permissions=[UPLOAD]),
            metadata=admin,
            timeout=10,
        )

        transaction = holder.transaction()
        await transaction.start()
        await holder.execute("LOCK TABLE audit_events IN SHARE MODE")
        started = time.monotonic()
        busy = await answers_of(
            {
                "SetPermissions": stub.SetPermissions(
                    pb.SetPermissionsRequest(
                        email=names.grantee, permissions=[UPLOAD, TRY]
                    ),
                    metadata=admin,
                    timeout=2,
                )
            }
        )
        took = time.monotonic() - started
        await transaction.rollback()

        # UNAVAILABLE rather than DEADLINE_EXCEEDED: the server stops waiting
        # a little before the deadline, so that its answer still arrives.
        assert every(busy, DATABASE_DOWN)
        assert took < 2
        async with connect(chain.database_url) as db:
            assert await grant_outcome(db, names) == "absent"
        assert every(await answers_of(outage_calls(stub, chain.admin_key, 10)), OK)
