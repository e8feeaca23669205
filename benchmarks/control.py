"""The benchmark's control: the real server with a ValidateToken that does nothing.

It answers a fixed response, built once, without touching the store, the
cache or Auth0, but through the same server, the same per-call wrapper, the
same logging set-up and log line and the same options, so the difference from
the real ValidateToken is exactly the cost of validating.

    python -m benchmarks.control    (settings from the environment, as `serve`)
"""

import asyncio
import datetime
import sys

import grpc
from tecken_identity._generated import identity_pb2 as pb

from identity_service import cli, config, convert, server
from identity_service.servicer import IdentityServicer, Services
from identity_service.status import rpc
from identity_service.store import UserRecord


class ControlServicer(IdentityServicer):
    """The real handlers, except ValidateToken, which returns a constant."""

    def __init__(self, services: Services) -> None:
        super().__init__(services)
        now = datetime.datetime.now(datetime.UTC)
        user = UserRecord(
            id=1,
            email="control@example.com",
            active=True,
            superuser=False,
            permissions=frozenset({"upload.upload_symbols"}),
            inactive_reason=None,
            create_time=now,
            last_login_time=now,
            auth0_check_time=now,
        )
        self._fixed = pb.ValidateTokenResponse(
            user=convert.user_message(user),
            permissions=["upload.upload_symbols"],
            kind=pb.TOKEN_KIND_API,
            expire_time=convert.timestamp(now + datetime.timedelta(days=365)),
            token_id="0" * 32,
        )

    @rpc
    async def ValidateToken(
        self, request: pb.ValidateTokenRequest, context: grpc.aio.ServicerContext
    ) -> pb.ValidateTokenResponse:
        """Answer the same response to every request."""
        return self._fixed


def main() -> int:
    """Serve the control until SIGTERM."""
    settings = config.load()
    # The same log line per call as `identity-service serve`, so the two
    # servers differ only in the handler.
    cli.configure_logging(settings.log_level)
    try:
        asyncio.run(server.serve(settings, make_servicer=ControlServicer))
    except config.ConfigError as error:
        print(f"control: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
