"""Every field of every RPC, tried with values a careless or hostile caller sends.

Each answer must be a status of DESIGN's error table with an ErrorInfo reason
that fits it, or OK where the value is actually fine; never UNKNOWN, INTERNAL
or RESOURCE_EXHAUSTED. No error message may repeat what was sent, and the
server must keep serving. RPCs that need a credential are tried without one,
with a key of a user who holds nothing, and with a superuser's key.

One server serves the whole module, since one per case would take minutes.
It is built from the pieces the `stack` fixture uses, with module scope.
"""

import base64
import dataclasses
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from module_stack import running_stack
from tecken_identity._generated import identity_pb2 as pb

pytestmark = pytest.mark.e2e
# One server serves the module, on TEST_DATABASE_URL when it is set.
USES_TEST_DATABASE = True

DOMAIN = "identity.tecken.mozilla.org"
REDIRECT = "http://127.0.0.1:8765/callback"
UPLOAD = "upload.upload_symbols"
GRANTEE = "grantee@example.com"
MIB = 1 << 20
INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1

# The reasons each status may carry: DESIGN's table, plus the server's own
# CREDENTIAL_MISSING, ID_TOKEN_INVALID and the other upstreams it depends on.
REASONS = {
    grpc.StatusCode.INVALID_ARGUMENT: {
        "TOKEN_MALFORMED",
        "EMAIL_INVALID",
        "PERMISSION_UNKNOWN",
        "FIELD_INVALID",
    },
    grpc.StatusCode.UNAUTHENTICATED: {
        "TOKEN_NOT_FOUND",
        "TOKEN_EXPIRED",
        "CREDENTIAL_MISSING",
        "ID_TOKEN_INVALID",
    },
    grpc.StatusCode.PERMISSION_DENIED: {
        "USER_INACTIVE",
        "USER_BLOCKED",
        "PERMISSION_MISSING",
    },
    grpc.StatusCode.NOT_FOUND: {"USER_NOT_FOUND", "TOKEN_NOT_FOUND"},
    grpc.StatusCode.UNAVAILABLE: {
        "AUTH0_UNAVAILABLE",
        "PROVIDER_UNAVAILABLE",
        "DATABASE_UNAVAILABLE",
    },
    grpc.StatusCode.FAILED_PRECONDITION: {"LOGIN_STATE_INVALID"},
}


def b64(text: str | bytes) -> str:
    """Encode as ListUsers writes its page tokens."""
    raw = text.encode("utf-8") if isinstance(text, str) else text
    return base64.urlsafe_b64encode(raw).decode("ascii")


