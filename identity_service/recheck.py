"""The rule for re-checking in Auth0 that a user who authenticates is not blocked.

A user's check is due when they were never checked, or when their last clear
answer from Auth0 is older than NOT_BLOCKED_IN_AUTH0_INTERVAL_SECONDS. While it
is due, no token of theirs is accepted until Auth0 answers: an unclear answer
raises Unavailable and changes nothing, so nobody is deactivated by mistake and
nobody blocked slips through.

Concurrent checks of one user in this process share one task, so a hundred
calls arriving together make one Auth0 request and one database write. The
task reads the user again from the database first, so a user whom another
replica checked a moment ago is not asked about again.
"""

import asyncio
import datetime
import logging

from . import errors
from .auth0 import Auth0Client, BlockStatus, await_shared, usable_time
from .clock import Clock
from .store import Store, UserRecord

logger = logging.getLogger(__name__)


class BlockedCheck:
    """Applies the interval rule and records Auth0's answers."""

    def __init__(
        self,
        *,
        enabled: bool,
        interval_seconds: int,
        clock: Clock,
        store: Store,
        auth0: Auth0Client,
    ) -> None:
        self.enabled = enabled
        self.interval = datetime.timedelta(seconds=interval_seconds)
        self.clock = clock
        self.store = store
        self.auth0 = auth0
        self._running: dict[int, asyncio.Task[UserRecord]] = {}

    def is_due(self, user: UserRecord, now: datetime.datetime) -> bool:
        """Tell whether the user must be checked before being let in."""
        if not self.enabled:
            return False
        if user.auth0_check_time is None:
            return True
        return now - user.auth0_check_time >= self.interval

    async def ensure_not_blocked(
        self, user: UserRecord, *, timeout: float | None, force: bool = False
    ) -> UserRecord:
        """Return the user once they are known not to be blocked.

        Raises PermissionDenied (USER_BLOCKED) after deactivating a user whom
        Auth0 reports blocked, and Unavailable (AUTH0_UNAVAILABLE) when Auth0
        cannot answer clearly. With force the check runs even when not due.
        """
        if not self.enabled or not (force or self.is_due(user, self.clock.now())):
            return user

        task = self._running.get(user.id)
        if task is not None:
            # The running check keeps the deadline of the caller who started
            # it, which may be later than this caller's own.
            return await await_shared(task, usable_time(timeout))

        task = asyncio.ensure_future(self._check(user, timeout, force))
        self._running[user.id] = task
        task.add_done_callback(self._forget)

        # shield: a caller whose deadline passes must not cancel the check that
        # other callers are waiting on.
        return await asyncio.shield(task)

    def _forget(self, task: asyncio.Task[UserRecord]) -> None:
        for user_id, running in list(self._running.items()):
            if running is task:
                del self._running[user_id]

        # Read the outcome so that a check whose callers all gave up is not
        # reported as an exception nobody retrieved.
        if not task.cancelled():
            task.exception()

    async def _check(
        self, user: UserRecord, timeout: float | None, force: bool
    ) -> UserRecord:
        # The user may come from this process's cache; another process may
        # have checked them since, or an administrator deactivated them.
        fresh = await self.store.get_user_by_id(user.id)
        if fresh is None or not fresh.active and not force:
            return fresh or user
        if not force and not self.is_due(fresh, self.clock.now()):
            return fresh

        user = fresh
        status = await self.auth0.block_status(user.email, timeout=timeout)
        now = self.clock.now()

        if status is BlockStatus.BLOCKED:
            await self.store.record_blocked(user.id, now=now)
            logger.warning("user %s is blocked in Auth0 and was deactivated", user.id)
            raise errors.PermissionDenied(
                errors.USER_BLOCKED, "the user is blocked in Auth0 and now inactive"
            )

        await self.store.record_not_blocked(user.id, now=now)
        return UserRecord(**{**user.__dict__, "auth0_check_time": now})
