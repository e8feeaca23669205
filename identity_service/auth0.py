"""The Auth0 Management API client, which answers one question: is this user blocked?

Users are found with `users-by-email`, an exact and immediately consistent lookup.
The Lucene search (`/api/v2/users?q=`) is never used: Auth0 documents no escaping
for it, so an email pasted into a query could change what the query matches.

The management token comes from the client-credentials grant and is reused until
shortly before it expires. Concurrent checks of one email share one request, and
every wait, including the wait for a rate limit to reset, fits within the caller's
deadline. Every request, token and lookups alike, first takes a turn from the
request budget (AUTH0_MAX_REQUESTS_PER_SECOND); a check that cannot have one in
time fails at once. Whatever Auth0 says that cannot be trusted raises
`Auth0Unavailable`; an unclear answer is never read as blocked or as not blocked.
"""

import asyncio
import datetime
import enum
import functools
import logging
import math
import re
import time
import urllib.parse
from collections.abc import Callable
from typing import Any, TypeGuard, TypeVar

import httpx

from identity_service import errors
from identity_service.budget import OverBudget, RequestBudget
from identity_service.clock import Clock
from identity_service.config import Config, is_loopback_host

logger = logging.getLogger(__name__)

GRANT_PATH = "oauth/token"
USERS_BY_EMAIL_PATH = "api/v2/users-by-email"

# A token is renewed this long before Auth0 says it runs out, whichever is less,
# so that no request leaves with a token that lapses on the way.
TOKEN_RENEW_SECONDS = 60.0
TOKEN_RENEW_FRACTION = 0.1

# A server that answers 429 again after every reset would otherwise be asked
# without end; each wait is also bounded by the deadline.
RATE_LIMIT_WAITS = 2

# Work for a caller stops this long before their deadline, so that the answer,
# UNAVAILABLE or the database write after a clear one, still reaches them in time.
REPLY_MARGIN_SECONDS = 0.1

# A turn from the request budget that leaves less than this for the request
# itself is refused: the request would most likely time out, having spent a
# turn of the budget for nothing.
REQUEST_ROOM_SECONDS = 0.1

# Only error codes of this shape are repeated in messages, so that nothing an
# upstream echoes back (a client id, an email) reaches a log line.
ERROR_CODE = re.compile(r"[a-z_]{1,40}")

T = TypeVar("T")


class BlockStatus(enum.Enum):
    """What Auth0 says about the users with one email."""

    NOT_BLOCKED = "not_blocked"
    BLOCKED = "blocked"
    NOT_FOUND = "not_found"


class Auth0Unavailable(errors.Unavailable):
    """Auth0 gave no answer that can be trusted; the check can be retried.

    The message says what went wrong and never holds the email or a secret.
    """

    def __init__(self, message: str) -> None:
        super().__init__(errors.AUTH0_UNAVAILABLE, message)


def usable_time(timeout: float | None) -> float | None:
    """Return how long work may go on for a caller with timeout seconds left."""
    if timeout is None:
        return None
    return max(timeout - REPLY_MARGIN_SECONDS, 0.0)


class Deadline:
    """The time one check may still take, on the event loop's monotonic clock."""

    def __init__(self, timeout: float | None, per_request: float) -> None:
        self._loop = asyncio.get_running_loop()
        usable = usable_time(timeout)
        self._end = math.inf if usable is None else self._loop.time() + usable
        self._per_request = per_request

    def left(self) -> float | None:
        """Return the seconds left, or None when the caller set no deadline."""
        if self._end == math.inf:
            return None
        return max(self._end - self._loop.time(), 0.0)

    def budget(self) -> float:
        """Return how long the next request or wait may take; raise if none."""
        budget = min(self._end - self._loop.time(), self._per_request)
        if budget <= 0:
            raise Auth0Unavailable("the caller's deadline passed before Auth0 answered")
        return budget


