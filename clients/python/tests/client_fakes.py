"""What the client's unit tests script the server side with.

`CASES` holds one exchange per RPC: the client call, the request the server
must see, the response it sends and the value the client must return. The
same table drives the blocking client through grpcio-testing's channel and the
asyncio client through `ScriptedServer`, a real gRPC server on a free loopback
port whose answers the test sets in advance.
"""

import dataclasses
import datetime
import threading
from collections.abc import Iterable, Mapping
from concurrent import futures
from typing import Any

import grpc
from google.protobuf import any_pb2, timestamp_pb2
from google.protobuf import message as protobuf_message
from google.rpc import error_details_pb2, status_pb2

from tecken_identity import (
    BlockStatus,
    InactiveReason,
    LoginStart,
    NewToken,
    Session,
    TokenInfo,
    TokenKind,
    TokenState,
    User,
    UserChange,
    UserPage,
    ValidatedToken,
)
from tecken_identity._generated import identity_pb2 as pb

SERVICE_NAME = "tecken.identity.v1.IdentityService"
SERVICE = pb.DESCRIPTOR.services_by_name["IdentityService"]
DOMAIN = "identity.tecken.mozilla.org"
KEY = "a" * 64
UTC = datetime.UTC

CREATED = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
SIGNED_IN = datetime.datetime(2026, 2, 3, 4, 5, 6, tzinfo=UTC)
EXPIRES = datetime.datetime(2027, 1, 2, 3, 4, 5, tzinfo=UTC)


def timestamp(value: datetime.datetime) -> timestamp_pb2.Timestamp:
    """Return a datetime as a Timestamp."""
    message = timestamp_pb2.Timestamp()
    message.FromDatetime(value)
    return message


USER_MESSAGE = pb.User(
    email="Alice@Example.com",
    active=False,
    superuser=False,
    permissions=["tokens.manage_tokens", "upload.upload_symbols"],
    inactive_reason=pb.INACTIVE_REASON_DEACTIVATED,
    create_time=timestamp(CREATED),
    last_login_time=timestamp(SIGNED_IN),
)
USER = User(
    email="Alice@Example.com",
    active=False,
    superuser=False,
    permissions=("tokens.manage_tokens", "upload.upload_symbols"),
    inactive_reason=InactiveReason.DEACTIVATED,
    create_time=CREATED,
    last_login_time=SIGNED_IN,
    auth0_check_time=None,
)
TOKEN_MESSAGE = pb.TokenInfo(
    token_id="0123456789abcdef0123456789abcdef",
    key_prefix="abcd",
    permissions=["upload.upload_symbols"],
    notes="upload script",
    create_time=timestamp(CREATED),
    expire_time=timestamp(EXPIRES),
    revoke_time=timestamp(SIGNED_IN),
    expired=False,
)
TOKEN = TokenInfo(
    token_id="0123456789abcdef0123456789abcdef",
    key_prefix="abcd",
    permissions=("upload.upload_symbols",),
    notes="upload script",
    create_time=CREATED,
    expire_time=EXPIRES,
    revoke_time=SIGNED_IN,
    expired=False,
)


@dataclasses.dataclass(frozen=True)
class Case:
    """One RPC's exchange, as the client makes it and the server sees it."""

    method: str
    call: str
    args: tuple[Any, ...]
    kwargs: Mapping[str, Any]
    request: protobuf_message.Message
    response: protobuf_message.Message
    result: Any


