"""The request budget, on a virtual clock: the ceiling holds and late callers fail fast.

`VirtualTime` stands in for the monotonic clock and for sleep. Time moves only
when every task is asleep on it, straight to the next sleeper's wake-up, so
these tests take no real time however many seconds they cover.
"""

import asyncio
import heapq
import itertools

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from identity_service import config, errors
from identity_service.auth0 import Auth0Client, Auth0Unavailable, BlockStatus
from identity_service.budget import OverBudget, RequestBudget
from identity_service.clock import Clock
from identity_service.devstack.auth0_standin import StandIn, most_within


class VirtualTime:
    """A monotonic clock and a sleep that move time only when all tasks wait."""

    def __init__(self) -> None:
        self.now = 0.0
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def clock(self) -> float:
        """Return the virtual time."""
        return self.now

    async def sleep(self, seconds: float) -> None:
        """Wait until the virtual time has moved seconds ahead."""
        future = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + seconds, next(self._order), future))
        await future

    async def run(self, *coroutines):
        """Run the coroutines to their end, moving time when they all sleep."""
        tasks = [asyncio.ensure_future(c) for c in coroutines]
        while not all(task.done() for task in tasks):
            await settle()
            if not self._sleepers:
                continue

            wake, _, future = heapq.heappop(self._sleepers)
            self.now = max(self.now, wake)
            if not future.done():
                future.set_result(None)
        return await asyncio.gather(*tasks, return_exceptions=True)

    def budget(self, per_second: float, max_waiting: int = 1000) -> RequestBudget:
        """Return a budget that reads and waits on this virtual time."""
        return RequestBudget(
            per_second, max_waiting=max_waiting, clock=self.clock, sleep=self.sleep
        )


async def settle() -> None:
    """Let every task that can run do so, without letting any time pass."""
    for _ in range(20):
        await asyncio.sleep(0)


async def turn_at(time: VirtualTime, budget: RequestBudget, max_wait: float) -> float:
    """Take a turn; return the virtual time it started."""
    await budget.take_turn(max_wait)
    return time.now


def assert_within_ceiling(starts: list[float], budget: RequestBudget) -> None:
    """Assert no stretch of starts is faster than the budget's rate allows."""
    starts = sorted(starts)
    count = budget.count
    for first, last in zip(starts, starts[count:], strict=False):
        assert last - first >= count / budget.per_second


# The budget alone


async def test_a_window_of_turns_starts_at_once():
    time = VirtualTime()
    budget = time.budget(10)

    starts = await time.run(*(turn_at(time, budget, 0) for _ in range(10)))

    assert starts == [0.0] * 10
    assert budget.next_turn() == pytest.approx(1.1)


async def test_a_burst_never_exceeds_the_ceiling():
    time = VirtualTime()
    budget = time.budget(20)

    starts = await time.run(*(turn_at(time, budget, 100) for _ in range(200)))

    assert_within_ceiling(starts, budget)
    assert max(starts) == pytest.approx(9 * 1.1)
    for second in range(10):
        assert sum(second <= s < second + 1 for s in starts) <= 20


async def test_a_turn_beyond_the_time_left_is_refused_at_once():
    time = VirtualTime()
    budget = time.budget(10)
    await time.run(*(turn_at(time, budget, 0) for _ in range(10)))

    with pytest.raises(OverBudget, match="no turn for 1.10 s"):
        await budget.take_turn(1.0)

    assert time.now == 0.0
    assert budget.waiting == 0


async def test_a_refused_caller_spends_no_turn():
    time = VirtualTime()
    budget = time.budget(10)
    await time.run(*(turn_at(time, budget, 0) for _ in range(10)))
    with pytest.raises(OverBudget):
        await budget.take_turn(0.5)

    [start] = await time.run(turn_at(time, budget, 2))

    assert start == pytest.approx(1.1)


async def test_a_free_turn_is_taken_with_no_time_left():
    time = VirtualTime()
    budget = time.budget(1)

    assert await time.run(turn_at(time, budget, -1)) == [0.0]


async def test_the_number_of_waiting_callers_is_bounded():
    time = VirtualTime()
    budget = time.budget(1, max_waiting=3)
    await budget.take_turn(0)
    waiters = [asyncio.ensure_future(turn_at(time, budget, 100)) for _ in range(3)]
    await settle()

    with pytest.raises(OverBudget, match="3 requests already wait"):
        await budget.take_turn(100)

    assert budget.waiting == 3
    starts = await time.run(*waiters)
    assert starts == pytest.approx([1.1, 2.2, 3.3])
    assert budget.waiting == 0


async def test_a_caller_leaving_while_it_waits_frees_its_place_not_its_turn():
    time = VirtualTime()
    budget = time.budget(1, max_waiting=1)
    await budget.take_turn(0)
    leaving = asyncio.ensure_future(budget.take_turn(100))
    await settle()

    leaving.cancel()
    await settle()

    assert budget.waiting == 0
    [start] = await time.run(turn_at(time, budget, 100))
    assert start == pytest.approx(2.2)


async def test_a_rate_below_one_spaces_single_turns():
    time = VirtualTime()
    budget = time.budget(0.5)

    starts = await time.run(*(turn_at(time, budget, 100) for _ in range(3)))

    assert starts == pytest.approx([0.0, 2.2, 4.4])


def test_a_rate_of_zero_is_refused():
    with pytest.raises(ValueError):
        RequestBudget(0, max_waiting=1)


