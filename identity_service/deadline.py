"""The caller's deadline, for work that runs far from the gRPC context.

`CallDeadline`, a server interceptor, notes each unary call's deadline in a
context variable, less a margin for the answer to travel. Database work
(`database.translated_errors`) ends at that moment, so a database that stops
answering gets the caller UNAVAILABLE (DATABASE_UNAVAILABLE) while it still
listens, instead of DEADLINE_EXCEEDED, as the Auth0 client already does for
Auth0. Tasks a call starts inherit its deadline; work outside any call, such
as the CLI or the cache's refresh, has none.
"""

import asyncio
import contextvars
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

# Time kept back for the answer to reach the caller before its deadline.
ANSWER_MARGIN_SECONDS = 0.1

_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "call_deadline", default=None
)


def current() -> float | None:
    """Return when the current call's work must end, in event-loop time."""
    return _deadline.get()


class CallDeadline(grpc.aio.ServerInterceptor):
    """Note each unary call's deadline for the work the call does."""

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        """Return the method's handler, wrapped to note the deadline."""
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler

        # Typed for the sync server; under grpc.aio it takes an aio context.
        inner: Any = handler.unary_unary

        async def unary_unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            remaining = context.time_remaining()
            ends = None
            if remaining is not None:
                ends = asyncio.get_running_loop().time() + remaining
                ends -= ANSWER_MARGIN_SECONDS
            token = _deadline.set(ends)
            try:
                answer = inner(request, context)
                return await answer if inspect.isawaitable(answer) else answer
            finally:
                _deadline.reset(token)

        return grpc.unary_unary_rpc_method_handler(
            unary_unary,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
