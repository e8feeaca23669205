"""Load and soak: many callers mixing every RPC while Auth0 faults come and go.

CALLERS concurrent callers (grpc.aio tasks) each own one user and drive every
RPC about it (load_actions.py); every answer is checked against a model of the
expected state (load_model.py). Meanwhile a controller switches Auth0 faults on
and off and moves the server's clock a whole check interval ahead now and then,
so that every user's check falls due, some during a fault. The run passes with
no UNKNOWN or INTERNAL answer, no answer the model calls wrong (AUTH0_UNAVAILABLE
during a fault is right; accepting a token that should be refused never is),
and a server whose memory does not grow after warm-up.

The short form runs in `make test` for 20 seconds of load. `SOAK_SECONDS=300`
runs the long form; either way the run stops by itself after that long, or
after MAX_CALLS calls. Add `-s` to see its figures.
"""

import asyncio
import collections
import dataclasses
import datetime
import json
import os
import pathlib
import time
from typing import Any

import grpc
import httpx
import pytest
from google.rpc import error_details_pb2, status_pb2
from load_actions import Caller
from load_model import MANAGE, UPLOAD, Person, Window
from tecken_identity._generated import identity_pb2 as pb
from tecken_identity._generated import identity_pb2_grpc as pb_grpc

pytestmark = pytest.mark.e2e

CALLERS = 32
SHORT_SECONDS = 20.0
# The model takes a check refreshed before the clock last moved for due, and
# one refreshed since for not due; beyond an hour of real time that would be
# wrong, so longer soaks are refused.
LONGEST_SECONDS = 3000.0
MAX_CALLS = 1_000_000
CALL_TIMEOUT = 15.0
# The controller changes phase every PHASE_CALLS answers rather than by time.
PHASE_CALLS = 200
# Auth0 stays troubled this long after a fault is cleared or the clock moves.
# A request sent during a fault can fail up to AUTH0_TIMEOUT_SECONDS (2 in the
# e2e settings) later. And after the clock moves every user's check is due at
# once, as after a fault is every check it refused: more than the request
# budget (10 a second) and its queue take, so some are refused until it drains.
STRAIN_SECONDS = 8.0
INTERVAL = 3600.0
FAULTS = [
    {"status": 503},
    {"delay_seconds": 3},
    {"body": "not-json"},
    {"status": 500},
    {"body": "blocked-string"},
    {"body": "wrong-shape"},
    {"rate_limit_reset_in": 1},
]
# RSS may rise this much from the end of warm-up to the end of the run.
RSS_GROWTH_LIMIT_KIB = 24 * 1024
SERVICE = pb.DESCRIPTOR.services_by_name["IdentityService"]


def run_seconds() -> float:
    """Return how long to run: SOAK_SECONDS if set, else the short form."""
    seconds = float(os.environ.get("SOAK_SECONDS") or SHORT_SECONDS)
    if not 0 < seconds <= LONGEST_SECONDS:
        pytest.fail(f"SOAK_SECONDS must be above 0 and at most {LONGEST_SECONDS:.0f}")
    return seconds


def reason_of(error: grpc.aio.AioRpcError) -> str:
    """Return the ErrorInfo reason of a failed call."""
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            for detail in status_pb2.Status.FromString(value).details:
                info = error_details_pb2.ErrorInfo()
                if detail.Unpack(info):
                    return info.reason
    return ""


def rss_kib(pid: int) -> int:
    """Return a process's resident set size in KiB, from /proc."""
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"process {pid} reports no VmRSS")


def cpu_seconds(pid: int) -> float:
    """Return the CPU time a process has used, user and system, from /proc."""
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclasses.dataclass(frozen=True)
class Moment:
    """What the test knows at one instant: the time, the clock and the faults."""

    wall: float
    monotonic: float
    offset: float
    generation: int
    fault_on: bool
    fault_epoch: int


@dataclasses.dataclass(frozen=True)
class Answer:
    """One call's answer and what the test knew around it."""

    pair: tuple[str, str]
    response: Any
    window: Window