class Auth0Client:
    """Ask the Auth0 Management API whether users are blocked.

    `token_fetches` counts the requests sent to the token endpoint and `lookups`
    the requests sent to users-by-email, retries included. `budget` is shared by
    every request this client sends; by default it allows
    AUTH0_MAX_REQUESTS_PER_SECOND, with as many callers waiting as can have a
    turn within AUTH0_TIMEOUT_SECONDS. `wall` reads the wall clock, against which
    Auth0's rate-limit reset times are measured.
    """

    def __init__(
        self,
        config: Config,
        clock: Clock,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        budget: RequestBudget | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._config = config
        self._clock = clock
        self._wall = wall
        self.budget = budget or default_budget(config)
        host = urllib.parse.urlsplit(config.auth0_management_url).hostname or ""

        # Proxy settings from the environment are kept for a real tenant, but a
        # loopback stand-in is always reached directly.
        self._http = httpx.AsyncClient(
            base_url=config.auth0_management_url + "/",
            transport=transport,
            timeout=config.auth0_timeout_seconds,
            trust_env=not is_loopback_host(host),
            headers={"accept": "application/json"},
            event_hooks={"request": [self._count_request]},
        )

        self._token: str | None = None
        self._token_renew_at = 0.0
        self._token_task: asyncio.Task[str] | None = None
        self._checks: dict[str, asyncio.Task[BlockStatus]] = {}
        self.token_fetches = 0
        self.lookups = 0

    async def block_status(
        self, email: str, *, timeout: float | None = None
    ) -> BlockStatus:
        """Tell whether the Auth0 users with this email are blocked.

        Args:
            email: the email to look up; case is ignored when comparing.
            timeout: seconds left of the caller's deadline, None for no deadline.
                A check already running for the same email is shared, and keeps
                the deadline of the caller that started it.

        Returns:
            BLOCKED if any matching user is blocked, NOT_BLOCKED if users were
            found and none is, NOT_FOUND if Auth0 knows no such email.

        Raises:
            Auth0Unavailable: Auth0 failed, timed out, was rate limited beyond
                the deadline, or answered something that cannot be trusted.
        """
        key = email.lower()
        task = self._checks.get(key)
        if task is not None:
            return await await_shared(task, usable_time(timeout))

        # The check carries this caller's deadline, so this caller waits for
        # it to end, and hears the precise reason when it fails.
        task = asyncio.create_task(self._check(email, timeout))
        self._checks[key] = task
        task.add_done_callback(functools.partial(self._forget_check, key))
        return await await_shared(task, None)

    async def aclose(self) -> None:
        """Stop the checks in flight and close the connections."""
        tasks: list[asyncio.Task[Any]] = [*self._checks.values()]
        if self._token_task is not None:
            tasks.append(self._token_task)
        for task in tasks:
            task.cancel()

        await asyncio.gather(*tasks, return_exceptions=True)
        await self._http.aclose()

    async def _check(self, email: str, timeout: float | None) -> BlockStatus:
        deadline = Deadline(timeout, self._config.auth0_timeout_seconds)
        try:
            users = await self._find_users(email, deadline)

            # Auth0 lowercases the emails of its own database users, while the
            # lookup is case-sensitive, so a mixed-case email may be stored
            # lowercased.
            if not users and email.lower() != email:
                users = await self._find_users(email.lower(), deadline)
        except Auth0Unavailable as error:
            logger.warning("Auth0 block check failed: %s", error.message)
            raise

        return status_of(users)

    def _forget_check(self, key: str, task: asyncio.Task[BlockStatus]) -> None:
        if self._checks.get(key) is task:
            del self._checks[key]
        mark_retrieved(task)

    async def _find_users(self, email: str, deadline: Deadline) -> list[dict]:
        token = await self._get_token(deadline)
        response = await self._get_users_by_email(email, token, deadline)

        # Management tokens cannot be revoked but can stop working (a changed
        # signing key, a deleted grant): one fresh token is worth one retry.
        if response.status_code == 401:
            self._drop_token(token)
            token = await self._get_token(deadline)
            response = await self._get_users_by_email(email, token, deadline)
            if response.status_code == 401:
                raise Auth0Unavailable("users-by-email refused a fresh token (401)")

        if response.status_code != 200:
            raise Auth0Unavailable(f"users-by-email answered {describe(response)}")

        return matching_users(read_users(response), email)

    async def _get_users_by_email(
        self, email: str, token: str, deadline: Deadline
    ) -> httpx.Response:
        request = self._http.build_request(
            "GET",
            USERS_BY_EMAIL_PATH,
            params={"email": email},
            headers={"authorization": f"Bearer {token}"},
        )
        return await self._send(request, deadline, "users-by-email")

    async def _get_token(self, deadline: Deadline) -> str:
        if self._token is not None and self._clock.timestamp() < self._token_renew_at:
            return self._token

        # One fetch serves everybody who needs a token meanwhile, so a slow or
        # failing token endpoint is asked once, not once per waiting check.
        if self._token_task is not None:
            return await await_shared(self._token_task, deadline.left())

        task = asyncio.create_task(self._fetch_token(deadline))
        self._token_task = task
        task.add_done_callback(self._forget_token_task)
        return await await_shared(task, None)

    def _forget_token_task(self, task: asyncio.Task[str]) -> None:
        if self._token_task is task:
            self._token_task = None
        mark_retrieved(task)

    def _drop_token(self, token: str) -> None:
        # Another check may have replaced the token already; keep that one.
        if self._token == token:
            self._token = None

    async def _fetch_token(self, deadline: Deadline) -> str:
        request = self._http.build_request(
            "POST",
            GRANT_PATH,
            json={
                "grant_type": "client_credentials",
                "client_id": self._config.auth0_client_id,
                "client_secret": self._config.auth0_client_secret,
                "audience": self._config.auth0_audience,
            },
        )
        response = await self._send(request, deadline, "token request")
        token, expires_in = read_token(response)

        renew_before = min(TOKEN_RENEW_SECONDS, expires_in * TOKEN_RENEW_FRACTION)
        self._token = token
        self._token_renew_at = self._clock.timestamp() + expires_in - renew_before
        return token

    async def _send(
        self, request: httpx.Request, deadline: Deadline, what: str
    ) -> httpx.Response:
        waits = 0
        while True:
            response = await self._send_once(request, deadline, what)
            if response.status_code != 429:
                return response

            if waits == RATE_LIMIT_WAITS:
                raise Auth0Unavailable(f"{what} still rate limited after {waits} waits")
            await self._wait_for_reset(response, deadline, what)
            waits += 1

    async def _send_once(
        self, request: httpx.Request, deadline: Deadline, what: str
    ) -> httpx.Response:
        await self._take_turn(deadline, what)

        budget = deadline.budget()
        request.extensions["timeout"] = httpx.Timeout(budget).as_dict()

        # httpx's timeouts bound each phase; this bounds the whole exchange,
        # so a server trickling bytes cannot stretch it.
        try:
            async with asyncio.timeout(budget):
                return await self._http.send(request)
        except (TimeoutError, httpx.TimeoutException) as error:
            raise Auth0Unavailable(f"{what} timed out after {budget:.1f} s") from error
        except httpx.HTTPError as error:
            # The error's own text can hold the URL, and with it the email.
            name = type(error).__name__
            raise Auth0Unavailable(f"{what} failed: {name}") from error

    async def _take_turn(self, deadline: Deadline, what: str) -> None:
        max_wait = deadline.budget() - REQUEST_ROOM_SECONDS
        try:
            await self.budget.take_turn(max_wait)
        except OverBudget as error:
            raise Auth0Unavailable(f"{what} not sent: {error.message}") from error

    async def _wait_for_reset(
        self, response: httpx.Response, deadline: Deadline, what: str
    ) -> None:
        reset = read_reset(response)
        if reset is None:
            raise Auth0Unavailable(f"{what} rate limited, with no usable reset time")

        # The reset is an instant on Auth0's clock, which the service's own
        # clock (moved by tests) does not move; the wait is real time.
        wait = max(reset - self._wall(), 0.0)
        until = datetime.datetime.fromtimestamp(reset, datetime.UTC)
        if wait >= deadline.budget():
            raise Auth0Unavailable(
                f"{what} rate limited until {until:%Y-%m-%dT%H:%M:%SZ}, "
                f"{wait:.1f} s away, beyond the time left"
            )

        logger.warning("Auth0 rate limited the %s; waiting %.1f s", what, wait)
        await asyncio.sleep(wait)

    async def _count_request(self, request: httpx.Request) -> None:
        path = request.url.path
        if path.endswith("/" + GRANT_PATH):
            self.token_fetches += 1
        elif path.endswith("/" + USERS_BY_EMAIL_PATH):
            self.lookups += 1


def default_budget(config: Config) -> RequestBudget:
    """Build the request budget the settings ask for."""
    rate = config.auth0_max_requests_per_second
    return RequestBudget(
        rate, max_waiting=max(1, math.ceil(rate * config.auth0_timeout_seconds))
    )


async def await_shared(task: asyncio.Task[T], timeout: float | None) -> T:
    """Wait for a task others wait for too, without cancelling it on leaving."""
    try:
        async with asyncio.timeout(timeout):
            return await asyncio.shield(task)
    except TimeoutError as error:
        raise Auth0Unavailable(
            "the caller's deadline passed waiting for Auth0"
        ) from error
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if task.cancelled() and current is not None and not current.cancelling():
            raise Auth0Unavailable("the Auth0 client was closed") from None
        raise


def mark_retrieved(task: asyncio.Task[Any]) -> None:
    """Read a finished task's exception, so asyncio never reports it unread.

    Every waiter may have left (cancelled, or past its deadline) before the
    shared task finished; its failure was logged where it happened.
    """
    if not task.cancelled():
        task.exception()


def read_token(response: httpx.Response) -> tuple[str, float]:
    """Return the access token and its lifetime from a token response."""
    if response.status_code != 200:
        raise Auth0Unavailable(f"token request answered {describe(response)}")

    body = read_json(response, "token request")
    token = body.get("access_token") if isinstance(body, dict) else None
    expires_in = body.get("expires_in") if isinstance(body, dict) else None
    if not isinstance(token, str) or not token:
        raise Auth0Unavailable("token request answered without an access_token")
    if not is_number(expires_in) or not 0 < expires_in < math.inf:
        raise Auth0Unavailable("token request answered without a usable expires_in")

    return token, float(expires_in)


def read_users(response: httpx.Response) -> list[dict]:
    """Return the user objects of a users-by-email answer, checked for shape."""
    body = read_json(response, "users-by-email")
    if not isinstance(body, list) or not all(isinstance(u, dict) for u in body):
        raise Auth0Unavailable("users-by-email answered something not a list of users")

    for user in body:
        if not isinstance(user.get("blocked", False), bool):
            raise Auth0Unavailable("users-by-email answered a non-boolean blocked")
    return body


def matching_users(users: list[dict], email: str) -> list[dict]:
    """Keep the users whose email is the one asked for, ignoring case."""
    wanted = email.lower()
    return [
        user
        for user in users
        if isinstance(user.get("email"), str) and user["email"].lower() == wanted
    ]


def status_of(users: list[dict]) -> BlockStatus:
    """Decide the status of the users found for one email."""
    if any(user.get("blocked", False) for user in users):
        return BlockStatus.BLOCKED
    if users:
        return BlockStatus.NOT_BLOCKED
    return BlockStatus.NOT_FOUND


def read_json(response: httpx.Response, what: str) -> Any:
    """Parse a JSON body, raising Auth0Unavailable when it is not JSON."""
    try:
        return response.json()
    except (ValueError, RecursionError) as error:
        raise Auth0Unavailable(f"{what} answered a body that is not JSON") from error


def read_reset(response: httpx.Response) -> float | None:
    """Return x-ratelimit-reset as UNIX seconds, or None if absent or unusable."""
    try:
        reset = float(response.headers.get("x-ratelimit-reset", ""))
    except ValueError:
        return None
    # Past the year 9999 a time cannot be shown, and would be beyond any deadline.
    return reset if 0 < reset < 253402300800 else None


def describe(response: httpx.Response) -> str:
    """Say what a failed answer was, for messages: its status and error code.

    Auth0's token endpoint answers 500 "Global limit has been reached" when
    it is overloaded; that is a rate limit, not bad credentials.
    """
    text = f"status {response.status_code}"
    try:
        body = response.json()
    except (ValueError, RecursionError):
        return text
    if not isinstance(body, dict):
        return text

    description = body.get("error_description") or body.get("message")
    if isinstance(description, str) and "global limit" in description.lower():
        return text + ": rate limited (global limit has been reached)"

    code = body.get("error") if "error_description" in body else body.get("errorCode")
    if isinstance(code, str) and ERROR_CODE.fullmatch(code):
        return f"{text} ({code})"
    return text


def is_number(value: object) -> TypeGuard[int | float]:
    """Tell whether a parsed JSON value is a number (a bool is not)."""
    return isinstance(value, int | float) and not isinstance(value, bool)