CASES = [
    Case(
        "StartLogin",
        "start_login",
        ("http://127.0.0.1:8765/callback",),
        {},
        pb.StartLoginRequest(redirect_uri="http://127.0.0.1:8765/callback"),
        pb.StartLoginResponse(authorization_url="https://sso.example/a", state="s1"),
        LoginStart(authorization_url="https://sso.example/a", state="s1"),
    ),
    Case(
        "Login",
        "login",
        ("the-code", "s1", "http://127.0.0.1:8765/callback"),
        {},
        pb.LoginRequest(
            code="the-code", state="s1", redirect_uri="http://127.0.0.1:8765/callback"
        ),
        pb.LoginResponse(
            session_token=KEY,
            expire_time=timestamp(EXPIRES),
            user=USER_MESSAGE,
            created=True,
        ),
        Session(session_token=KEY, expire_time=EXPIRES, user=USER, created=True),
    ),
    Case(
        "Logout",
        "logout",
        (KEY,),
        {},
        pb.LogoutRequest(token=KEY),
        pb.LogoutResponse(),
        None,
    ),
    Case(
        "ValidateToken",
        "validate_token",
        (f"{KEY}-uploadscript", ["upload.upload_symbols"]),
        {},
        pb.ValidateTokenRequest(
            token=f"{KEY}-uploadscript", required_permissions=["upload.upload_symbols"]
        ),
        pb.ValidateTokenResponse(
            user=USER_MESSAGE,
            permissions=["upload.upload_symbols"],
            kind=pb.TOKEN_KIND_API,
            expire_time=timestamp(EXPIRES),
            token_id=TOKEN.token_id,
        ),
        ValidatedToken(
            user=USER,
            permissions=("upload.upload_symbols",),
            kind=TokenKind.API,
            expire_time=EXPIRES,
            token_id=TOKEN.token_id,
        ),
    ),
    Case(
        "SetPermissions",
        "set_permissions",
        ("alice@example.com", ["upload.upload_symbols"]),
        {"superuser": False},
        pb.SetPermissionsRequest(
            email="alice@example.com",
            permissions=["upload.upload_symbols"],
            superuser=False,
        ),
        pb.SetPermissionsResponse(user=USER_MESSAGE, created=True),
        UserChange(user=USER, created=True),
    ),
    Case(
        "SetActive",
        "set_active",
        ("alice@example.com", False),
        {},
        pb.SetActiveRequest(email="alice@example.com", active=False),
        pb.SetActiveResponse(user=USER_MESSAGE),
        USER,
    ),
    Case(
        "GetUser",
        "get_user",
        ("alice@example.com",),
        {},
        pb.GetUserRequest(email="alice@example.com"),
        pb.GetUserResponse(user=USER_MESSAGE),
        USER,
    ),
    Case(
        "ListUsers",
        "list_users",
        (),
        {"page_size": 2, "page_token": "cGFnZQ=="},
        pb.ListUsersRequest(page_size=2, page_token="cGFnZQ=="),
        pb.ListUsersResponse(users=[USER_MESSAGE], next_page_token="bmV4dA=="),
        UserPage(users=(USER,), next_page_token="bmV4dA=="),
    ),
    Case(
        "IsBlocked",
        "is_blocked",
        ("alice@example.com",),
        {},
        pb.IsBlockedRequest(email="alice@example.com"),
        pb.IsBlockedResponse(status=pb.BLOCK_STATUS_BLOCKED),
        BlockStatus.BLOCKED,
    ),
    Case(
        "CreateToken",
        "create_token",
        (["upload.upload_symbols"],),
        {"expires_in_days": 30, "notes": "upload script"},
        pb.CreateTokenRequest(
            permissions=["upload.upload_symbols"],
            expires_in_days=30,
            notes="upload script",
        ),
        pb.CreateTokenResponse(token=KEY, token_info=TOKEN_MESSAGE),
        NewToken(token=KEY, info=TOKEN),
    ),
    Case(
        "ListTokens",
        "list_tokens",
        (TokenState.ALL,),
        {},
        pb.ListTokensRequest(state=pb.TOKEN_STATE_ALL),
        pb.ListTokensResponse(tokens=[TOKEN_MESSAGE, TOKEN_MESSAGE]),
        [TOKEN, TOKEN],
    ),
    Case(
        "RevokeToken",
        "revoke_token",
        (TOKEN.token_id,),
        {},
        pb.RevokeTokenRequest(token_id=TOKEN.token_id),
        pb.RevokeTokenResponse(),
        None,
    ),
    Case(
        "ExtendToken",
        "extend_token",
        (TOKEN.token_id, 10),
        {},
        pb.ExtendTokenRequest(token_id=TOKEN.token_id, days=10),
        pb.ExtendTokenResponse(token_info=TOKEN_MESSAGE),
        TOKEN,
    ),
]