class LoadRun:
    """The shared state of one run: the stub, time, faults and the tallies."""

    def __init__(self, stack: Any, channel: grpc.aio.Channel, seconds: float):
        self.stack = stack
        self.auth0 = stack.auth0
        self.admin_key = stack.admin_key
        self.provider = stack.provider
        self.stub = pb_grpc.IdentityServiceStub(channel)
        # The OIDC provider mock is a development server: it gets a few
        # sign-ins at a time on fresh connections, which it handles well.
        self.http = httpx.AsyncClient(
            timeout=CALL_TIMEOUT, limits=httpx.Limits(max_keepalive_connections=0)
        )
        self.provider_turns = asyncio.Semaphore(4)
        self.provider_failures = 0
        self.seconds = seconds
        self.ends_at = time.monotonic() + seconds
        self.generation = 0
        self.fault_on = False
        self.fault_epoch = 0
        self.strained_until = float("inf")
        self.calls = 0
        self.codes: collections.Counter[str] = collections.Counter()
        self.methods: collections.Counter[str] = collections.Counter()
        self.seconds_in: collections.Counter[str] = collections.Counter()
        self.wrong: list[str] = []
        self.token_owners: dict[str, int] = {}
        self.phase_due = asyncio.Event()

    def finished(self) -> bool:
        """Tell whether the run has lasted long enough, or made enough calls."""
        return time.monotonic() >= self.ends_at or self.calls >= MAX_CALLS

    def server_now(self) -> datetime.datetime:
        """Return the server's time as the model reckons it now."""
        stamp = time.time() + self.stack.offset
        return datetime.datetime.fromtimestamp(stamp, datetime.UTC)

    def moment(self) -> Moment:
        """Note the time, the clock and the faults now."""
        return Moment(
            wall=time.time(),
            monotonic=time.monotonic(),
            offset=self.stack.offset,
            generation=self.generation,
            fault_on=self.fault_on,
            fault_epoch=self.fault_epoch,
        )

    def window(self, start: Moment, end: Moment) -> Window:
        """Build a call's Window: troubled if a fault or a strain touched it."""
        troubled = (
            start.fault_on
            or end.fault_on
            or start.fault_epoch != end.fault_epoch
            or self.strained_until >= start.monotonic
        )
        return Window(
            wall_start=start.wall,
            wall_end=end.wall,
            offset_start=start.offset,
            offset_end=end.offset,
            generation_start=start.generation,
            generation_end=end.generation,
            auth0_troubled=troubled,
        )

    async def call(self, method: str, request: Any, key: str | None = None) -> Answer:
        """Make one call and return its answer, counting it."""
        metadata = (("authorization", f"Bearer {key}"),) if key else ()
        start = self.moment()
        try:
            response = await getattr(self.stub, method)(
                request, metadata=metadata, timeout=CALL_TIMEOUT
            )
            pair = ("OK", "")
        except grpc.aio.AioRpcError as error:
            response, pair = None, (error.code().name, reason_of(error))
        end = self.moment()

        self.calls += 1
        self.codes[" ".join(filter(None, pair))] += 1
        self.methods[method] += 1
        self.seconds_in[method] += end.monotonic - start.monotonic
        if self.calls % PHASE_CALLS == 0:
            self.phase_due.set()
        return Answer(pair, response, self.window(start, end))

    def strain(self) -> None:
        """Note that Auth0 may refuse checks for the next STRAIN_SECONDS."""
        self.strained_until = time.monotonic() + STRAIN_SECONDS

    async def set_fault(self, fault: dict[str, Any] | None) -> None:
        """Switch an Auth0 fault on, or every fault off."""
        if fault:
            self.fault_on = True
            self.fault_epoch += 1
            await asyncio.to_thread(self.auth0.faults, **fault)
        else:
            await asyncio.to_thread(self.auth0.faults)
            self.fault_on = False
            self.strain()


async def control(run: LoadRun, rss: list[tuple[float, int]]) -> dict[str, int]:
    """Change phase every PHASE_CALLS answers: faults, the clock, RSS samples."""
    pid = run.stack.server.process.pid
    started = time.monotonic()
    phases = collections.Counter()
    while not run.finished():
        await run.phase_due.wait()
        run.phase_due.clear()
        phases["phases"] += 1

        if phases["phases"] % 4 == 0:
            # Written and counted with no await between, so no call sees one
            # without the other.
            run.stack.advance(INTERVAL)
            run.generation += 1
            run.strain()
            phases["clock moves"] += 1
        if phases["phases"] % 2:
            await run.set_fault(FAULTS[phases["faults"] % len(FAULTS)])
            phases["faults"] += 1
        else:
            await run.set_fault(None)
        rss.append((time.monotonic() - started, rss_kib(pid)))

    await run.set_fault(None)
    return dict(phases)


