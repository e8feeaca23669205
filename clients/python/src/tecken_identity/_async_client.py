"""AsyncIdentityClient, the asyncio client: the same calls as IdentityClient."""

from collections.abc import AsyncIterator, Iterable
from types import TracebackType
from typing import Self, TypeVar

import grpc

from . import _channel, _convert, _errors
from . import _models as models
from ._generated import identity_pb2 as pb
from ._generated import identity_pb2_grpc as pb_grpc

Request = TypeVar("Request")
Response = TypeVar("Response")


class AsyncIdentityClient:
    """An asyncio client of the Tecken identity service.

    It opens one channel at construction and reuses it for every call; close
    it with `close()` or use the client as a context manager. `key` is the
    caller's own API or session key, sent with every call as
    `authorization: Bearer KEY`; ValidateToken, StartLogin and Login need none.

    Args:
        target: the server's address, `host:port`.
        key: the caller's own key, if the calls made need one.
        timeout: the deadline of each call in seconds, unless a call gives its
            own.
        tls: whether to use TLS, trusting the system's certificate roots.
        root_certificates: PEM certificates of a custom CA to trust instead;
            giving them implies TLS.
        certificate_chain: a PEM client certificate (and its chain), for a
            server that asks callers for one; implies TLS.
        private_key: the PEM private key of that certificate.
        retry: how UNAVAILABLE is retried; `RetryPolicy(max_attempts=1)` turns
            retries off.
        options: more gRPC channel options, after (so over) the client's own.
        channel: a channel to use instead of opening one; target, the TLS
            options, retry and options are then ignored, and the client closes
            the channel when it is closed.

    Without TLS the key travels in plain text: use TLS for any target that is
    not on the same host or inside a network that encrypts for you.
    """

    def __init__(
        self,
        target: str = _channel.DEFAULT_TARGET,
        *,
        key: str | None = None,
        timeout: float = _channel.DEFAULT_TIMEOUT,
        tls: bool = False,
        root_certificates: bytes | None = None,
        certificate_chain: bytes | None = None,
        private_key: bytes | None = None,
        retry: _channel.RetryPolicy | None = None,
        options: _channel.ChannelOptions = (),
        channel: grpc.aio.Channel | None = None,
    ) -> None:
        self.target = target
        self.timeout = timeout
        self._metadata = _channel.call_metadata(key)
        self._channel = channel or open_channel(
            target,
            credentials=_channel.credentials(
                tls, root_certificates, certificate_chain, private_key
            ),
            retry=retry or _channel.RetryPolicy(),
            options=options,
        )
        self._stub = pb_grpc.IdentityServiceStub(self._channel)

    def __repr__(self) -> str:
        # The key stays out of the repr, so a logged client leaks nothing.
        return f"AsyncIdentityClient(target={self.target!r}, timeout={self.timeout!r})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the channel; calls made after this fail."""
        await self._channel.close()

    async def _call(
        self,
        method: "grpc.aio.UnaryUnaryMultiCallable[Request, Response]",
        request: Request,
        timeout: float | None,
    ) -> Response:
        try:
            return await method(
                request,
                timeout=self.timeout if timeout is None else timeout,
                metadata=self._metadata,
            )
        except grpc.RpcError as error:
            raise _errors.from_rpc_error(error) from error

    async def start_login(
        self, redirect_uri: str, *, timeout: float | None = None
    ) -> models.LoginStart:
        """Begin an OpenID Connect sign-in.

        Args:
            redirect_uri: where the provider sends the browser back; https, or
                http on a loopback address.

        Returns:
            The provider URL to send the browser to and the state to pass to
            `login`.
        """
        request = pb.StartLoginRequest(redirect_uri=redirect_uri)
        response = await self._call(self._stub.StartLogin, request, timeout)
        return _convert.login_start(response)

    async def login(
        self, code: str, state: str, redirect_uri: str, *, timeout: float | None = None
    ) -> models.Session:
        """Finish a sign-in with the code and state the provider returned.

        This call is never retried: its state works once.

        Returns:
            The new session token, its expiry and the signed-in user.

        Raises:
            LoginStateInvalid: the state is unknown, used or expired.
        """
        request = pb.LoginRequest(code=code, state=state, redirect_uri=redirect_uri)
        response = await self._call(self._stub.Login, request, timeout)
        return _convert.session(response)

    async def logout(self, token: str, *, timeout: float | None = None) -> None:
        """End a session token returned by `login`.

        Raises:
            TokenNotFound: no live session has this token.
        """
        request = pb.LogoutRequest(token=token)
        await self._call(self._stub.Logout, request, timeout)

    async def validate_token(
        self,
        token: str,
        required_permissions: Iterable[str] = (),
        *,
        timeout: float | None = None,
    ) -> models.ValidatedToken:
        """Check a session or API token; anything after its first hyphen is ignored.

        Args:
            token: the token to check, as the request carried it.
            required_permissions: permissions the token must carry.

        Returns:
            The token's owner, its effective permissions, kind and expiry.

        Raises:
            TokenMalformed, TokenNotFound, TokenExpired, UserInactive,
            UserBlocked, PermissionMissing, Auth0Unavailable.
        """
        request = pb.ValidateTokenRequest(
            token=token, required_permissions=list(required_permissions)
        )
        response = await self._call(self._stub.ValidateToken, request, timeout)
        return _convert.validated_token(response)

    async def set_permissions(
        self,
        email: str,
        permissions: Iterable[str],
        *,
        superuser: bool | None = None,
        timeout: float | None = None,
    ) -> models.UserChange:
        """Replace a user's permissions, creating the user if the email is new.

        Superusers only.

        Args:
            email: the user's email.
            permissions: the new set; it replaces the current one.
            superuser: make the user a superuser or not; None leaves it as is.

        Returns:
            The user after the change, and whether the call created them.
        """
        request = pb.SetPermissionsRequest(
            email=email, permissions=list(permissions), superuser=superuser
        )
        response = await self._call(self._stub.SetPermissions, request, timeout)
        return _convert.user_change(response)

    async def set_active(
        self, email: str, active: bool, *, timeout: float | None = None
    ) -> models.User:
        """Activate or deactivate a user. Superusers only.

        A deactivation is not undone by the user signing in again.

        Raises:
            UserNotFound: no user has this email.
        """
        request = pb.SetActiveRequest(email=email, active=active)
        response = await self._call(self._stub.SetActive, request, timeout)
        return _convert.user(response.user)

    async def get_user(
        self, email: str, *, timeout: float | None = None
    ) -> models.User:
        """Return the user with this email. Superusers only.

        Raises:
            UserNotFound: no user has this email.
        """
        request = pb.GetUserRequest(email=email)
        response = await self._call(self._stub.GetUser, request, timeout)
        return _convert.user(response.user)

    async def list_users(
        self,
        *,
        page_size: int = 0,
        page_token: str = "",
        timeout: float | None = None,
    ) -> models.UserPage:
        """Return one page of users, ordered by email. Superusers only.

        Args:
            page_size: the most users to return; 0 means the server's default.
            page_token: the previous page's `next_page_token`; empty at first.
        """
        request = pb.ListUsersRequest(page_size=page_size, page_token=page_token)
        response = await self._call(self._stub.ListUsers, request, timeout)
        return _convert.user_page(response)

    async def iter_users(
        self, *, page_size: int = 0, timeout: float | None = None
    ) -> AsyncIterator[models.User]:
        """Yield every user, ordered by email, fetching a page at a time.

        Superusers only. Each page is one call with its own deadline.
        """
        page_token = ""
        while True:
            page = await self.list_users(
                page_size=page_size, page_token=page_token, timeout=timeout
            )
            for user in page.users:
                yield user

            if not page.next_page_token:
                return
            page_token = page.next_page_token

    async def is_blocked(
        self, email: str, *, timeout: float | None = None
    ) -> models.BlockStatus:
        """Ask Auth0, live, whether this email is blocked; nothing changes.

        Superusers only.

        Raises:
            Auth0Unavailable: Auth0 did not answer.
        """
        request = pb.IsBlockedRequest(email=email)
        response = await self._call(self._stub.IsBlocked, request, timeout)
        return _convert.block_status(response)

    async def create_token(
        self,
        permissions: Iterable[str],
        *,
        expires_in_days: int | None = None,
        notes: str = "",
        timeout: float | None = None,
    ) -> models.NewToken:
        """Create an API token for the caller, who needs `tokens.manage_tokens`.

        Args:
            permissions: the token's permissions, a subset of the caller's.
            expires_in_days: days until it expires; None means the server's
                default (365 unless configured otherwise).
            notes: free text to tell tokens apart.

        Returns:
            The key, which no other call returns, and the token's description.

        Raises:
            PermissionMissing: the caller cannot create tokens, or asked for a
                permission they do not hold.
        """
        request = pb.CreateTokenRequest(
            permissions=list(permissions),
            expires_in_days=expires_in_days or 0,
            notes=notes,
        )
        response = await self._call(self._stub.CreateToken, request, timeout)
        return _convert.new_token(response)

    async def list_tokens(
        self,
        state: models.TokenState | str = models.TokenState.ACTIVE,
        *,
        timeout: float | None = None,
    ) -> list[models.TokenInfo]:
        """Return the caller's own API tokens, newest first, never their keys.

        Args:
            state: which tokens: active (the default), expired or all.
        """
        request = pb.ListTokensRequest(state=_convert.token_state(state))
        response = await self._call(self._stub.ListTokens, request, timeout)
        return [_convert.token_info(item) for item in response.tokens]

    async def revoke_token(
        self, token_id: str, *, timeout: float | None = None
    ) -> None:
        """Revoke one of the caller's API tokens; a superuser may revoke any.

        Raises:
            TokenIdNotFound: the id names no token the caller may revoke.
        """
        request = pb.RevokeTokenRequest(token_id=token_id)
        await self._call(self._stub.RevokeToken, request, timeout)

    async def extend_token(
        self, token_id: str, days: int, *, timeout: float | None = None
    ) -> models.TokenInfo:
        """Move one of the caller's API tokens' expiry later.

        Args:
            token_id: the token to extend.
            days: days to add to its expiry, or to now if it has expired.

        Returns:
            The token after the change.

        Raises:
            TokenIdNotFound: the id names none of the caller's tokens.
        """
        request = pb.ExtendTokenRequest(token_id=token_id, days=days)
        response = await self._call(self._stub.ExtendToken, request, timeout)
        return _convert.token_info(response.token_info)


def open_channel(
    target: str,
    *,
    credentials: grpc.ChannelCredentials | None,
    retry: _channel.RetryPolicy,
    options: _channel.ChannelOptions,
) -> grpc.aio.Channel:
    """Open the asyncio channel of a client."""
    all_options = _channel.channel_options(retry, options)
    if credentials is None:
        return grpc.aio.insecure_channel(target, options=all_options)
    return grpc.aio.secure_channel(target, credentials, options=all_options)