def case(method: str) -> Case:
    """Return the exchange of one RPC."""
    return next(item for item in CASES if item.method == method)


def status_details(
    code: grpc.StatusCode,
    reason: str,
    *,
    domain: str = DOMAIN,
    metadata: Mapping[str, str] | None = None,
) -> bytes:
    """Return a serialized google.rpc.Status carrying one ErrorInfo."""
    detail = any_pb2.Any()
    detail.Pack(
        error_details_pb2.ErrorInfo(
            reason=reason, domain=domain, metadata=dict(metadata or {})
        )
    )
    status = status_pb2.Status(code=code.value[0], message="m", details=[detail])
    return status.SerializeToString()


def rich_trailers(
    code: grpc.StatusCode,
    reason: str,
    *,
    domain: str = DOMAIN,
    metadata: Mapping[str, str] | None = None,
) -> tuple[tuple[str, bytes], ...]:
    """Return the trailing metadata the service sends with a failure."""
    details = status_details(code, reason, domain=domain, metadata=metadata)
    return (("grpc-status-details-bin", details),)


@dataclasses.dataclass(frozen=True)
class Failure:
    """A scripted failure: the status, and the ErrorInfo reason if any."""

    code: grpc.StatusCode
    reason: str = ""
    metadata: Mapping[str, str] = dataclasses.field(default_factory=dict)
    message: str = "scripted failure"


# A scripted answer that never comes: the handler waits until the client's
# deadline or cancellation ends the call.
HANG = object()


@dataclasses.dataclass
class Received:
    """One call as the scripted server received it."""

    method: str
    request: protobuf_message.Message
    metadata: dict[str, str]
    time_remaining: float | None


class ScriptedServer:
    """A real gRPC server on a free loopback port that answers from a script.

    `script(method, *answers)` queues answers for a method: a response message,
    a Failure or HANG; each call takes the next one, and the last one repeats.
    Every call received is kept in `received`.
    """

    def __init__(self, credentials: grpc.ServerCredentials | None = None) -> None:
        self.received: list[Received] = []
        self._answers: dict[str, list[Any]] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        self.server.add_generic_rpc_handlers([self._handlers()])

        address = "127.0.0.1:0"
        if credentials is None:
            self.port = self.server.add_insecure_port(address)
        else:
            self.port = self.server.add_secure_port(address, credentials)
        self.target = f"127.0.0.1:{self.port}"

    def _handlers(self) -> grpc.GenericRpcHandler:
        handlers = {}
        for method in SERVICE.methods:
            request_class = getattr(pb, method.input_type.name)
            response_class = getattr(pb, method.output_type.name)
            handlers[method.name] = grpc.unary_unary_rpc_method_handler(
                self._answerer(method.name),
                request_deserializer=request_class.FromString,
                response_serializer=response_class.SerializeToString,
            )
        return grpc.method_handlers_generic_handler(SERVICE_NAME, handlers)

    def _answerer(self, method: str) -> Any:
        def answer(request: Any, context: grpc.ServicerContext) -> Any:
            metadata = {
                key: value
                for key, value in context.invocation_metadata()
                if isinstance(value, str)
            }
            with self._lock:
                self.received.append(
                    Received(method, request, metadata, context.time_remaining())
                )
                queue = self._answers.get(method) or [
                    Failure(grpc.StatusCode.UNIMPLEMENTED)
                ]
                outcome = queue.pop(0) if len(queue) > 1 else queue[0]

            if outcome is HANG:
                done = threading.Event()
                context.add_callback(done.set)
                done.wait(timeout=60)
                return None
            if isinstance(outcome, Failure):
                if outcome.reason:
                    context.set_trailing_metadata(
                        rich_trailers(
                            outcome.code, outcome.reason, metadata=outcome.metadata
                        )
                    )
                context.abort(outcome.code, outcome.message)
            return outcome

        return answer

    def script(self, method: str, *answers: Any) -> None:
        """Set the answers of method's next calls."""
        with self._lock:
            self._answers[method] = list(answers)

    def calls(self, method: str) -> list[Received]:
        """Return the calls received for method, oldest first."""
        with self._lock:
            return [call for call in self.received if call.method == method]

    def start(self) -> "ScriptedServer":
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop(grace=None).wait()