async def prepare(run: LoadRun, number: int) -> Caller:
    """Make a caller's user: in Auth0, granted, and signed in."""
    email = f"load-{number}@example.com"
    auth0_id = await asyncio.to_thread(run.auth0.create_user, email)
    person = Person(email=email, auth0_id=auth0_id)
    caller = Caller(run, number, person, seed=number)

    granted = frozenset({UPLOAD, MANAGE})
    await run.stub.SetPermissions(
        pb.SetPermissionsRequest(email=email, permissions=sorted(granted)),
        metadata=(("authorization", f"Bearer {run.admin_key}"),),
        timeout=CALL_TIMEOUT,
    )
    person.granted = granted
    await caller.login()
    return caller


async def keep_calling(run: LoadRun, caller: Caller) -> None:
    """Make calls until the run ends."""
    while not run.finished():
        await caller.step()
    run.phase_due.set()


async def run_load(stack: Any, seconds: float) -> dict[str, Any]:
    """Run the load and return its figures."""
    async with grpc.aio.insecure_channel(stack.target) as channel:
        run = LoadRun(stack, channel, seconds)
        try:
            callers = await asyncio.gather(*(prepare(run, n) for n in range(CALLERS)))
            pid = stack.server.process.pid
            rss: list[tuple[float, int]] = [(0.0, rss_kib(pid))]
            cpu_before = cpu_seconds(pid)
            # The first checks of every user came all at once, too.
            run.strain()
            run.ends_at = time.monotonic() + seconds
            began = time.monotonic()

            controller = asyncio.ensure_future(control(run, rss))
            await asyncio.gather(*(keep_calling(run, c) for c in callers))
            phases = await controller
            took = time.monotonic() - began
        finally:
            await run.http.aclose()

    rss.append((took, rss_kib(pid)))
    cpu = cpu_seconds(pid) - cpu_before
    warm = next(kib for at, kib in rss if at >= seconds / 3)
    return {
        "callers": CALLERS,
        "seconds": round(took, 1),
        "calls": run.calls,
        "calls_per_second": round(run.calls / took),
        "server_cpu_share": round(cpu / took, 2),
        "codes": dict(sorted(run.codes.items())),
        "methods": {
            method: {
                "calls": count,
                "mean_ms": round(run.seconds_in[method] / count * 1000),
            }
            for method, count in sorted(run.methods.items())
        },
        "phases": phases,
        "provider_sign_in_failures": run.provider_failures,
        "rss_kib": {"start": rss[0][1], "warm": warm, "end": rss[-1][1]},
        "wrong": run.wrong,
    }


def unexpected_warnings(log: str) -> list[str]:
    """Return the server's last log lines above INFO, bar the Auth0 check's.

    The server logs no keys and no emails, so its lines can be shown; those
    of the Auth0 check are expected while faults are on.
    """
    expected = (" INFO ", "identity_service.auth0 ", "identity_service.recheck ")
    lines = [line for line in log.splitlines() if not any(e in line for e in expected)]
    return lines[-40:]


def test_many_callers_get_only_right_answers_while_auth0_comes_and_goes(stack):
    figures = asyncio.run(run_load(stack, run_seconds()))
    print("load figures:", json.dumps(figures, indent=1))
    if figures["wrong"]:
        print("server warnings:", *unexpected_warnings(stack.server.text()), sep="\n")

    assert figures["wrong"] == [], "\n".join(figures["wrong"][:20])
    codes = figures["codes"]
    assert not {c for c in codes if c.split()[0] in ("UNKNOWN", "INTERNAL")}
    assert set(figures["methods"]) == {m.name for m in SERVICE.methods}
    assert figures["phases"].get("clock moves", 0) >= 1
    assert codes.get("UNAVAILABLE AUTH0_UNAVAILABLE", 0) > 0, "no fault ever bit"
    assert stack.server.process.poll() is None

    rss = figures["rss_kib"]
    assert rss["end"] - rss["warm"] < RSS_GROWTH_LIMIT_KIB, rss
