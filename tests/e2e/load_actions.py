"""What one load-test caller does, and how each of its answers is judged.

A Caller owns one user (a Person of load_model) and makes, one after another,
random calls of every RPC about that user: with its session, its API tokens
and the superuser's key. After each answer it asks the model whether the
answer was right, records any that was not, and updates the model with what
the answer shows. Keys and emails appear in the records of wrong answers
only as token ids and the caller's number.
"""

import asyncio
import collections
import datetime
import random
import secrets
import urllib.parse
from typing import Any

import httpx
from load_model import (
    ALL,
    AUTH0_DOWN,
    BLOCKED,
    CREDENTIAL_FAILURES,
    INACTIVE,
    MANAGE,
    MISSING,
    NOT_FOUND,
    OK,
    PASS,
    Person,
    Token,
    judge_admin,
    judge_credential,
    within,
)
from tecken_identity._generated import identity_pb2 as pb

REDIRECT_URI = "http://127.0.0.1:8765/callback"
STATE_EXPIRED = ("FAILED_PRECONDITION", "LOGIN_STATE_INVALID")
PROVIDER_DOWN = ("UNAVAILABLE", "PROVIDER_UNAVAILABLE")
MAX_LIVE_TOKENS = 6
REASONS = {
    pb.INACTIVE_REASON_UNSPECIFIED: "",
    pb.INACTIVE_REASON_DEACTIVATED: "deactivated",
    pb.INACTIVE_REASON_BLOCKED_IN_AUTH0: "blocked",
}


def time_of(stamp: Any) -> datetime.datetime:
    """Turn a protobuf Timestamp into an aware datetime."""
    return stamp.ToDatetime(tzinfo=datetime.UTC)


def some_permissions(rng: random.Random, *, empty: bool = False) -> frozenset[str]:
    """Pick a random set of permissions, never empty unless asked."""
    while True:
        chosen = frozenset(p for p in sorted(ALL) if rng.random() < 0.5)
        if chosen or empty:
            return chosen