# Lone surrogates are left out: protobuf cannot encode them, so no client can
# send them.
STRINGS = {
    "empty": "",
    "whitespace": " \t\r\n ",
    "oversized": "x" * MIB,
    "oversized_emoji": "\U0001f600" * (MIB // 4),
    "umlauts": "ü@exämple.com",
    "emoji": "\U0001f600@example.com",
    "rtl_override": "\u202emoc.elpmaxe@ecila",
    "rtl_marks": "\u200falice@example.com\u200e",
    "zero_width": "al\u200bice@example.com",
    "fullwidth": "ａｌｉｃｅ@example.com",
    "nul": "alice\x00@example.com",
    "nul_only": "\x00",
    "escape": "\x07\x1b[31mred",
    "crlf": "ok\r\nset-cookie: a=b",
    "lucene": "alice@example.com OR email:*",
    "sql": "x' OR '1'='1' --",
    "path": "../../../etc/passwd",
    "format": "%s%n%x{0}${jndi:x}",
    "noncharacters": "\ufdd0\ufffe\uffff\ue000\U0010ffff",
    "dotted_capital_i": "\u0130" * 200 + "@example.com",
}
EMAILS = {
    "no_at": "alice.example.com",
    "no_local": "@example.com",
    "no_domain": "alice@",
    "two_ats": "alice@@example.com",
    "double_dot": "a..b@example.com",
    "no_dot_in_domain": "alice@localhost",
    "too_long": "a" * 250 + "@example.com",
    "quoted": '"alice"@example.com',
    "wildcard": "*@example.com",
    "ampersand": "x&email=alice@example.com",
}
TOKENS = {
    "not_hex": "g" * 64,
    "short": "a" * 31,
    "between": "a" * 48,
    "long": "a" * 65,
    "unknown": "b" * 64,
    "unknown_tecken": "c" * 32,
    "only_comment": "-" + "a" * 64,
    "long_comment": "a" * 64 + "-" + "x" * 2000,
    "unicode_comment": "a" * 64 + "-ü\U0001f600",
    "nul_comment": "a" * 64 + "-\x00",
    "arabic_digits": "\u0661" * 32,
    "spaced": "aaaa " * 13,
}
TOKEN_IDS = {
    "upper": "A" * 32,
    "short": "0" * 31,
    "long": "0" * 33,
    "not_hex": "z" * 32,
    "unknown": "0" * 32,
}
REDIRECTS = {
    "javascript": "javascript:alert(1)",
    "remote_http": "http://example.com/callback",
    "fragment": REDIRECT + "#x",
    "credentials": "http://user:pw@127.0.0.1:8765/callback",
    "relative": "/callback",
    "scheme_relative": "//127.0.0.1:8765/callback",
    "file": "file:///etc/passwd",
    "too_long": "https://127.0.0.1/" + "a" * 2000,
}
PAGE_TOKENS = {
    "encoded_nul": b64("\x00"),
    "encoded_control": b64("\x07bell@example.com"),
    "encoded_bad_utf8": b64(b"\xff\xfe"),
    "not_base64": "!!!!",
    "too_long": "A" * 513,
    "valid": b64("m@example.com"),
}
NOTES = {
    "too_long": "n" * 1001,
    "longest": "n" * 1000,
    "tab_and_newline": "a\tb\nc",
}
STATES = {"too_long": "s" * 129, "longest": "s" * 128}
CODES = {"too_long": "c" * 4097}
DAYS = {
    "zero": 0,
    "one": 1,
    "longest": 3650,
    "beyond": 3651,
    "negative": -1,
    "int32_min": INT32_MIN,
    "int32_max": INT32_MAX,
}
PAGE_SIZES = {
    "zero": 0,
    "largest": 1000,
    "beyond": 1001,
    "negative": -1,
    "int32_min": INT32_MIN,
    "int32_max": INT32_MAX,
}
TOKEN_STATES = {
    "all": pb.TOKEN_STATE_ALL,
    "unknown_99": 99,
    "negative": -1,
    "int32_min": INT32_MIN,
    "int32_max": INT32_MAX,
}
# 100k entries of a long name would pass the server's 2 MiB message limit,
# which gRPC itself enforces before any handler runs; short names keep the
# request inside it, so the count limit is what gets tested.
PERMISSION_LISTS = {
    "empty": [],
    "many_short": ["x"] * 100_000,
    "many_empty": [""] * 100_000,
    "duplicates": [UPLOAD, UPLOAD],
    "over_limit_known": [UPLOAD] * 65,
    "upper_case": [UPLOAD.upper()],
    "trailing_space": [UPLOAD + " "],
    "nul": [UPLOAD + "\x00"],
    "umlaut": ["üpload.upload_symbols"],
    "oversized": ["p" * MIB],
    "empty_name": [""],
    "unknown": ["admin.everything"],
}
BOOLS = {"true": True, "false": False}

# access is "open", "caller" (any valid credential) or "superuser".
RPCS: dict[str, tuple[str, dict[str, list[dict[str, Any]]]]] = {
    "StartLogin": ("open", {"redirect_uri": [STRINGS, REDIRECTS]}),
    "Login": (
        "open",
        {
            "code": [STRINGS, CODES],
            "state": [STRINGS, STATES],
            "redirect_uri": [STRINGS, REDIRECTS],
        },
    ),
    "Logout": ("open", {"token": [STRINGS, TOKENS]}),
    "ValidateToken": (
        "open",
        {"token": [STRINGS, TOKENS], "required_permissions": [PERMISSION_LISTS]},
    ),
    "SetPermissions": (
        "superuser",
        {
            "email": [STRINGS, EMAILS],
            "permissions": [PERMISSION_LISTS],
            "superuser": [BOOLS],
        },
    ),
    "SetActive": ("superuser", {"email": [STRINGS, EMAILS], "active": [BOOLS]}),
    "GetUser": ("superuser", {"email": [STRINGS, EMAILS]}),
    "ListUsers": (
        "superuser",
        {"page_size": [PAGE_SIZES], "page_token": [STRINGS, PAGE_TOKENS]},
    ),
    "IsBlocked": ("superuser", {"email": [STRINGS, EMAILS]}),
    "CreateToken": (
        "caller",
        {
            "permissions": [PERMISSION_LISTS],
            "expires_in_days": [DAYS],
            "notes": [STRINGS, NOTES],
        },
    ),
    "ListTokens": ("caller", {"state": [TOKEN_STATES]}),
    "RevokeToken": ("caller", {"token_id": [STRINGS, TOKEN_IDS]}),
    "ExtendToken": ("caller", {"token_id": [STRINGS, TOKEN_IDS], "days": [DAYS]}),
}


def cases() -> Iterator[Any]:
    """Yield one pytest param per RPC, field, value and credential."""
    for method, (access, fields) in RPCS.items():
        credentials = ["none"] if access == "open" else ["none", "user", "admin"]
        for field, catalogues in fields.items():
            for catalogue in catalogues:
                for label, value in catalogue.items():
                    for credential in credentials:
                        yield pytest.param(
                            method,
                            field,
                            value,
                            credential,
                            id=f"{method}-{field}-{label}-{credential}",
                        )


def pieces(value: Any) -> list[str]:
    """Return the strings sent that an error message must not repeat.

    Short ones and known permission names could appear in any message by
    chance, so only distinctive strings are kept.
    """
    strings = value if isinstance(value, list) else [value]
    return [
        text
        for text in dict.fromkeys(strings)
        if isinstance(text, str) and len(text.strip()) >= 5 and text != UPLOAD
    ]


DISTINCTIVE = sorted(
    {
        text
        for _, fields in RPCS.values()
        for catalogues in fields.values()
        for catalogue in catalogues
        for value in catalogue.values()
        for text in pieces(value)
        if len(text) < 4096
    }
)


@dataclasses.dataclass
class Sweep:
    """The module's server and the credentials and ids the cases use."""

    stack: Any
    user_key: str
    admin_token_id: str

    def key(self, credential: str) -> str | None:
        """Return the key a case sends as its caller's credential."""
        keys = {"none": None, "user": self.user_key, "admin": self.stack.admin_key}
        return keys[credential]

    def baseline(self, method: str) -> dict[str, Any]:
        """Return valid values for every field of method's request."""
        if method == "Login":
            started = self.stack.call(
                "StartLogin", pb.StartLoginRequest(redirect_uri=REDIRECT)
            )
            return {"code": "x" * 20, "state": started.state, "redirect_uri": REDIRECT}

        return {
            "StartLogin": {"redirect_uri": REDIRECT},
            "Logout": {"token": "d" * 64},
            "ValidateToken": {"token": self.stack.admin_key},
            "SetPermissions": {"email": GRANTEE, "permissions": [UPLOAD]},
            "SetActive": {"email": GRANTEE, "active": True},
            "GetUser": {"email": GRANTEE},
            "ListUsers": {"page_size": 10},
            "IsBlocked": {"email": GRANTEE},
            "CreateToken": {
                "permissions": [UPLOAD],
                "expires_in_days": 1,
                "notes": "sweep",
            },
            "ListTokens": {"state": pb.TOKEN_STATE_ACTIVE},
            "RevokeToken": {"token_id": "0" * 32},
            "ExtendToken": {"token_id": self.admin_token_id, "days": 1},
        }[method]


@pytest.fixture(scope="module")
def sweep(request, provider, auth0_process, tmp_path_factory) -> Iterator[Sweep]:
    """Start one identity server for the module; yield what the cases need."""
    with running_stack(
        request, tmp_path_factory, provider, auth0_process, "hostile"
    ) as stack:
        admin = stack.call(
            "ValidateToken", pb.ValidateTokenRequest(token=stack.admin_key)
        )
        stack.call(
            "SetPermissions",
            pb.SetPermissionsRequest(email=GRANTEE, permissions=[UPLOAD]),
            stack.admin_key,
        )
        user_key = stack.sign_in("nobody-special@example.com").session_token
        yield Sweep(stack=stack, user_key=user_key, admin_token_id=admin.token_id)


def error_info(error: grpc.RpcError) -> error_details_pb2.ErrorInfo | None:
    """Return the ErrorInfo detail of a failed call, if it has one."""
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            for detail in status_pb2.Status.FromString(value).details:
                info = error_details_pb2.ErrorInfo()
                if detail.Unpack(info):
                    return info
    return None


def send(sweep: Sweep, method: str, fields: dict[str, Any], credential: str):
    """Make the call; return (code, ErrorInfo or None, message)."""
    request = getattr(pb, f"{method}Request")(**fields)
    try:
        sweep.stack.call(method, request, sweep.key(credential), timeout=30)
    except grpc.RpcError as error:
        return error.code(), error_info(error), error.details() or ""
    return grpc.StatusCode.OK, None, ""


@pytest.mark.parametrize(("method", "field", "value", "credential"), list(cases()))
def test_hostile_value_gets_an_answer_from_the_table(
    sweep, method, field, value, credential
):
    access = RPCS[method][0]
    fields = sweep.baseline(method) | {field: value}

    code, info, message = send(sweep, method, fields, credential)

    assert sweep.stack.server.process.poll() is None, "the server stopped"
    if code == grpc.StatusCode.OK:
        return
    assert code in REASONS, (code, message)
    assert info is not None, "no ErrorInfo detail"
    assert info.domain == DOMAIN
    assert info.reason in REASONS[code], (code, info.reason)
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        assert info.metadata["field"].split("[")[0] == field

    # Authorization comes before validation, so a stranger learns nothing
    # about the input from the answer.
    if access != "open" and credential == "none":
        assert (code, info.reason) == (
            grpc.StatusCode.UNAUTHENTICATED,
            "CREDENTIAL_MISSING",
        )
    if access == "superuser" and credential == "user":
        assert (code, info.reason) == (
            grpc.StatusCode.PERMISSION_DENIED,
            "PERMISSION_MISSING",
        )

    assert len(message) < 500
    shown = [message, *info.metadata.values()]
    for text in pieces(value):
        assert not any(text in part for part in shown), "the error repeats the value"
    assert sweep.stack.admin_key not in message


# gRPC clients refuse control characters and non-ASCII in metadata values
# before sending, so those never reach the server and are not tried here.
@pytest.mark.parametrize(
    "header",
    [
        "Bearer ",
        "Bearer",
        "Basic YWxpY2U6c2VjcmV0",
        "Bearer " + "g" * 64,
        "Bearer " + "b" * 64,
        "Bearer " + "x" * 8000,
        "BEARER " + "b" * 64,
        "Token " + "b" * 64,
    ],
    ids=[
        "empty",
        "no_space",
        "basic",
        "not_hex",
        "unknown",
        "oversized",
        "upper_case_scheme",
        "other_scheme",
    ],
)
def test_hostile_credential_is_refused_without_echo(sweep, header):
    with pytest.raises(grpc.RpcError) as caught:
        sweep.stack.stub.GetUser(
            pb.GetUserRequest(email=GRANTEE),
            metadata=(("authorization", header),),
            timeout=30,
        )

    error = caught.value
    info = error_info(error)
    assert info is not None
    assert error.code() in (
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert info.reason in REASONS[error.code()]
    secret = header.partition(" ")[2]
    assert not secret or secret not in (error.details() or "")


def test_server_still_serves_after_the_sweep(sweep):
    stack = sweep.stack
    health = health_pb2_grpc.HealthStub(stack.channel)

    answer = health.Check(health_pb2.HealthCheckRequest(), timeout=10)
    admin = stack.call("ValidateToken", pb.ValidateTokenRequest(token=stack.admin_key))

    assert stack.server.process.poll() is None
    assert answer.status == health_pb2.HealthCheckResponse.SERVING
    assert admin.user.superuser
    # The log shows no unexpected error, and neither a key nor what was sent.
    log = stack.server.text()
    assert "Traceback" not in log
    assert stack.admin_key not in log
    assert sweep.user_key not in log
    leaked = [text for text in DISTINCTIVE if text in log]
    assert not leaked
