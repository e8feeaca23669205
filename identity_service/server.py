"""Building and running the gRPC server.

The server offers IdentityService, the standard grpc.health.v1 service and
server reflection (so `grpcurl -plaintext HOST:PORT list` works). On SIGTERM
or SIGINT it reports NOT_SERVING, refuses new calls, lets the calls in flight
finish within SHUTDOWN_GRACE_SECONDS and exits 0.
"""

import asyncio
import dataclasses
import logging
import signal
import sys
from collections.abc import Callable

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from tecken_identity._generated import identity_pb2 as pb
from tecken_identity._generated import identity_pb2_grpc as pb_grpc

from . import database, migrate, tls, workers
from .auth0 import Auth0Client
from .authn import Authenticator
from .cache import TokenCache, refreshing
from .clock import Clock, clock_for
from .config import Config, ConfigError
from .deadline import CallDeadline
from .oidc import OidcClient
from .recheck import BlockedCheck
from .servicer import IdentityServicer, Services
from .status import UndecodableRequests
from .store import Store

logger = logging.getLogger(__name__)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["IdentityService"].full_name

# Room for a 1 MiB field plus the rest of a request, so oversized fields reach
# the handlers and get INVALID_ARGUMENT naming the field.
MAX_REQUEST_BYTES = 2 * 1024 * 1024
MAX_METADATA_BYTES = 16 * 1024


def build_services(config: Config, clock: Clock | None = None) -> Services:
    """Wire the store, the Auth0 client, the OIDC client and the checks."""
    clock = clock or clock_for(config.clock_offset_file)
    engine = database.create_engine(
        config.database_url,
        pool_size=config.database_pool_size,
        timeout=config.database_timeout_seconds,
    )
    store = Store(engine)
    cache = TokenCache(
        max_entries=config.token_cache_max_entries,
        refresh_seconds=config.token_cache_seconds / 2,
        max_staleness_seconds=config.token_cache_seconds,
    )
    store.change_listeners.append(cache.clear)
    auth0 = Auth0Client(config, clock)
    check = BlockedCheck(
        enabled=config.enable_auth0_blocked_check,
        interval_seconds=config.not_blocked_in_auth0_interval_seconds,
        clock=clock,
        store=store,
        auth0=auth0,
    )
    return Services(
        config=config,
        clock=clock,
        store=store,
        auth0=auth0,
        oidc=OidcClient(config, clock),
        check=check,
        authenticator=Authenticator(store=store, clock=clock, check=check, cache=cache),
    )


async def close_services(services: Services) -> None:
    """Close the HTTP clients and the database pool."""
    await services.auth0.aclose()
    await services.oidc.aclose()
    await services.store.engine.dispose()


def create_server(
    services: Services,
    listen: str,
    credentials: grpc.ServerCredentials | None = None,
    *,
    reuse_port: bool = False,
    servicer: pb_grpc.IdentityServiceServicer | None = None,
) -> tuple[grpc.aio.Server, int, health.aio.HealthServicer]:
    """Create the server bound to listen; return it, its port and its health.

    With credentials the port speaks TLS only; without, plaintext only.
    reuse_port lets several worker processes share the port; otherwise a
    second server on a taken port fails at start instead of sharing it.
    servicer replaces the real handlers, for the benchmark's control.
    """
    server = grpc.aio.server(
        interceptors=(UndecodableRequests(), CallDeadline()),
        options=(
            ("grpc.max_receive_message_length", MAX_REQUEST_BYTES),
            ("grpc.max_metadata_size", MAX_METADATA_BYTES),
            ("grpc.so_reuseport", 1 if reuse_port else 0),
        ),
    )
    pb_grpc.add_IdentityServiceServicer_to_server(
        servicer or IdentityServicer(services), server
    )

    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )

    try:
        if credentials is None:
            port = server.add_insecure_port(listen)
        else:
            port = server.add_secure_port(listen, credentials)
    except RuntimeError:
        # grpc reports a taken or unassignable address this way.
        port = 0
    if port == 0:
        raise ConfigError(
            f"IDENTITY_LISTEN={listen!r}: cannot listen there (in use, or not "
            "an address of this machine)"
        )
    return server, port, health_servicer


async def check_schema(services: Services) -> None:
    """Refuse to serve a database whose schema is not the code's."""
    current = await migrate.current_revision(services.store.engine)
    head = migrate.head_revision()
    if current != head:
        raise ConfigError(
            f"the database schema is at {current or 'nothing'}, the code needs "
            f"{head}: run `identity-service migrate`"
        )


def transport_of(config: Config) -> str:
    """Describe the port's transport for the start-up log line."""
    if config.tls_client_ca:
        return "TLS, client certificates required"
    return "TLS" if config.tls_cert else "plaintext"


async def serve(
    config: Config,
    *,
    reuse_port: bool = False,
    make_servicer: Callable[[Services], pb_grpc.IdentityServiceServicer] | None = None,
) -> None:
    """Run the server until SIGTERM or SIGINT, then shut down gracefully."""
    # TLS files are checked before anything else, so a bad one is reported
    # even when the database is down too.
    credentials = tls.server_credentials(config)
    services = build_services(config)
    try:
        await check_schema(services)
        server, port, health_servicer = create_server(
            services,
            config.listen,
            credentials,
            reuse_port=reuse_port,
            servicer=make_servicer(services) if make_servicer else None,
        )
        await server.start()

        for name in (SERVICE_NAME, ""):
            await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
        host = config.listen.rpartition(":")[0]
        logger.info("serving on %s:%d (%s)", host, port, transport_of(config))
        print(f"identity-service listening on {host}:{port}", flush=True)

        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        cache = services.authenticator.cache
        async with refreshing(cache, services.store.read_generation):
            await stop.wait()

        logger.info(
            "shutting down; calls in flight have %.1f s", config.shutdown_grace_seconds
        )
        await health_servicer.enter_graceful_shutdown()
        await server.stop(config.shutdown_grace_seconds)
        logger.info("stopped")
    finally:
        await close_services(services)


def run(config: Config) -> int:
    """Serve until stopped, in IDENTITY_WORKERS processes; return the exit code."""
    if config.workers > 1:
        try:
            return workers.run_workers(
                config.workers,
                config.listen,
                lambda address: run_one(dataclasses.replace(config, listen=address)),
            )
        except ConfigError as error:
            print(f"identity-service: {error}", file=sys.stderr)
            return 2
    return run_one(config)


def run_one(config: Config, *, reuse_port: bool | None = None) -> int:
    """Run one server process until stopped; return its exit code."""
    try:
        reuse = config.workers > 1 if reuse_port is None else reuse_port
        asyncio.run(serve(config, reuse_port=reuse))
    except ConfigError as error:
        print(f"identity-service: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"identity-service: cannot start: {error}", file=sys.stderr)
        return 1
    return 0
