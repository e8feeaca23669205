"""Running several server processes on one port, so one host uses all its cores.

A Python process runs its handlers on one core. With IDENTITY_WORKERS=N the
command forks N server processes that all listen on the same address with
SO_REUSEPORT, and the kernel spreads new connections among them. Each worker
has its own database pool, Auth0 client and token cache; they agree through
the database as separate replicas do.

The parent only supervises: it forwards SIGTERM and SIGINT to the workers,
waits for them, and exits 0 only when every worker did. If one worker dies,
the others are stopped too, so an orchestrator sees the failure and restarts
the whole set.
"""

import contextlib
import os
import signal
import socket
import sys
from collections.abc import Callable

from .config import ConfigError


def reserve_port(listen: str) -> tuple[str, socket.socket]:
    """Bind listen's port with SO_REUSEPORT and return the concrete address.

    With port 0, the workers must still share one port: the parent takes a
    free one and keeps its socket for as long as it runs: bound but never
    listening, so the kernel never hands it a connection.
    """
    host, _, port = listen.rpartition(":")
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    holder = socket.socket(family, socket.SOCK_STREAM)
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        holder.bind((host.strip("[]"), int(port)))
    except OSError as error:
        holder.close()
        raise ConfigError(
            f"IDENTITY_LISTEN={listen!r}: cannot listen there: {error.strerror}"
        ) from None
    return f"{host}:{holder.getsockname()[1]}", holder


def run_workers(count: int, listen: str, serve_one: Callable[[str], int]) -> int:
    """Fork count workers running serve_one(address); supervise them."""
    address, holder = reserve_port(listen)
    children: list[int] = []
    for _ in range(count):
        pid = os.fork()
        if pid == 0:
            holder.close()
            code = 1
            try:
                code = serve_one(address)
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        children.append(pid)

    def forward(signum: int, _frame: object) -> None:
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)

    exit_code = 0
    remaining = set(children)
    while remaining:
        pid, status = os.wait()
        remaining.discard(pid)
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            exit_code = exit_code or (code if code > 0 else 1)
            forward(signal.SIGTERM, None)

    # Only now: a worker restarting its bind must still find the port held.
    holder.close()
    return exit_code
