"""The model the load test checks every answer against.

Each caller of the load test owns one user and is the only one to change it,
so the model of that user is exact: its permissions, its tokens and their
expiry, whether an administrator deactivated it, whether it is blocked in
Auth0 and whether the check found that. Two things are known only within
bounds, and the model keeps the bounds instead of guessing:

- Time. The server's clock is the wall clock plus the offset the test writes,
  and a call sees some instant between its start and its end. A token whose
  expiry falls in that span may be answered either way; outside it, exactly.
- Whether the Auth0 check is due. The model keeps two clock generations (the
  test moves the clock a whole interval at a time): the last that may have
  seen a check pass, and the last that surely did. The check is surely due
  once the clock has moved since the first, or after SetActive(true) forgot
  it; surely not due while the clock has not moved since the second; and
  either in between. A blocked user's token accepted while the check is
  surely due is a wrong accept.

AUTH0_UNAVAILABLE is a right answer only while the check may run and Auth0 was
troubled at some moment of the call or shortly before it: a fault was on (an
Auth0 request sent during a fault can fail after the fault is cleared), or
every user's check had just fallen due at once, which fills the service's
request budget and its bounded queue, so that some checks are refused.
"""

import dataclasses
import datetime

UPLOAD = "upload.upload_symbols"
TRY = "upload.upload_try_symbols"
VIEW = "upload.view_all_uploads"
MANAGE = "tokens.manage_tokens"
ALL = frozenset({UPLOAD, TRY, VIEW, MANAGE})

# Answers as (code, reason); PASS stands for "authenticated, go on".
PASS = ("PASS", "")
OK = ("OK", "")
NO_SUCH_TOKEN = ("UNAUTHENTICATED", "TOKEN_NOT_FOUND")
EXPIRED = ("UNAUTHENTICATED", "TOKEN_EXPIRED")
INACTIVE = ("PERMISSION_DENIED", "USER_INACTIVE")
BLOCKED = ("PERMISSION_DENIED", "USER_BLOCKED")
MISSING = ("PERMISSION_DENIED", "PERMISSION_MISSING")
AUTH0_DOWN = ("UNAVAILABLE", "AUTH0_UNAVAILABLE")
NOT_FOUND = ("NOT_FOUND", "TOKEN_NOT_FOUND")
CREDENTIAL_FAILURES = {NO_SUCH_TOKEN, EXPIRED, INACTIVE, BLOCKED, AUTH0_DOWN}

# Room for the server's and the test's reading of the same wall clock.
CLOCK_MARGIN = datetime.timedelta(seconds=1)


@dataclasses.dataclass(frozen=True)
class Window:
    """What the test knew when a call started and when its answer came."""

    wall_start: float
    wall_end: float
    offset_start: float
    offset_end: float
    generation_start: int
    generation_end: int
    auth0_troubled: bool

    @property
    def earliest(self) -> datetime.datetime:
        """The earliest instant the server's clock can have shown."""
        stamp = self.wall_start + self.offset_start
        return datetime.datetime.fromtimestamp(stamp, datetime.UTC) - CLOCK_MARGIN

    @property
    def latest(self) -> datetime.datetime:
        """The latest instant the server's clock can have shown."""
        stamp = self.wall_end + self.offset_end
        return datetime.datetime.fromtimestamp(stamp, datetime.UTC) + CLOCK_MARGIN


@dataclasses.dataclass
class Token:
    """A key the model knows, with what the server should make of it."""

    key: str
    token_id: str
    expire_time: datetime.datetime
    permissions: frozenset[str] | None  # None for a session token
    revoked: bool = False

    def expiry(self, window: Window) -> set[str]:
        """Return what the server may find: "expired", "live", or both."""
        if self.expire_time <= window.earliest:
            return {"expired"}
        if self.expire_time > window.latest:
            return {"live"}
        return {"expired", "live"}


@dataclasses.dataclass
class Person:
    """One load-test user, as the model expects the server to hold it."""

    email: str
    auth0_id: str
    granted: frozenset[str] = frozenset()
    deactivated_by_admin: bool = False
    deactivated_by_check: bool = False
    blocked: bool = False
    # The last clock generation in which a check may have passed, and the
    # last in which one surely did.
    maybe_checked: int = -1
    surely_checked: int = -1
    must_recheck: bool = True
    session: Token | None = None
    tokens: dict[str, Token] = dataclasses.field(default_factory=dict)

    @property
    def active(self) -> bool:
        return not (self.deactivated_by_admin or self.deactivated_by_check)

    def effective(self, token: Token) -> frozenset[str]:
        """Return what token may do now: within its owner's permissions."""
        if token.permissions is None:
            return self.granted
        return token.permissions & self.granted

    def check_due(self, window: Window) -> str:
        """Say whether the Auth0 check is due: "yes", "no" or "maybe"."""
        if self.must_recheck or window.generation_start > self.maybe_checked:
            return "yes"
        if window.generation_end <= self.surely_checked:
            return "no"
        return "maybe"

    def check_outcomes(self, window: Window) -> set[tuple[str, str]]:
        """Return what the Auth0 check of this active user may answer."""
        due = self.check_due(window)
        outcomes = set()
        if due != "no":
            outcomes.add(BLOCKED if self.blocked else PASS)
            if window.auth0_troubled:
                outcomes.add(AUTH0_DOWN)
        if due != "yes":
            outcomes.add(PASS)
        return outcomes

    def credential_outcomes(
        self, token: Token | None, window: Window
    ) -> set[tuple[str, str]]:
        """Return what authenticating token may answer, PASS meaning it passes."""
        if token is None or token.revoked:
            return {NO_SUCH_TOKEN}

        expiry = token.expiry(window)
        outcomes = {EXPIRED} if "expired" in expiry else set()
        if "live" in expiry:
            outcomes |= {INACTIVE} if not self.active else self.check_outcomes(window)
        return outcomes

    def note_check(self, answer: tuple[str, str], window: Window) -> None:
        """Update the model after an answer that went through the check."""
        due = self.check_due(window)
        if answer == BLOCKED:
            self.deactivated_by_check = True
        elif answer not in CREDENTIAL_FAILURES and due != "no":
            self.note_pass(window, surely=due == "yes")

    def note_pass(self, window: Window, *, surely: bool) -> None:
        """Record that the user got past a check that ran (surely) or may have."""
        if surely:
            self.surely_checked = window.generation_start
            self.must_recheck = False
        self.maybe_checked = window.generation_end


def judge_credential(
    person: Person, token: Token | None, answer: tuple[str, str], window: Window
) -> str | None:
    """Return why answer is wrong for authenticating token, or None if right.

    Updates the model with what the answer shows.
    """
    allowed = person.credential_outcomes(token, window)
    passed = answer not in CREDENTIAL_FAILURES
    if passed and PASS not in allowed:
        return f"accepted a credential the model refuses with {sorted(allowed)}"
    if not passed and answer not in allowed:
        return f"refused with {answer}, the model allows {sorted(allowed)}"

    if person.active:
        person.note_check(answer, window)
    return None


def judge_admin(answer: tuple[str, str], window: Window) -> str | None:
    """Judge the superuser's own authentication: never refused, bar faults."""
    if answer == AUTH0_DOWN and window.auth0_troubled:
        return None
    if answer in CREDENTIAL_FAILURES:
        return f"the superuser was refused with {answer}"
    return None


def within(
    value: datetime.datetime,
    low: datetime.datetime,
    high: datetime.datetime,
) -> bool:
    """Tell whether a time from the server lies in the model's bounds."""
    return low <= value <= high
