"""`make bench`: ValidateToken against the control, side by side, in one run.

Every server runs as its own process on a free loopback port, and one load
generator (async gRPC client processes, benchmarks/loadgen.py) drives each
cell for a fixed time. Cells:

- control: the same server with a ValidateToken that returns a constant;
- ValidateToken with a fresh Auth0 check on SQLite and PostgreSQL, with 1
  thousand, 100 thousand and 1 million tokens stored, at concurrency 1, 16 and
  64 (calls spread over 1,000 tokens of 1,000 users);
- the same PostgreSQL case with IDENTITY_WORKERS=2;
- the first call after the interval, with the Auth0 stand-in answering in
  50 ms, and 1,000 users falling due at once beside 1,000 fresh ones;
- IsBlocked, CreateToken and Login, for the record.

The headline ratio (PostgreSQL, 100 thousand tokens, concurrency 64) is the
median of five alternating rounds of control and ValidateToken. Results go to
benchmarks/latest.json and benchmarks/throughput.png; the table and
`ratio_validate_vs_control=R` go to stdout.

    make bench                     (BENCH_SECONDS=3 per cell by default)
    BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test make bench
"""

import asyncio
import datetime
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid

import httpx
import sqlalchemy
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from benchmarks import populate
from identity_service import database, migrate
from identity_service.devstack import processes

