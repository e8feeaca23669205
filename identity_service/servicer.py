"""The gRPC handlers of tecken.identity.v1.IdentityService.

Each handler authenticates and authorizes its caller before it looks at the
rest of the request, so a caller who may not make a call learns nothing from
its errors. Failures are raised as domain errors; `status.rpc` turns them into
statuses in one place.
"""

import base64
import binascii
import dataclasses
import datetime
import functools
import unicodedata

import grpc
from tecken_identity._generated import identity_pb2 as pb
from tecken_identity._generated import identity_pb2_grpc as pb_grpc

from . import convert, errors, keys, validation
from . import permissions as perms
from .auth0 import Auth0Client, BlockStatus
from .authn import Authenticated, Authenticator
from .clock import Clock
from .config import Config
from .oidc import OidcClient, check_redirect_uri
from .recheck import BlockedCheck
from .status import rpc
from .store import API, BLOCKED_IN_AUTH0, DEACTIVATED, SESSION, AttemptRecord, Store

BLOCK_STATUSES = {
    BlockStatus.NOT_BLOCKED: pb.BLOCK_STATUS_NOT_BLOCKED,
    BlockStatus.BLOCKED: pb.BLOCK_STATUS_BLOCKED,
    BlockStatus.NOT_FOUND: pb.BLOCK_STATUS_NOT_FOUND,
}
TOKEN_STATES = {
    pb.TOKEN_STATE_UNSPECIFIED: "active",
    pb.TOKEN_STATE_ACTIVE: "active",
    pb.TOKEN_STATE_EXPIRED: "expired",
    pb.TOKEN_STATE_ALL: "all",
}
MAX_STATE_LENGTH = 128
MAX_CODE_LENGTH = 4096


@dataclasses.dataclass(frozen=True)
class Services:
    """What the handlers work with; built once per server process."""

    config: Config
    clock: Clock
    store: Store
    auth0: Auth0Client
    oidc: OidcClient
    check: BlockedCheck
    authenticator: Authenticator


def time_left(context: grpc.aio.ServicerContext) -> float | None:
    """Return the seconds left before the caller's deadline, if it set one."""
    remaining = context.time_remaining()
    return None if remaining is None else max(remaining, 0.0)


def actor(caller: Authenticated) -> str:
    """Name the caller in audit records without their email."""
    return f"user:{caller.user.id}"


