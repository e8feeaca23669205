"""Every status and every reason the service sends maps to its own exception.

The blocking client is driven through grpcio-testing's channel here; the
asyncio client's mapping is tested against a scripted server in
test_client_async.py.
"""

from concurrent import futures

import grpc
import pytest
from client_fakes import KEY, SERVICE, STATUS_CLASSES, reason_cases, rich_trailers
from grpc_testing import channel, strict_real_time

import tecken_identity
from tecken_identity import IdentityClient, IdentityError
from tecken_identity._errors import from_status
from tecken_identity._generated import identity_pb2 as pb

DESIGN_TABLE = {
    grpc.StatusCode.INVALID_ARGUMENT: (
        "TOKEN_MALFORMED",
        "EMAIL_INVALID",
        "PERMISSION_UNKNOWN",
        "FIELD_INVALID",
    ),
    grpc.StatusCode.UNAUTHENTICATED: ("TOKEN_NOT_FOUND", "TOKEN_EXPIRED"),
    grpc.StatusCode.PERMISSION_DENIED: (
        "USER_INACTIVE",
        "USER_BLOCKED",
        "PERMISSION_MISSING",
    ),
    grpc.StatusCode.NOT_FOUND: ("USER_NOT_FOUND", "TOKEN_NOT_FOUND"),
    grpc.StatusCode.UNAVAILABLE: ("AUTH0_UNAVAILABLE",),
    grpc.StatusCode.FAILED_PRECONDITION: ("LOGIN_STATE_INVALID",),
}


def fail_validate_token(code, trailers=(), details="it failed"):
    """Make a ValidateToken call that the server side fails; return the error."""
    testing = channel([SERVICE], strict_real_time())
    client = IdentityClient(key=KEY, channel=testing)
    future = start_call(client)
    _, _, rpc = testing.take_unary_unary(SERVICE.methods_by_name["ValidateToken"])
    rpc.terminate(None, trailers, code, details)

    error = future.exception(timeout=10)
    assert error is not None
    return error


def start_call(client):
    """Start a ValidateToken call in a worker thread; return its future."""
    pool = futures.ThreadPoolExecutor(max_workers=1)
    future = pool.submit(client.validate_token, KEY)
    pool.shutdown(wait=False)
    return future


@pytest.mark.parametrize("code", list(STATUS_CLASSES), ids=lambda code: code.name)
def test_every_status_has_its_own_class(code):
    error = fail_validate_token(code)

    assert type(error).__name__ == STATUS_CLASSES[code]
    assert type(error).code is code
    assert isinstance(error, IdentityError)
    assert error.reason == ""


def test_the_status_classes_are_all_different():
    assert len(set(STATUS_CLASSES.values())) == len(STATUS_CLASSES) == 16


@pytest.mark.parametrize(
    ("code", "reason", "name"), list(reason_cases()), ids=lambda value: str(value)
)
def test_every_reason_has_its_own_class_under_its_status(code, reason, name):
    error = fail_validate_token(code, rich_trailers(code, reason, metadata={"k": "v"}))

    assert type(error).__name__ == name
    assert isinstance(error, getattr(tecken_identity, STATUS_CLASSES[code]))
    assert (error.reason, error.metadata) == (reason, {"k": "v"})


def test_every_row_of_designs_error_table_has_a_class():
    names = {(code, reason): name for code, reason, name in reason_cases()}

    for code, reasons in DESIGN_TABLE.items():
        for reason in reasons:
            assert (code, reason) in names

    rows = [
        (code, reason) for code, reasons in DESIGN_TABLE.items() for reason in reasons
    ]
    assert len({names[row] for row in rows}) == len(rows)


def test_a_token_not_found_is_two_classes_that_never_catch_each_other():
    unknown_key = from_status(
        grpc.StatusCode.UNAUTHENTICATED,
        "no such token",
        rich_trailers(grpc.StatusCode.UNAUTHENTICATED, "TOKEN_NOT_FOUND"),
    )
    unknown_id = from_status(
        grpc.StatusCode.NOT_FOUND,
        "no such token",
        rich_trailers(grpc.StatusCode.NOT_FOUND, "TOKEN_NOT_FOUND"),
    )

    assert isinstance(unknown_key, tecken_identity.TokenNotFound)
    assert not isinstance(unknown_key, tecken_identity.TokenIdNotFound)
    assert isinstance(unknown_id, tecken_identity.TokenIdNotFound)
    assert not isinstance(unknown_id, tecken_identity.TokenNotFound)


def test_an_unknown_reason_keeps_the_status_class_and_the_reason():
    code = grpc.StatusCode.PERMISSION_DENIED
    error = fail_validate_token(code, rich_trailers(code, "SOMETHING_NEW"))

    assert type(error) is tecken_identity.PermissionDenied
    assert error.reason == "SOMETHING_NEW"


def test_a_reason_from_another_domain_is_not_taken_for_ours():
    code = grpc.StatusCode.UNAUTHENTICATED
    trailers = rich_trailers(code, "TOKEN_EXPIRED", domain="proxy.example.com")

    error = fail_validate_token(code, trailers)

    assert type(error) is tecken_identity.Unauthenticated
    assert (error.reason, error.domain) == ("TOKEN_EXPIRED", "proxy.example.com")


def test_corrupt_status_details_leave_the_status_class():
    code = grpc.StatusCode.UNAUTHENTICATED
    trailers = (("grpc-status-details-bin", b"\xff\x00 not a status"),)

    error = fail_validate_token(code, trailers)

    assert type(error) is tecken_identity.Unauthenticated
    assert error.reason == ""


def test_named_metadata_is_read_for_the_caller():
    invalid = from_status(
        grpc.StatusCode.INVALID_ARGUMENT,
        "email: is empty",
        rich_trailers(
            grpc.StatusCode.INVALID_ARGUMENT,
            "EMAIL_INVALID",
            metadata={"field": "email"},
        ),
    )
    missing = from_status(
        grpc.StatusCode.PERMISSION_DENIED,
        "the token lacks ...",
        rich_trailers(
            grpc.StatusCode.PERMISSION_DENIED,
            "PERMISSION_MISSING",
            metadata={"missing": "tokens.manage_tokens,upload.upload_symbols"},
        ),
    )

    assert isinstance(invalid, tecken_identity.EmailInvalid)
    assert invalid.field == "email"
    assert isinstance(missing, tecken_identity.PermissionMissing)
    assert missing.missing == ("tokens.manage_tokens", "upload.upload_symbols")


def test_a_status_without_a_message_is_named_by_its_code():
    error = from_status(grpc.StatusCode.UNAVAILABLE, None, None)

    assert str(error) == "UNAVAILABLE"


def test_every_exception_is_exported_and_documented():
    for name in tecken_identity.__all__:
        value = getattr(tecken_identity, name)
        if isinstance(value, type) and issubclass(value, IdentityError):
            assert value.__doc__


def test_the_generated_messages_are_importable_from_the_package():
    assert pb.DESCRIPTOR.package == "tecken.identity.v1"