HOST = "127.0.0.1"
HERE = pathlib.Path(__file__).resolve().parent
SECONDS = float(os.environ.get("BENCH_SECONDS", "3"))
PG_URL = os.environ.get(
    "BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
SIZES = tuple(
    int(size)
    for size in os.environ.get("BENCH_SIZES", "1000,100000,1000000").split(",")
)
CONCURRENCY = (1, 16, 64)
WORKING_SET = 1000
CLIENT_ID, CLIENT_SECRET = "bench-client", "bench-secret"
INTERVAL = 3600


class Bench:
    """The run's shared pieces: a scratch folder, the stand-ins, the results."""

    def __init__(self, scratch: pathlib.Path) -> None:
        self.scratch = scratch
        self.rows: list[dict] = []
        self.auth0 = processes.start_auth0(HOST, 0, CLIENT_ID, CLIENT_SECRET)
        self.provider = processes.start_provider(
            HOST, 0, "--token-max-age", str(30 * 86400)
        )
        self.auth0_url = f"http://{HOST}:{self.auth0.port}"
        self.issuer = f"http://{HOST}:{self.provider.port}"
        self.http = httpx.Client(timeout=30)
        self.databases: list[str] = []

    def close(self) -> None:
        self.http.close()
        self.auth0.stop()
        self.provider.stop()
        for name in self.databases:
            asyncio.run(admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    def env(self, database_url: str, **extra: str) -> dict[str, str]:
        """Settings of a benchmark server: production defaults but the ports."""
        return {
            "IDENTITY_LISTEN": f"{HOST}:0",
            "DATABASE_URL": database_url,
            "DATABASE_POOL_SIZE": "10",
            "OIDC_OP_ISSUER": self.issuer,
            "OIDC_RP_CLIENT_ID": CLIENT_ID,
            "OIDC_RP_CLIENT_SECRET": CLIENT_SECRET,
            "AUTH0_MANAGEMENT_URL": self.auth0_url,
            "AUTH0_DOMAIN": urllib.parse.urlsplit(self.auth0_url).netloc,
            "NOT_BLOCKED_IN_AUTH0_INTERVAL_SECONDS": str(INTERVAL),
            # The 1,000-users cell measures the service, not the ceiling that
            # protects a real tenant; the default would spread it over minutes.
            "AUTH0_MAX_REQUESTS_PER_SECOND": "5000",
            "LOG_LEVEL": "INFO",
            **extra,
        }

    def auth0_control(self, path: str, body: dict | None = None) -> dict:
        response = self.http.post(f"{self.auth0_url}/_standin/{path}", json=body or {})
        response.raise_for_status()
        return response.json() if response.content else {}

    def auth0_stats(self) -> dict:
        response = self.http.get(f"{self.auth0_url}/_standin/stats")
        response.raise_for_status()
        return response.json()


async def admin_sql(statement: str) -> None:
    """Run a statement outside a transaction on the benchmark's PostgreSQL."""
    engine = create_async_engine(
        database.async_url(PG_URL), isolation_level="AUTOCOMMIT"
    )
    try:
        async with engine.connect() as connection:
            await connection.execute(sqlalchemy.text(statement))
    finally:
        await engine.dispose()


async def migrated(url: str) -> None:
    engine = database.create_engine(url, pool_size=1)
    try:
        await migrate.upgrade(engine)
    finally:
        await engine.dispose()


def new_database(bench: Bench, backend: str, label: str) -> str:
    """Create and migrate an empty database; return its plain URL."""
    if backend == "sqlite":
        url = f"sqlite:///{bench.scratch / f'{label}.sqlite3'}"
    else:
        name = f"bench_{label}_{uuid.uuid4().hex[:8]}"
        asyncio.run(admin_sql(f'CREATE DATABASE "{name}"'))
        bench.databases.append(name)
        url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    asyncio.run(migrated(url))
    return url


def fill(url: str, users: list, tokens: list) -> None:
    """Insert rows with the backend's bulk path."""
    if url.startswith("sqlite"):
        populate.fill_sqlite(make_url(url).database, users, tokens)
    else:
        asyncio.run(populate.fill_postgresql(url, users, tokens))


def cpu_seconds(pid: int) -> float:
    """Return the CPU time used by a process and its children, in seconds."""
    total = 0.0
    for each in [pid, *child_pids(pid)]:
        fields = (
            pathlib.Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        )
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def child_pids(pid: int) -> list[int]:
    path = pathlib.Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def peak_rss_mb(pid: int) -> float:
    """Return the largest resident size of the process (or its workers), in MB."""
    peaks = []
    for each in [pid, *child_pids(pid)]:
        for line in pathlib.Path(f"/proc/{each}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                peaks.append(int(line.split()[1]) / 1024)
    return max(peaks)


def start_server(env: dict[str, str], log_name: str, control: bool = False):
    """Start a server process with its log in the scratch folder."""
    module = "benchmarks.control" if control else "identity_service.cli"
    command = processes.python("-m", module, *([] if control else ["serve"]))
    child = processes.Child(log_name, command, env=env)
    child.wait_listening()
    return child


def run_loadgen(
    bench: Bench, server, method: str, per_client: int, inputs: list, seconds: float
) -> list[dict]:
    """Run one load-generator process per input list, together; return reports."""
    target = f"{HOST}:{server.port}"
    outputs = []
    running = []
    # Late enough for every process to start and connect first.
    start_at = time.time() + 1.5
    for lines in inputs:
        tag = uuid.uuid4().hex[:8]
        source = bench.scratch / f"input-{tag}.txt"
        source.write_text("\n".join(lines) + "\n")
        outputs.append(bench.scratch / f"output-{tag}.json")
        command = processes.python(
            "-m",
            "benchmarks.loadgen",
            target,
            method,
            str(per_client),
            str(seconds),
            str(source),
            str(outputs[-1]),
            str(start_at),
        )
        running.append(subprocess.Popen(command))  # noqa: S603 - fixed arguments
    for each in running:
        each.wait()
    return [json.loads(out.read_text()) for out in outputs]


def drive(
    bench: Bench,
    server,
    method: str,
    concurrency: int,
    lines: list[str],
    seconds: float = SECONDS,
) -> dict:
    """Run the load generator against server; return the cell's figures.

    Calls that use each input once (logins, the Auth0 cells) have their input
    dealt between the client processes; a `validate` cell is preceded by an
    untimed pass over its keys, so it measures the steady state rather than
    the first read of each token.
    """
    if method == "validate":
        run_loadgen(bench, server, "validate-once", 16, [lines], 600)

    clients = 1 if concurrency == 1 else 2
    once = method in ("login", "validate-once")
    inputs = [lines[i::clients] if once else lines for i in range(clients)]

    cpu_before = cpu_seconds(server.process.pid)
    reports = run_loadgen(
        bench, server, method, concurrency // clients, inputs, seconds
    )
    cpu_after = cpu_seconds(server.process.pid)

    latencies = sorted(x for r in reports for x in r["latencies"])
    calls = len(latencies)
    elapsed = max(r["elapsed"] for r in reports)
    errors: dict[str, int] = {}
    for report in reports:
        for code, count in report["errors"].items():
            errors[code] = errors.get(code, 0) + count
    return {
        "calls": calls,
        "calls_per_second": calls / elapsed if elapsed else 0.0,
        "p50_ms": 1000 * latencies[len(latencies) // 2] if latencies else 0.0,
        "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)] if latencies else 0.0,
        "cpu_us_per_call": 1e6 * (cpu_after - cpu_before) / calls if calls else 0.0,
        "errors": errors,
    }


def record(
    bench: Bench,
    case: str,
    backend: str,
    tokens: int | None,
    concurrency: int,
    figures: dict,
    server=None,
) -> dict:
    row = {
        "case": case,
        "backend": backend,
        "tokens": tokens,
        "concurrency": concurrency,
        **figures,
    }
    if server is not None:
        row["peak_rss_mb"] = peak_rss_mb(server.process.pid)
    bench.rows.append(row)
    print(format_row(row), flush=True)
    return row


def validation_server(bench: Bench, backend: str, size: int):
    """A database with size tokens over 1,000 fresh users, and its server."""
    now = datetime.datetime.now(datetime.UTC)
    url = new_database(bench, backend, f"{backend}{size}")
    users = populate.user_rows(1, 1000, now=now, checked=now)
    tokens, kept = populate.token_rows(
        size, users=range(1, 1001), keep=WORKING_SET, now=now
    )
    started = time.monotonic()
    fill(url, users, tokens)
    took = time.monotonic() - started
    print(f"# filled {backend} with {size:,} tokens in {took:.1f} s", flush=True)
    server = start_server(bench.env(url), f"{backend}-{size}")
    return server, kept, url


def bench_validation(bench: Bench) -> dict[str, float]:
    """The control and ValidateToken cells, and the headline ratio."""
    control_url = new_database(bench, "sqlite", "control")
    control = start_server(bench.env(control_url), "control", control=True)
    control_keys = ["0" * 64]
    for concurrency in CONCURRENCY:
        record(
            bench,
            "control",
            "-",
            None,
            concurrency,
            drive(bench, control, "validate", concurrency, control_keys),
            control,
        )

    ratio = {}
    for backend in ("sqlite", "postgresql"):
        for size in SIZES:
            server, keys, url = validation_server(bench, backend, size)
            try:
                for concurrency in CONCURRENCY:
                    record(
                        bench,
                        "validate",
                        backend,
                        size,
                        concurrency,
                        drive(bench, server, "validate", concurrency, keys),
                        server,
                    )
                if backend == "postgresql" and size == SIZES[len(SIZES) // 2]:
                    ratio = headline_ratio(bench, control, server, keys)
            finally:
                server.stop()
            if backend == "postgresql" and size == SIZES[len(SIZES) // 2]:
                bench_workers(bench, url, keys)
    control.stop()
    return ratio


def headline_ratio(bench: Bench, control, server, keys: list[str]) -> dict[str, float]:
    """Alternate control and ValidateToken five times at concurrency 64."""
    rps, p99 = [], []
    for _ in range(5):
        base = drive(bench, control, "validate", 64, ["0" * 64])
        real = drive(bench, server, "validate", 64, keys)
        rps.append(real["calls_per_second"] / base["calls_per_second"])
        p99.append(real["p99_ms"] / base["p99_ms"])
    print(
        f"# rounds: throughput ratios {[round(r, 3) for r in rps]}, "
        f"p99 ratios {[round(r, 3) for r in p99]}",
        flush=True,
    )
    return {"ratio": statistics.median(rps), "p99_ratio": statistics.median(p99)}


def bench_workers(bench: Bench, url: str, keys: list[str]) -> None:
    """PostgreSQL, 100 thousand tokens, concurrency 64, with two workers."""
    server = start_server(bench.env(url, IDENTITY_WORKERS="2"), "workers")
    try:
        figures = drive(bench, server, "validate", 64, keys)
        record(bench, "validate, 2 workers", "postgresql", 100_000, 64, figures, server)
    finally:
        server.stop()


def bench_others(bench: Bench) -> None:
    """IsBlocked, CreateToken and Login throughput, for the record."""
    now = datetime.datetime.now(datetime.UTC)
    url = new_database(bench, "postgresql", "others")
    users = populate.user_rows(1, 1, now=now, checked=now)
    tokens, keys = populate.token_rows(1, users=range(1, 2), keep=1, now=now)
    fill(url, users, tokens)
    promote = "UPDATE users SET superuser = true WHERE id = 1"
    asyncio.run(run_on(url, promote))

    server = start_server(bench.env(url), "others")
    try:
        for case, method in (
            ("IsBlocked", "isblocked"),
            ("CreateToken", "createtoken"),
        ):
            figures = drive(bench, server, method, 16, keys)
            record(bench, case, "postgresql", None, 16, figures, server)

        logins = [login_code(bench, server) for _ in range(300)]
        figures = drive(bench, server, "login", 16, logins)
        record(bench, "Login", "postgresql", None, 16, figures, server)
    finally:
        server.stop()


async def run_on(url: str, statement: str) -> None:
    engine = database.create_engine(url, pool_size=1)
    try:
        async with engine.begin() as connection:
            await connection.execute(sqlalchemy.text(statement))
    finally:
        await engine.dispose()


def login_code(bench: Bench, server) -> str:
    """Start a sign-in and authorize it at the provider; return Login's input."""
    import grpc
    from tecken_identity._generated import identity_pb2 as pb
    from tecken_identity._generated import identity_pb2_grpc as pb_grpc

    redirect_uri = "http://127.0.0.1:8765/callback"
    with grpc.insecure_channel(f"{HOST}:{server.port}") as channel:
        stub = pb_grpc.IdentityServiceStub(channel)
        started = stub.StartLogin(pb.StartLoginRequest(redirect_uri=redirect_uri))
    query = urllib.parse.urlsplit(started.authorization_url).query
    response = bench.http.post(
        f"{bench.issuer}/oauth2/authorize?{query}",
        data={"sub": f"login-{uuid.uuid4().hex[:8]}@example.com"},
    )
    location = urllib.parse.urlsplit(response.headers["location"])
    code = urllib.parse.parse_qs(location.query)["code"][0]
    return json.dumps(
        {"code": code, "state": started.state, "redirect_uri": redirect_uri}
    )


def draw_chart(rows: list[dict], path: pathlib.Path) -> None:
    """Plot calls per second against concurrency for the control and each case."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(figsize=(7, 4.2), dpi=100)
    series: dict[str, list[tuple[int, float]]] = {}
    for row in rows:
        if row["case"] == "control":
            label = "control (no validation)"
        elif row["case"] == "validate":
            label = f"ValidateToken, {row['backend']}, {row['tokens']:,} tokens"
        else:
            continue
        series.setdefault(label, []).append(
            (row["concurrency"], row["calls_per_second"])
        )

    for label, points in series.items():
        points.sort()
        style = "k--" if label.startswith("control") else "-"
        axes.plot(
            [c for c, _ in points],
            [r for _, r in points],
            style,
            marker="o",
            label=label,
        )
    axes.set_xscale("log", base=2)
    axes.set_xticks(list(CONCURRENCY), [str(c) for c in CONCURRENCY])
    axes.set_xlabel("concurrent calls")
    axes.set_ylabel("calls per second")
    axes.set_title("ValidateToken throughput, one server process, 2 cores")
    axes.legend(fontsize=7)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path)


def bench_auth0(bench: Bench) -> dict[str, int]:
    """The first call after the interval, and 1,000 users due at once."""
    now = datetime.datetime.now(datetime.UTC)
    stale = now - datetime.timedelta(seconds=INTERVAL + 600)
    url = new_database(bench, "postgresql", "due")
    users = (
        populate.user_rows(1, 1000, now=now, checked=stale)
        + populate.user_rows(1001, 1000, now=now, checked=now)
        + populate.user_rows(2001, 50, now=now, checked=stale)
    )
    due, due_keys = populate.token_rows(1000, users=range(1, 1001), keep=1000, now=now)
    fresh, fresh_keys = populate.token_rows(
        1000, users=range(1001, 2001), keep=1000, now=now
    )
    first, first_keys = populate.token_rows(
        50, users=range(2001, 2051), keep=50, now=now
    )
    fill(url, users, due + fresh + first)

    bench.auth0_control("reset")
    bench.auth0_control("faults", {"delay_seconds": 0.05})
    server = start_server(bench.env(url), "auth0-cells")
    try:
        before = bench.auth0_stats()["users_by_email_requests"]
        figures = drive(bench, server, "validate-once", 1, first_keys, seconds=60)
        record(bench, "first call after interval", "postgresql", 50, 1, figures, server)

        middle = bench.auth0_stats()["users_by_email_requests"]
        # Every due and every fresh user three times over, all at once.
        lines = (due_keys + fresh_keys) * 3
        figures = drive(bench, server, "validate-once", 64, lines, seconds=60)
        record(
            bench,
            "1,000 due beside 1,000 fresh",
            "postgresql",
            2050,
            64,
            figures,
            server,
        )
        after = bench.auth0_stats()["users_by_email_requests"]
    finally:
        server.stop()
        bench.auth0_control("faults", {})
    return {
        "first_call_lookups": middle - before,
        "due_at_once_lookups": after - middle,
    }


def format_row(row: dict) -> str:
    tokens = f"{row['tokens']:,}" if row["tokens"] else "-"
    errors = ",".join(f"{k}:{v}" for k, v in row["errors"].items()) or "-"
    return (
        f"| {row['case']} | {row['backend']} | {tokens} | {row['concurrency']} "
        f"| {row['calls_per_second']:,.0f} | {row['p50_ms']:.2f} | {row['p99_ms']:.2f} "
        f"| {row['cpu_us_per_call']:.0f} | {row.get('peak_rss_mb', 0):.0f} | {errors} |"
    )


def main() -> int:
    print(
        "| case | database | tokens | concurrency | calls/s | p50 ms | p99 ms "
        "| server CPU µs/call | peak RSS MB | errors |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |", flush=True)
    with tempfile.TemporaryDirectory(prefix="identity-bench-") as scratch:
        bench = Bench(pathlib.Path(scratch))
        try:
            ratio = bench_validation(bench)
            lookups = bench_auth0(bench)
            bench_others(bench)
        finally:
            bench.close()

    results = {"rows": bench.rows, "lookups": lookups, **ratio}
    (HERE / "latest.json").write_text(json.dumps(results, indent=2) + "\n")
    draw_chart(bench.rows, HERE / "throughput.png")
    print(f"# Auth0 lookups: {lookups}")
    print(f"p99_ratio_validate_vs_control={ratio['p99_ratio']:.3f}")
    print(f"ratio_validate_vs_control={ratio['ratio']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