class Caller:
    """One concurrent caller of the load test and the user it owns."""

    def __init__(self, run: Any, number: int, person: Person, seed: int) -> None:
        self.run = run
        self.number = number
        self.person = person
        # Seeded so that a failing run can be repeated; nothing secret is drawn.
        self.rng = random.Random(seed)  # noqa: S311
        self.history: collections.deque[str] = collections.deque(maxlen=6)
        self.actions = {
            self.validate_session: 16,
            self.validate_api_token: 16,
            self.validate_unknown_key: 2,
            self.create_token: 8,
            self.list_tokens: 4,
            self.revoke_token: 3,
            self.revoke_foreign_token: 1,
            self.extend_token: 3,
            self.logout: 1,
            self.login: 2,
            self.set_permissions: 5,
            self.set_active: 1,
            self.get_user: 3,
            self.list_users: 1,
            self.is_blocked: 1,
            self.toggle_block: 3,
        }

    async def call(self, method: str, request: Any, key: str | None = None) -> Any:
        """Make one call, remembering it among the caller's last few."""
        answer = await self.run.call(method, request, key)
        due = self.person.check_due(answer.window)
        self.history.append(f"{method} {answer.pair} (check due: {due})")
        return answer

    def wrong(self, method: str, why: str) -> None:
        """Record a wrong answer, with the calls that led to it."""
        before = "; ".join(list(self.history)[:-1])
        self.run.wrong.append(f"caller {self.number} {method}: {why}; after {before}")

    def got_in(self, method: str, token: Token | None, answer: Any) -> bool:
        """Judge how the call's credential was taken; tell whether it got in."""
        why = judge_credential(self.person, token, answer.pair, answer.window)
        if why:
            self.wrong(method, why)
        return not why and answer.pair not in CREDENTIAL_FAILURES

    async def step(self) -> None:
        """Make the next call: a recovery when needed, else a random one."""
        person = self.person
        if person.deactivated_by_admin and self.rng.random() < 0.5:
            await self.set_active(active=True)
        elif person.deactivated_by_check and person.blocked and self.rng.random() < 0.5:
            await self.toggle_block()
        elif not self.session_usable():
            await self.login()
        else:
            actions, weights = zip(*self.actions.items(), strict=True)
            await self.rng.choices(actions, weights)[0]()

    def session_usable(self) -> bool:
        """Tell whether the session is worth using rather than signing in again."""
        session = self.person.session
        if session is None or session.revoked:
            return False
        soon = self.run.server_now() + datetime.timedelta(minutes=2)
        return session.expire_time > soon

    def pick_token(self) -> Token | None:
        """Pick one of the user's API tokens, revoked ones included."""
        tokens = list(self.person.tokens.values())
        return self.rng.choice(tokens) if tokens else None

    def live_tokens(self) -> list[Token]:
        """Return the user's API tokens that are not revoked."""
        return [t for t in self.person.tokens.values() if not t.revoked]

    async def validate(self, token: Token | None, key: str) -> None:
        """Validate key (token's, or unknown when token is None) and judge it."""
        person = self.person
        required = some_permissions(self.rng, empty=True)
        sent = f"{key}-load" if self.rng.random() < 0.2 else key
        answer = await self.call(
            "ValidateToken",
            pb.ValidateTokenRequest(token=sent, required_permissions=sorted(required)),
        )
        if not self.got_in("ValidateToken", token, answer):
            return

        granted = person.effective(token)
        if not required <= granted:
            if answer.pair != MISSING:
                self.wrong("ValidateToken", f"{answer.pair} where {MISSING} is due")
            return
        if answer.pair != OK:
            return self.wrong("ValidateToken", f"{answer.pair} where OK is due")

        response = answer.response
        kind = pb.TOKEN_KIND_SESSION if token.permissions is None else pb.TOKEN_KIND_API
        # Login does not say a session's id; its first validation does.
        token.token_id = token.token_id or response.token_id
        if (
            list(response.permissions) != sorted(granted)
            or response.kind != kind
            or response.token_id != token.token_id
            or response.user.email != person.email
        ):
            shown = f"{list(response.permissions)} kind {response.kind}"
            self.wrong("ValidateToken", f"answer differs from the model: {shown}")

    async def validate_session(self) -> None:
        """Validate the session, as the web gateway does on every request."""
        session = self.person.session
        await self.validate(session, session.key)

    async def validate_api_token(self) -> None:
        """Validate an API token, as the upload and download services do."""
        token = self.pick_token()
        if token is None:
            return await self.create_token()
        await self.validate(token, token.key)

    async def validate_unknown_key(self) -> None:
        """Validate a key nobody was given."""
        await self.validate(None, secrets.token_hex(32))

    async def create_token(self) -> None:
        """Create a token with the session, or with an API token that can."""
        person = self.person
        if len(self.live_tokens()) >= MAX_LIVE_TOKENS:
            return await self.revoke_token()

        caller = person.session
        able = [t for t in self.live_tokens() if MANAGE in (t.permissions or ())]
        if able and self.rng.random() < 0.3:
            caller = self.rng.choice(able)
        wanted = some_permissions(self.rng)
        if self.rng.random() < 0.7:
            # Mostly ask for what the caller holds, so that most succeed.
            wanted = wanted & person.effective(caller) or wanted
        days = self.rng.choice([0, 1, 7, 30, 90])
        answer = await self.call(
            "CreateToken",
            pb.CreateTokenRequest(
                permissions=sorted(wanted), expires_in_days=days, notes="load"
            ),
            key=caller.key,
        )
        if not self.got_in("CreateToken", caller, answer):
            return

        held = person.effective(caller)
        if MANAGE not in held or not wanted <= held:
            if answer.pair != MISSING:
                self.wrong("CreateToken", f"{answer.pair}: {sorted(wanted)} > held")
            return
        if answer.pair != OK:
            return self.wrong("CreateToken", f"{answer.pair} where OK is due")

        info = answer.response.token_info
        lifetime = datetime.timedelta(days=days or 365)
        expire_time = time_of(info.expire_time)
        window = answer.window
        if list(info.permissions) != sorted(wanted) or not within(
            expire_time, window.earliest + lifetime, window.latest + lifetime
        ):
            shown = f"{list(info.permissions)} until {expire_time}"
            self.wrong("CreateToken", f"token_info differs from the model: {shown}")
        person.tokens[info.token_id] = Token(
            answer.response.token, info.token_id, expire_time, wanted
        )
        self.run.token_owners[info.token_id] = self.number

    async def list_tokens(self) -> None:
        """List the user's API tokens and compare them with the model's."""
        person = self.person
        state = self.rng.choice(
            [pb.TOKEN_STATE_ACTIVE, pb.TOKEN_STATE_EXPIRED, pb.TOKEN_STATE_ALL]
        )
        answer = await self.call(
            "ListTokens", pb.ListTokensRequest(state=state), key=person.session.key
        )
        if not self.got_in("ListTokens", person.session, answer):
            return
        if answer.pair != OK:
            return self.wrong("ListTokens", f"{answer.pair} where OK is due")

        listed = {info.token_id for info in answer.response.tokens}
        if listed - set(person.tokens):
            return self.wrong("ListTokens", "lists tokens the user does not own")
        for token in person.tokens.values():
            expected = listing_of(token, state, answer.window)
            if (token.token_id in listed) not in expected:
                self.wrong("ListTokens", f"token {token.token_id} listing is wrong")

    async def revoke_token(self) -> None:
        """Revoke one of the user's tokens; a revoked one is not found."""
        token = self.pick_token()
        if token is None:
            return await self.create_token()

        answer = await self.call_on_token("RevokeToken", token.token_id)
        if answer is None:
            return
        expected = NOT_FOUND if token.revoked else OK
        if answer.pair != expected:
            return self.wrong("RevokeToken", f"{answer.pair} where {expected} is due")
        token.revoked = True

    async def revoke_foreign_token(self) -> None:
        """Try to revoke another caller's token, or one that never existed."""
        others = [t for t, n in self.run.token_owners.items() if n != self.number]
        target = self.rng.choice(others) if others else secrets.token_hex(16)
        answer = await self.call_on_token("RevokeToken", target)
        if answer is not None and answer.pair != NOT_FOUND:
            self.wrong("RevokeToken", f"{answer.pair} for a token of somebody else")

    async def extend_token(self) -> None:
        """Extend one of the user's tokens by some days."""
        token = self.pick_token()
        if token is None:
            return await self.create_token()

        days = self.rng.randint(1, 30)
        answer = await self.call_on_token("ExtendToken", token.token_id, days=days)
        if answer is None:
            return
        if token.revoked:
            if answer.pair != NOT_FOUND:
                self.wrong("ExtendToken", f"{answer.pair} for a revoked token")
            return
        if answer.pair != OK:
            return self.wrong("ExtendToken", f"{answer.pair} where OK is due")

        extended = time_of(answer.response.token_info.expire_time)
        window, more = answer.window, datetime.timedelta(days=days)
        low = max(token.expire_time, window.earliest) + more
        high = max(token.expire_time, window.latest) + more
        if not within(extended, low, high):
            self.wrong("ExtendToken", f"expiry {extended} is not in [{low}, {high}]")
        token.expire_time = extended

    async def call_on_token(self, method: str, token_id: str, **fields: Any):
        """Call RevokeToken or ExtendToken with the session, judging its credential.

        Returns None when the credential was refused, which is judged already.
        """
        person = self.person
        request = getattr(pb, f"{method}Request")(token_id=token_id, **fields)
        answer = await self.call(method, request, key=person.session.key)
        return answer if self.got_in(method, person.session, answer) else None

    async def logout(self) -> None:
        """End the session; the next step signs in again."""
        session = self.person.session
        answer = await self.call("Logout", pb.LogoutRequest(token=session.key))
        if answer.pair != OK:
            return self.wrong("Logout", f"{answer.pair} where OK is due")
        session.revoked = True

    async def login(self) -> None:
        """Sign in through the provider as a browser would, and judge Login."""
        person = self.person
        started = await self.call(
            "StartLogin", pb.StartLoginRequest(redirect_uri=REDIRECT_URI)
        )
        if started.pair != OK:
            return self.wrong("StartLogin", f"{started.pair} where OK is due")

        code = await self.authorize(started.response.authorization_url)
        if code is None:
            return
        answer = await self.call(
            "Login",
            pb.LoginRequest(
                code=code, state=started.response.state, redirect_uri=REDIRECT_URI
            ),
        )
        # The provider mock sometimes drops a code exchange under this load
        # (Flask under uvicorn's WSGI adapter); the service then rightly says
        # it could not reach the provider.
        allowed = login_outcomes(person, answer.window) | {PROVIDER_DOWN}
        # A login state lives 600 s of the server's time: a clock move between
        # StartLogin and Login outlives it.
        moved = started.window.generation_end < answer.window.generation_start
        if moved or started.window.generation_start < answer.window.generation_end:
            allowed = {STATE_EXPIRED} if moved else allowed | {STATE_EXPIRED}
        if answer.pair not in allowed:
            return self.wrong("Login", f"{answer.pair}, the model allows {allowed}")

        if answer.pair == BLOCKED:
            person.deactivated_by_check = True
        if answer.pair != OK:
            return
        response = answer.response
        if response.user.email != person.email or response.created:
            self.wrong("Login", "signed in as somebody else, or as a new user")
        due = "yes" if person.deactivated_by_check else person.check_due(answer.window)
        if due != "no":
            person.note_pass(answer.window, surely=due == "yes")
        person.deactivated_by_check = False
        person.session = Token(
            response.session_token, "", time_of(response.expire_time), None
        )

    async def authorize(self, authorization_url: str) -> str | None:
        """Answer the provider's sign-in page; return the code it redirects with.

        The provider is a development server, not what is under test: when it
        fails, the failure is counted and the sign-in is given up.
        """
        query = urllib.parse.urlsplit(authorization_url).query
        try:
            async with self.run.provider_turns:
                response = await self.run.http.post(
                    f"{self.run.provider}/oauth2/authorize?{query}",
                    data={"sub": self.person.email},
                )
            location = urllib.parse.urlsplit(response.headers["location"])
            return urllib.parse.parse_qs(location.query)["code"][0]
        except (httpx.HTTPError, KeyError, IndexError):
            self.run.provider_failures += 1
            return None

    async def admin_call(self, method: str, request: Any):
        """Make a superuser call about the user; None if refused (judged)."""
        answer = await self.call(method, request, key=self.run.admin_key)
        why = judge_admin(answer.pair, answer.window)
        if why:
            self.wrong(method, why)
        if why or answer.pair in CREDENTIAL_FAILURES:
            return None
        if answer.pair != OK:
            self.wrong(method, f"{answer.pair} where OK is due")
            return None
        return answer

    async def set_permissions(self) -> None:
        """Replace the user's permissions, mostly keeping tokens.manage_tokens."""
        granted = some_permissions(self.rng, empty=True) | {MANAGE}
        if self.rng.random() < 0.2:
            granted = some_permissions(self.rng, empty=True)
        answer = await self.admin_call(
            "SetPermissions",
            pb.SetPermissionsRequest(
                email=self.person.email, permissions=sorted(granted)
            ),
        )
        if answer is None:
            return
        user = answer.response.user
        if list(user.permissions) != sorted(granted) or answer.response.created:
            self.wrong("SetPermissions", "the answer differs from the grant")
        self.person.granted = granted

    async def set_active(self, active: bool | None = None) -> None:
        """Deactivate now and then; otherwise activate, which forgets the check."""
        person = self.person
        if active is None:
            active = person.deactivated_by_admin or self.rng.random() < 0.7
        answer = await self.admin_call(
            "SetActive", pb.SetActiveRequest(email=person.email, active=active)
        )
        if answer is None:
            return
        if answer.response.user.active != active:
            self.wrong("SetActive", "the answer's active differs from the request")
        person.deactivated_by_admin = not active
        person.deactivated_by_check = False
        person.must_recheck = person.must_recheck or active

    async def get_user(self) -> None:
        """Read the user back as the superuser and compare it with the model."""
        answer = await self.admin_call(
            "GetUser", pb.GetUserRequest(email=self.person.email)
        )
        if answer is not None:
            self.compare_user("GetUser", answer.response.user)

    async def list_users(self) -> None:
        """Page through every user; the caller's own must be there once, right."""
        page_token, emails, own = "", [], []
        while True:
            answer = await self.admin_call(
                "ListUsers", pb.ListUsersRequest(page_size=20, page_token=page_token)
            )
            if answer is None:
                return
            for user in answer.response.users:
                emails.append(user.email)
                if user.email == self.person.email:
                    own.append(user)
            page_token = answer.response.next_page_token
            if not page_token:
                break

        if emails != sorted(set(emails)) or len(own) != 1:
            return self.wrong("ListUsers", "pages are out of order or repeat a user")
        self.compare_user("ListUsers", own[0])

    def compare_user(self, method: str, user: Any) -> None:
        """Compare a User message with the model of the caller's user."""
        person = self.person
        reason = "deactivated" if person.deactivated_by_admin else ""
        if person.deactivated_by_check:
            reason = "blocked"
        if (
            user.active != person.active
            or REASONS[user.inactive_reason] != reason
            or list(user.permissions) != sorted(person.granted)
            or user.superuser
        ):
            shown = f"active {user.active}, reason {user.inactive_reason}, "
            shown += f"permissions {list(user.permissions)}"
            self.wrong(method, f"the user differs from the model: {shown}")

    async def is_blocked(self) -> None:
        """Ask IsBlocked of the user, or of an email Auth0 does not know."""
        unknown = self.rng.random() < 0.3
        email = f"nobody-{self.number}@example.com" if unknown else self.person.email
        answer = await self.call(
            "IsBlocked", pb.IsBlockedRequest(email=email), key=self.run.admin_key
        )
        if answer.pair == AUTH0_DOWN and answer.window.auth0_troubled:
            return
        if answer.pair != OK:
            return self.wrong("IsBlocked", f"{answer.pair} where OK is due")

        expected = (
            pb.BLOCK_STATUS_BLOCKED
            if self.person.blocked
            else pb.BLOCK_STATUS_NOT_BLOCKED
        )
        if unknown:
            expected = pb.BLOCK_STATUS_NOT_FOUND
        if answer.response.status != expected:
            self.wrong("IsBlocked", f"status {answer.response.status}, not {expected}")

    async def toggle_block(self) -> None:
        """Block or unblock the user in Auth0, as an Auth0 administrator would."""
        person = self.person
        blocked = not person.blocked if person.blocked else self.rng.random() < 0.5
        if blocked == person.blocked:
            return
        await asyncio.to_thread(self.run.auth0.set_blocked, person.auth0_id, blocked)
        person.blocked = blocked


def listing_of(token: Token, state: int, window: Any) -> set[bool]:
    """Return whether token may be listed for a ListTokens state: {True},
    {False} or both."""
    if state == pb.TOKEN_STATE_ALL:
        return {True}
    if token.revoked:
        return {False}
    expiry = token.expiry(window)
    wanted = "live" if state == pb.TOKEN_STATE_ACTIVE else "expired"
    if expiry == {wanted}:
        return {True}
    return {False} if wanted not in expiry else {True, False}


def login_outcomes(person: Person, window: Any) -> set[tuple[str, str]]:
    """Return what Login may answer for the user, by the model."""
    if person.deactivated_by_admin:
        return {INACTIVE}
    if not person.deactivated_by_check:
        return {OK if o == PASS else o for o in person.check_outcomes(window)}

    # Login asks Auth0 again however fresh the last answer is.
    outcomes = {BLOCKED if person.blocked else OK}
    if window.auth0_troubled:
        outcomes.add(AUTH0_DOWN)
    return outcomes
