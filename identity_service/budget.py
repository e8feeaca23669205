"""The request budget: a ceiling on how many requests go to Auth0 each second.

Auth0 limits a tenant's Management API requests, and every client of the tenant
shares that limit, so one service whose users all fall due at once must not use
it up. `RequestBudget` hands out turns: no more than `count` requests start in
any stretch of `window` seconds, whoever asks. A turn is reserved at the moment
it is asked for, so the waiting time is known at once; a caller who cannot have
a turn within the time it has left is refused then and there, instead of joining
a queue it would leave with nothing. The number of callers waiting is bounded
too, so a flood of callers cannot build up a queue.

Time comes from an injected monotonic clock and sleep (the event loop's by
default), so tests drive the budget without waiting.
"""

import asyncio
import collections
import math
from collections.abc import Awaitable, Callable

# Auth0 counts requests as they arrive, and the network can bring two requests
# closer together than they left. Spreading each second's requests over a
# slightly longer window keeps the rate under the ceiling as Auth0 measures it.
WINDOW_MARGIN = 0.1


class OverBudget(Exception):
    """No turn can be had in time, or too many callers wait already."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def loop_time() -> float:
    """Return the running event loop's monotonic time."""
    return asyncio.get_running_loop().time()


class RequestBudget:
    """Turns for requests, at most `per_second` of them in any second.

    Args:
        per_second: the ceiling; fractions below one are allowed (one request
            every so many seconds).
        max_waiting: how many callers may wait for a turn at once.
        clock: monotonic seconds; the running event loop's time by default.
        sleep: waits a number of seconds; asyncio.sleep by default.
    """

    def __init__(
        self,
        per_second: float,
        *,
        max_waiting: int,
        clock: Callable[[], float] = loop_time,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        if not per_second > 0 or max_waiting < 0:
            raise ValueError("per_second must be above 0 and max_waiting not below 0")
        self.per_second = per_second
        self.count = max(1, math.floor(per_second))
        self.window = self.count / per_second * (1 + WINDOW_MARGIN)
        self.max_waiting = max_waiting
        self._clock = clock
        self._sleep = sleep

        # The start times of the last `count` turns handed out, oldest first.
        self._turns: collections.deque[float] = collections.deque(maxlen=self.count)
        self.waiting = 0

    def next_turn(self) -> float:
        """Return the soonest time a turn asked for now would start."""
        now = self._clock()
        if len(self._turns) < self.count:
            return now
        return max(now, self._turns[0] + self.window)

    async def take_turn(self, max_wait: float) -> None:
        """Wait for this caller's turn to send one request.

        Args:
            max_wait: the longest this caller can wait; a free turn is taken
                even when this is zero or less.

        Raises:
            OverBudget: at once, without waiting, when the turn would come
                later than max_wait or when max_waiting callers wait already.
        """
        now = self._clock()
        start = self.next_turn()
        wait = start - now
        if wait > 0 and self.waiting >= self.max_waiting:
            raise OverBudget(
                f"{self.waiting} requests already wait for the Auth0 request budget"
            )
        if wait > max(max_wait, 0.0):
            raise OverBudget(
                f"the Auth0 request budget ({self.per_second:g}/s) has no turn "
                f"for {wait:.2f} s, beyond the {max(max_wait, 0.0):.2f} s left"
            )

        # The turn is spent even if this caller goes away while waiting: the
        # budget then stays below the ceiling, never above it.
        self._turns.append(start)
        if wait <= 0:
            return

        self.waiting += 1
        try:
            await self._sleep(wait)
        finally:
            self.waiting -= 1