def reason_cases() -> Iterable[tuple[grpc.StatusCode, str, str]]:
    """Yield every (status, reason) the service sends, with its class name."""
    codes = grpc.StatusCode
    yield from (
        (codes.INVALID_ARGUMENT, "TOKEN_MALFORMED", "TokenMalformed"),
        (codes.INVALID_ARGUMENT, "EMAIL_INVALID", "EmailInvalid"),
        (codes.INVALID_ARGUMENT, "PERMISSION_UNKNOWN", "PermissionUnknown"),
        (codes.INVALID_ARGUMENT, "FIELD_INVALID", "FieldInvalid"),
        (codes.UNAUTHENTICATED, "TOKEN_NOT_FOUND", "TokenNotFound"),
        (codes.UNAUTHENTICATED, "TOKEN_EXPIRED", "TokenExpired"),
        (codes.UNAUTHENTICATED, "CREDENTIAL_MISSING", "CredentialMissing"),
        (codes.UNAUTHENTICATED, "ID_TOKEN_INVALID", "IdTokenInvalid"),
        (codes.PERMISSION_DENIED, "USER_INACTIVE", "UserInactive"),
        (codes.PERMISSION_DENIED, "USER_BLOCKED", "UserBlocked"),
        (codes.PERMISSION_DENIED, "PERMISSION_MISSING", "PermissionMissing"),
        (codes.NOT_FOUND, "USER_NOT_FOUND", "UserNotFound"),
        (codes.NOT_FOUND, "TOKEN_NOT_FOUND", "TokenIdNotFound"),
        (codes.FAILED_PRECONDITION, "LOGIN_STATE_INVALID", "LoginStateInvalid"),
        (codes.UNAVAILABLE, "AUTH0_UNAVAILABLE", "Auth0Unavailable"),
        (codes.UNAVAILABLE, "PROVIDER_UNAVAILABLE", "ProviderUnavailable"),
        (codes.UNAVAILABLE, "DATABASE_UNAVAILABLE", "DatabaseUnavailable"),
        (codes.INTERNAL, "INTERNAL", "Internal"),
    )


STATUS_CLASSES = {
    grpc.StatusCode.CANCELLED: "Cancelled",
    grpc.StatusCode.UNKNOWN: "Unknown",
    grpc.StatusCode.INVALID_ARGUMENT: "InvalidArgument",
    grpc.StatusCode.DEADLINE_EXCEEDED: "DeadlineExceeded",
    grpc.StatusCode.NOT_FOUND: "NotFound",
    grpc.StatusCode.ALREADY_EXISTS: "AlreadyExists",
    grpc.StatusCode.PERMISSION_DENIED: "PermissionDenied",
    grpc.StatusCode.RESOURCE_EXHAUSTED: "ResourceExhausted",
    grpc.StatusCode.FAILED_PRECONDITION: "FailedPrecondition",
    grpc.StatusCode.ABORTED: "Aborted",
    grpc.StatusCode.OUT_OF_RANGE: "OutOfRange",
    grpc.StatusCode.UNIMPLEMENTED: "Unimplemented",
    grpc.StatusCode.INTERNAL: "Internal",
    grpc.StatusCode.UNAVAILABLE: "Unavailable",
    grpc.StatusCode.DATA_LOSS: "DataLoss",
    grpc.StatusCode.UNAUTHENTICATED: "Unauthenticated",
}