@settings(max_examples=200, deadline=None)
@given(
    per_second=st.floats(min_value=0.2, max_value=50),
    callers=st.lists(
        st.tuples(
            st.floats(min_value=0, max_value=2), st.floats(min_value=-1, max_value=5)
        ),
        max_size=60,
    ),
    max_waiting=st.integers(min_value=0, max_value=40),
)
def test_callers_arriving_at_any_times_never_exceed_the_ceiling(
    per_second, callers, max_waiting
):
    async def scenario():
        time = VirtualTime()
        budget = time.budget(per_second, max_waiting)
        starts, refusals = [], []

        async def caller(arrives_after: float, max_wait: float) -> None:
            await time.sleep(arrives_after)
            asked = time.now
            try:
                await budget.take_turn(max_wait)
            except OverBudget:
                refusals.append(time.now - asked)
                return
            assert time.now - asked <= max(max_wait, 0) + 1e-9
            starts.append(time.now)

        await time.run(*(caller(*c) for c in callers))
        return budget, starts, refusals

    budget, starts, refusals = asyncio.run(scenario())

    assert_within_ceiling(starts, budget)
    assert refusals == [0.0] * len(refusals)
    assert len(starts) + len(refusals) == len(callers)


# The Auth0 client spends the budget on every request


def mock_auth0(time: VirtualTime, sent: list[tuple[str, float]]):
    """Return a transport answering as Auth0, recording each request's time."""

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append((request.url.path, time.now))
        if request.url.path == "/oauth/token":
            return httpx.Response(200, json={"access_token": "t", "expires_in": 86400})
        return httpx.Response(200, json=[])

    return httpx.MockTransport(answer)


def auth0_client(time, sent, per_second, **settings) -> Auth0Client:
    loaded = config.load({"AUTH0_MANAGEMENT_URL": "http://127.0.0.1:9", **settings})
    return Auth0Client(
        loaded,
        Clock(),
        transport=mock_auth0(time, sent),
        budget=time.budget(per_second),
    )


async def test_token_and_lookups_all_take_turns():
    time = VirtualTime()
    sent: list[tuple[str, float]] = []
    auth0 = auth0_client(time, sent, 2)
    emails = ["ann@example.com", "ben@example.com", "cal@example.com"]

    statuses = await time.run(*(auth0.block_status(e) for e in emails))

    assert statuses == [BlockStatus.NOT_FOUND] * 3
    assert [path for path, _ in sent].count("/oauth/token") == 1
    assert [at for _, at in sent] == pytest.approx([0.0, 0.0, 1.1, 1.1])
    await auth0.aclose()


async def test_a_check_without_a_turn_in_time_fails_at_once_unsent():
    time = VirtualTime()
    sent: list[tuple[str, float]] = []
    auth0 = auth0_client(time, sent, 1)
    await time.run(auth0.block_status("ann@example.com"))
    before = len(sent)

    with pytest.raises(Auth0Unavailable) as caught:
        await auth0.block_status("ben@example.com", timeout=1.0)

    assert caught.value.reason == errors.AUTH0_UNAVAILABLE
    assert "request budget" in caught.value.message
    assert "ben@example.com" not in caught.value.message
    assert len(sent) == before
    assert time.now == pytest.approx(1.1)
    await auth0.aclose()


async def test_without_a_deadline_the_request_timeout_bounds_the_wait():
    time = VirtualTime()
    sent: list[tuple[str, float]] = []
    auth0 = auth0_client(time, sent, 1, AUTH0_TIMEOUT_SECONDS="1")

    [refused] = await time.run(auth0.block_status("ann@example.com"))

    assert isinstance(refused, Auth0Unavailable)
    assert "no turn for 1.10 s" in refused.message
    assert sent == [("/oauth/token", 0.0)]
    assert time.now == 0.0
    await auth0.aclose()


def test_the_default_budget_follows_the_settings():
    loaded = config.load(
        {"AUTH0_MAX_REQUESTS_PER_SECOND": "20", "AUTH0_TIMEOUT_SECONDS": "3"}
    )

    auth0 = Auth0Client(loaded, Clock())

    assert auth0.budget.per_second == 20
    assert auth0.budget.max_waiting == 60
    asyncio.run(auth0.aclose())


def test_the_default_ceiling_leaves_room_below_a_production_tenant():
    assert config.load({}).auth0_max_requests_per_second == 10


@pytest.mark.parametrize("value", ["0", "-1", "many", "inf"])
def test_a_bad_ceiling_names_the_variable(value):
    with pytest.raises(config.ConfigError, match="AUTH0_MAX_REQUESTS_PER_SECOND"):
        config.load({"AUTH0_MAX_REQUESTS_PER_SECOND": value})


# The stand-in's measure of a client's rate, which the end-to-end test trusts


@pytest.mark.parametrize(
    ("times", "expected"),
    [
        ([], 0),
        ([5.0], 1),
        ([0.0, 0.5, 0.99, 1.0, 1.5], 3),
        ([0.0, 0.5, 0.99, 1.0, 1.49], 4),
        ([0.0, 1.0, 2.0, 3.0], 1),
        ([0.0, 0.999, 1.998], 2),
        ([0.0] * 7, 7),
    ],
)
def test_the_busiest_second_is_counted(times, expected):
    assert most_within(times, 1.0) == expected


def test_the_standin_reports_the_busiest_second_until_reset():
    standin = StandIn("id", "secret", None)
    for _ in range(5):
        standin.answer("POST", "/oauth/token", {}, "", b"{}")
    standin.answer("GET", "/api/v2/users-by-email", {}, "", b"")

    rate = standin.answer("GET", "/_standin/rate", {}, "", b"").body
    assert rate == {"requests": 6, "max_requests_in_any_second": 6}

    standin.reset()
    rate = standin.answer("GET", "/_standin/rate", {}, "", b"").body
    assert rate == {"requests": 0, "max_requests_in_any_second": 0}
