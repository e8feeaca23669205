"""An in-process cache of tokens and their owners, for ValidateToken's hot path.

A cache hit costs a dictionary lookup instead of a database query. What makes
it safe is how entries are dropped:

- Every change that can make a cached answer wrong (a revocation, a
  permission change, an activation or deactivation, an extension) adds one to
  a counter in the database, in the same transaction as the change.
- Each server process reads that counter every `refresh_seconds`; when it has
  moved, the process drops its whole cache. A change made by this process
  drops its cache at once, without waiting for the read.
- The cache is only trusted while its last successful read of the counter is
  younger than `max_staleness_seconds`. If the database stops answering, the
  cache stops being used, rather than going on accepting tokens that may have
  been revoked elsewhere.

So a revoked token, a removed permission or a deactivated user is refused by
this process at once and by every other process within
`max_staleness_seconds`. Expiry and the Auth0 interval are still decided at
every call, from the cached times and the service's clock.

Changes are rare next to validations (an administrator's grant, a revocation,
a block), so dropping everything on any change costs little and keeps the rule
simple. The cache holds at most `max_entries` tokens, dropping the oldest
first.
"""

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from .store import TokenRecord, UserRecord

logger = logging.getLogger(__name__)


class TokenCache:
    """Tokens by key hash and users by id, trusted only while fresh."""

    def __init__(
        self,
        *,
        max_entries: int = 100_000,
        refresh_seconds: float = 0.5,
        max_staleness_seconds: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_entries = max_entries
        self.refresh_seconds = refresh_seconds
        self.max_staleness_seconds = max_staleness_seconds
        self._monotonic = monotonic
        self._tokens: collections.OrderedDict[bytes, TokenRecord] = (
            collections.OrderedDict()
        )
        self._users: dict[int, UserRecord] = {}
        self._generation: int | None = None
        self._trusted_until = 0.0
        # Moves at every clear, so that a database read that began before a
        # change cannot put its stale answer back after the clear.
        self.epoch = 0
        self.hits = 0
        self.misses = 0

    def get(self, key_hash: bytes) -> tuple[TokenRecord, UserRecord] | None:
        """Return the cached token and owner, or None to ask the database."""
        if self._monotonic() >= self._trusted_until:
            self.misses += 1
            return None

        token = self._tokens.get(key_hash)
        user = None if token is None else self._users.get(token.user_id)
        if token is None or user is None:
            self.misses += 1
            return None

        self.hits += 1
        return token, user

    def put(
        self, key_hash: bytes, token: TokenRecord, user: UserRecord, epoch: int
    ) -> None:
        """Remember a token and its owner, read from the database during epoch.

        The caller reads `epoch` before its query; if the cache was cleared
        since, the answer may predate a change and is not kept.
        """
        if self._generation is None or epoch != self.epoch:
            return

        self._tokens[key_hash] = token
        self._users[user.id] = user
        while len(self._tokens) > self.max_entries:
            self._tokens.popitem(last=False)

    def update_user(self, user: UserRecord, epoch: int) -> None:
        """Replace a cached user, as after an Auth0 check, unless cleared since."""
        if epoch == self.epoch and user.id in self._users:
            self._users[user.id] = user

    def clear(self) -> None:
        """Drop every entry, after a change this process made or saw."""
        self._tokens.clear()
        self._users.clear()
        self.epoch += 1

    def observe(self, generation: int, read_started: float) -> None:
        """Take a read of the change counter that began at read_started.

        The value reflects every change committed before the read began, so
        the cache is trusted for max_staleness_seconds from then, not from
        when the answer arrived.
        """
        if generation != self._generation:
            self.clear()
            self._generation = generation
        self._trusted_until = read_started + self.max_staleness_seconds

    def distrust(self) -> None:
        """Stop using the cache until the counter can be read again."""
        self._trusted_until = 0.0

    async def keep_fresh(self, read_generation: Callable[[], Awaitable[int]]) -> None:
        """Read the change counter every refresh_seconds, for ever."""
        while True:
            try:
                started = self._monotonic()
                self.observe(await read_generation(), started)
            except asyncio.CancelledError:
                raise
            except Exception:
                # The database is down or slow; every call goes to it (and
                # fails there) until it answers again.
                if self._trusted_until:
                    logger.warning("cannot read the change counter; cache unused")
                self.distrust()
            await asyncio.sleep(self.refresh_seconds)


@contextlib.asynccontextmanager
async def refreshing(
    cache: TokenCache, read_generation: Callable[[], Awaitable[int]]
) -> collections.abc.AsyncIterator[None]:
    """Keep cache fresh in the background while the block runs."""
    task = asyncio.create_task(cache.keep_fresh(read_generation))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
