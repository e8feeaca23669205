"""Turning the service's errors into gRPC statuses, and the log line of each call.

This is the one place where a domain error becomes a status: every handler is
wrapped by `rpc`, which sends IdentityError as its code with a
`google.rpc.ErrorInfo` detail, turns a lost database into UNAVAILABLE, and logs
one line per call with the method, the status and the duration.
"""

import functools
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2

from . import errors
from .database import is_unavailable

logger = logging.getLogger("identity_service.rpc")

Request = TypeVar("Request")
Response = TypeVar("Response")
Handler = Callable[[Any, Request, grpc.aio.ServicerContext], Awaitable[Response]]

STATUS_DETAILS_KEY = "grpc-status-details-bin"

# What a lenient deserializer hands on for bytes that are not the message.
UNDECODABLE = object()


def rich_status(error: errors.IdentityError) -> status_pb2.Status:
    """Build the google.rpc.Status carrying error's ErrorInfo."""
    info = error_details_pb2.ErrorInfo(
        reason=error.reason, domain=errors.DOMAIN, metadata=error.metadata
    )
    detail = any_pb2.Any()
    detail.Pack(info)
    return status_pb2.Status(
        code=error.code.value[0], message=error.message, details=[detail]
    )


def internal_error() -> errors.IdentityError:
    """Return the error sent for a bug, which the log explains."""
    error = errors.IdentityError(
        "INTERNAL", "internal error; the server log has details"
    )
    error.code = grpc.StatusCode.INTERNAL
    return error


def rpc(handler: Handler[Request, Response]) -> Handler[Request, Response]:
    """Wrap a servicer method with the error mapping and its log line."""
    method = handler.__name__

    @functools.wraps(handler)
    async def wrapper(
        self: Any, request: Request, context: grpc.aio.ServicerContext
    ) -> Response:
        start = time.perf_counter()
        try:
            response = await handler(self, request, context)
        except errors.IdentityError as error:
            await abort(context, method, start, error)
        except Exception as error:
            if is_unavailable(error):
                failure = errors.Unavailable(
                    errors.DATABASE_UNAVAILABLE, "the database cannot be reached"
                )
            else:
                logger.exception("%s failed with an unexpected error", method)
                failure = internal_error()
            await abort(context, method, start, failure)

        log_call(method, "OK", "", start)
        return response

    return wrapper


async def abort(
    context: grpc.aio.ServicerContext,
    method: str,
    start: float,
    error: errors.IdentityError,
) -> None:
    """Log the failed call and end it with error's status and details."""
    log_call(method, error.code.name, error.reason, start)
    status = rich_status(error)
    await context.abort(
        error.code,
        error.message,
        trailing_metadata=((STATUS_DETAILS_KEY, status.SerializeToString()),),
    )


def log_call(method: str, code: str, reason: str, start: float) -> None:
    """Log one line for a finished call; never a key, a secret or an email."""
    duration_ms = (time.perf_counter() - start) * 1000
    logger.info(
        "rpc method=%s code=%s reason=%s duration_ms=%.2f",
        method,
        code,
        reason or "-",
        duration_ms,
    )


def lenient(deserializer: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    """Wrap a request deserializer so that bad bytes become UNDECODABLE.

    gRPC answers a deserializer's exception with UNKNOWN and the exception's
    text; any bytes a client sends are input, so they get INVALID_ARGUMENT.
    """

    def parse(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception:
            return UNDECODABLE

    return parse


class UndecodableRequests(grpc.aio.ServerInterceptor):
    """Answer a unary request that does not parse with INVALID_ARGUMENT."""

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        """Return the method's handler with a deserializer that cannot fail."""
        handler = await continuation(handler_call_details)
        if (
            handler is None
            or handler.unary_unary is None
            or handler.request_deserializer is None
        ):
            return handler

        method = handler_call_details.method.rsplit("/", 1)[-1]
        # Typed for the sync server; under grpc.aio it takes an aio context.
        inner: Any = handler.unary_unary

        async def unary_unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            if request is UNDECODABLE:
                error = errors.InvalidArgument(
                    errors.FIELD_INVALID,
                    "request",
                    "is not a valid message for this method",
                )
                await abort(context, method, time.perf_counter(), error)
            answer = inner(request, context)
            return await answer if inspect.isawaitable(answer) else answer

        return grpc.unary_unary_rpc_method_handler(
            unary_unary,
            request_deserializer=lenient(handler.request_deserializer),
            response_serializer=handler.response_serializer,
        )