class IdentityServicer(pb_grpc.IdentityServiceServicer):
    """The handlers; each one's docstring is in protos/identity.proto too."""

    def __init__(self, services: Services) -> None:
        self.s = services
        self.responses = convert.ValidateResponses()

    async def caller(self, context: grpc.aio.ServicerContext) -> Authenticated:
        """Authenticate the caller's own credential from the metadata."""
        return await self.s.authenticator.authenticate_caller(
            context.invocation_metadata() or (),
            time_left=functools.partial(time_left, context),
        )

    async def superuser(self, context: grpc.aio.ServicerContext) -> Authenticated:
        """Authenticate the caller and require them to be a superuser."""
        caller = await self.caller(context)
        if not caller.user.superuser:
            raise errors.PermissionDenied(
                errors.PERMISSION_MISSING, "this call is for superusers only"
            )
        return caller

    @rpc
    async def StartLogin(
        self, request: pb.StartLoginRequest, context: grpc.aio.ServicerContext
    ) -> pb.StartLoginResponse:
        """Begin an OIDC code flow and remember its state, nonce and verifier."""
        redirect_uri = check_redirect_uri(request.redirect_uri)
        start = await self.s.oidc.start(redirect_uri, timeout=time_left(context))

        now = self.s.clock.now()
        expires = now + datetime.timedelta(
            seconds=self.s.config.login_state_expiration_seconds
        )
        attempt = AttemptRecord(
            state=start.state,
            nonce=start.nonce,
            code_verifier=start.code_verifier,
            redirect_uri=redirect_uri,
        )
        await self.s.store.save_attempt(attempt, now=now, expire_time=expires)
        return pb.StartLoginResponse(
            authorization_url=start.authorization_url, state=start.state
        )

    @rpc
    async def Login(
        self, request: pb.LoginRequest, context: grpc.aio.ServicerContext
    ) -> pb.LoginResponse:
        """Finish the flow, create or update the user and open a session."""
        code = validation.short_text(request.code, "code", limit=MAX_CODE_LENGTH)
        state = validation.short_text(request.state, "state", limit=MAX_STATE_LENGTH)
        validation.short_text(request.redirect_uri, "redirect_uri", limit=2000)

        attempt = await self.s.store.use_attempt(state, now=self.s.clock.now())
        if attempt is None:
            raise errors.FailedPrecondition(
                errors.LOGIN_STATE_INVALID,
                "the login state is unknown, used or expired; start again",
            )
        if attempt.redirect_uri != request.redirect_uri:
            raise errors.InvalidArgument(
                errors.FIELD_INVALID,
                "redirect_uri",
                "differs from the one given to StartLogin",
            )

        identity = await self.s.oidc.finish(
            code=code,
            redirect_uri=attempt.redirect_uri,
            code_verifier=attempt.code_verifier,
            nonce=attempt.nonce,
            timeout=time_left(context),
        )
        try:
            email = validation.email(identity.email)
        except errors.InvalidArgument:
            raise errors.Unauthenticated(
                errors.ID_TOKEN_INVALID, "the ID token's email is not usable"
            ) from None

        existing = await self.s.store.get_user(email)
        if existing is not None and existing.inactive_reason == DEACTIVATED:
            raise errors.PermissionDenied(
                errors.USER_INACTIVE, "an administrator deactivated this user"
            )

        now = self.s.clock.now()
        user, created = await self.s.store.sign_in(email, now=now)
        # A user deactivated by the check is asked about again even when the
        # last answer is fresh: that answer was "blocked".
        user = await self.s.check.ensure_not_blocked(
            user,
            timeout=time_left(context),
            force=user.inactive_reason == BLOCKED_IN_AUTH0,
        )
        if user.inactive_reason == BLOCKED_IN_AUTH0:
            user = await self.s.store.reactivate_after_block(user.id, now=now)
        if not user.active:
            raise errors.PermissionDenied(errors.USER_INACTIVE, "the user is inactive")

        key = keys.new_key()
        expires = now + datetime.timedelta(
            seconds=self.s.config.session_expiration_seconds
        )
        await self.s.store.create_token(
            user.id,
            kind=SESSION,
            key_hash=keys.digest(key),
            key_prefix=keys.prefix(key),
            granted=frozenset(),
            notes="",
            now=now,
            expire_time=expires,
            actor=f"user:{user.id}",
        )
        return pb.LoginResponse(
            session_token=key,
            expire_time=convert.timestamp(expires),
            user=convert.user_message(user),
            created=created,
        )

    @rpc
    async def Logout(
        self, request: pb.LogoutRequest, context: grpc.aio.ServicerContext
    ) -> pb.LogoutResponse:
        """End a session token; the token itself is the credential."""
        key = keys.parse(request.token)
        found = await self.s.store.find_token(keys.digest(key))
        if found is None or found[0].revoke_time is not None:
            raise errors.Unauthenticated(errors.TOKEN_NOT_FOUND, "no such token")

        token, user = found
        if token.kind != SESSION:
            raise errors.InvalidArgument(
                errors.FIELD_INVALID,
                "token",
                "is an API token; revoke it with RevokeToken",
            )
        await self.s.store.revoke_token(
            token.id, actor=f"user:{user.id}", now=self.s.clock.now()
        )
        return pb.LogoutResponse()

    @rpc
    async def ValidateToken(
        self, request: pb.ValidateTokenRequest, context: grpc.aio.ServicerContext
    ) -> pb.ValidateTokenResponse:
        """Check a token and return its owner and effective permissions."""
        required = validation.permission_set(
            request.required_permissions, "required_permissions"
        )
        result = await self.s.authenticator.authenticate(
            request.token,
            time_left=functools.partial(time_left, context),
            required=required,
        )
        return self.responses.response_for(
            result.token, result.user, result.permissions
        )

    @rpc
    async def SetPermissions(
        self, request: pb.SetPermissionsRequest, context: grpc.aio.ServicerContext
    ) -> pb.SetPermissionsResponse:
        """Replace a user's permissions, creating the user if needed."""
        caller = await self.superuser(context)

        email = validation.email(request.email)
        granted = validation.permission_set(request.permissions)
        superuser = request.superuser if request.HasField("superuser") else None

        user, created = await self.s.store.set_permissions(
            email, granted, superuser, actor=actor(caller), now=self.s.clock.now()
        )
        return pb.SetPermissionsResponse(
            user=convert.user_message(user), created=created
        )

    @rpc
    async def SetActive(
        self, request: pb.SetActiveRequest, context: grpc.aio.ServicerContext
    ) -> pb.SetActiveResponse:
        """Activate or deactivate a user as an administrator."""
        caller = await self.superuser(context)

        email = validation.email(request.email)
        user = await self.s.store.set_active(
            email, request.active, actor=actor(caller), now=self.s.clock.now()
        )
        if user is None:
            raise errors.NotFound(errors.USER_NOT_FOUND, "no user has this email")
        return pb.SetActiveResponse(user=convert.user_message(user))

    @rpc
    async def GetUser(
        self, request: pb.GetUserRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetUserResponse:
        """Return one user by email."""
        await self.superuser(context)

        email = validation.email(request.email)
        user = await self.s.store.get_user(email)
        if user is None:
            raise errors.NotFound(errors.USER_NOT_FOUND, "no user has this email")
        return pb.GetUserResponse(user=convert.user_message(user))

    @rpc
    async def ListUsers(
        self, request: pb.ListUsersRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListUsersResponse:
        """Return one page of users, ordered by email."""
        await self.superuser(context)

        size = validation.page_size(request.page_size)
        after = decode_page_token(request.page_token)

        page = await self.s.store.list_users(after=after, limit=size + 1)
        next_token = ""
        if len(page) > size:
            page = page[:size]
            next_token = encode_page_token(page[-1].email)
        return pb.ListUsersResponse(
            users=[convert.user_message(user) for user in page],
            next_page_token=next_token,
        )

    @rpc
    async def IsBlocked(
        self, request: pb.IsBlockedRequest, context: grpc.aio.ServicerContext
    ) -> pb.IsBlockedResponse:
        """Ask Auth0, live, whether an email is blocked; change nothing."""
        await self.superuser(context)

        email = validation.email(request.email)
        status = await self.s.auth0.block_status(email, timeout=time_left(context))
        return pb.IsBlockedResponse(status=BLOCK_STATUSES[status])

    @rpc
    async def CreateToken(
        self, request: pb.CreateTokenRequest, context: grpc.aio.ServicerContext
    ) -> pb.CreateTokenResponse:
        """Create an API token carrying a subset of the caller's permissions."""
        caller = await self.caller(context)
        if perms.MANAGE_TOKENS not in caller.permissions:
            raise errors.PermissionDenied(
                errors.PERMISSION_MISSING,
                f"creating tokens needs {perms.MANAGE_TOKENS}",
                missing=perms.MANAGE_TOKENS,
            )

        granted = validation.permission_set(request.permissions)
        if not granted:
            raise errors.InvalidArgument(
                errors.FIELD_INVALID, "permissions", "name at least one permission"
            )
        beyond = granted - caller.permissions
        if beyond:
            raise errors.PermissionDenied(
                errors.PERMISSION_MISSING,
                "a token cannot carry what its creator lacks: "
                + ", ".join(sorted(beyond)),
                missing=",".join(sorted(beyond)),
            )
        days = validation.days(
            request.expires_in_days,
            "expires_in_days",
            default=self.s.config.tokens_default_expiration_days,
        )
        notes = validation.notes(request.notes)

        key = keys.new_key()
        now = self.s.clock.now()
        token = await self.s.store.create_token(
            caller.user.id,
            kind=API,
            key_hash=keys.digest(key),
            key_prefix=keys.prefix(key),
            granted=granted,
            notes=notes,
            now=now,
            expire_time=now + datetime.timedelta(days=days),
            actor=actor(caller),
        )
        return pb.CreateTokenResponse(
            token=key, token_info=convert.token_info(token, now)
        )

    @rpc
    async def ListTokens(
        self, request: pb.ListTokensRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListTokensResponse:
        """List the caller's own API tokens, never their keys."""
        caller = await self.caller(context)

        state = TOKEN_STATES.get(request.state)
        if state is None:
            raise errors.InvalidArgument(
                errors.FIELD_INVALID, "state", "is not a TokenState value"
            )

        now = self.s.clock.now()
        found = await self.s.store.list_tokens(caller.user.id, state=state, now=now)
        return pb.ListTokensResponse(
            tokens=[convert.token_info(token, now) for token in found]
        )

    @rpc
    async def RevokeToken(
        self, request: pb.RevokeTokenRequest, context: grpc.aio.ServicerContext
    ) -> pb.RevokeTokenResponse:
        """Revoke one of the caller's tokens, or anybody's for a superuser."""
        caller = await self.caller(context)

        token_id = validation.token_id(request.token_id)
        token = await self.s.store.get_api_token(token_id)
        if token is None or not (
            token.user_id == caller.user.id or caller.user.superuser
        ):
            raise errors.NotFound(errors.TOKEN_NOT_FOUND, "no such token")

        revoked = await self.s.store.revoke_token(
            token_id, actor=actor(caller), now=self.s.clock.now()
        )
        if not revoked:
            raise errors.NotFound(errors.TOKEN_NOT_FOUND, "no such token")
        return pb.RevokeTokenResponse()

    @rpc
    async def ExtendToken(
        self, request: pb.ExtendTokenRequest, context: grpc.aio.ServicerContext
    ) -> pb.ExtendTokenResponse:
        """Move one of the caller's token's expiry later by some days."""
        caller = await self.caller(context)

        token_id = validation.token_id(request.token_id)
        days = validation.days(request.days, "days")
        token = await self.s.store.get_api_token(token_id)
        if token is None or token.user_id != caller.user.id:
            raise errors.NotFound(errors.TOKEN_NOT_FOUND, "no such token")

        now = self.s.clock.now()
        expires = max(token.expire_time, now) + datetime.timedelta(days=days)
        extended = await self.s.store.extend_token(
            token_id, expires, actor=actor(caller), now=now
        )
        return pb.ExtendTokenResponse(token_info=convert.token_info(extended, now))


def encode_page_token(last_email: str) -> str:
    """Make the opaque token of the page after the one ending at last_email."""
    key = last_email.strip().lower().encode("utf-8")
    return base64.urlsafe_b64encode(key).decode("ascii")


def decode_page_token(page_token: str) -> str:
    """Read a page token back into the folded email it continues after."""
    if not page_token:
        return ""
    if len(page_token) > 512:
        raise errors.InvalidArgument(
            errors.FIELD_INVALID, "page_token", "is not a token from ListUsers"
        )
    try:
        # validate: without it, characters outside the alphabet are dropped
        # silently and a mangled token reads as some other position.
        raw = base64.b64decode(
            page_token.encode("ascii"), altchars=b"-_", validate=True
        )
        after = raw.decode("utf-8")
    except (binascii.Error, UnicodeError, ValueError):
        raise errors.InvalidArgument(
            errors.FIELD_INVALID, "page_token", "is not a token from ListUsers"
        ) from None

    # A token of ours holds a checked email, which has no control or space
    # characters; a forged one with NUL would make PostgreSQL fail the query.
    if any(unicodedata.category(char).startswith(("C", "Z")) for char in after):
        raise errors.InvalidArgument(
            errors.FIELD_INVALID, "page_token", "is not a token from ListUsers"
        )
    return after
