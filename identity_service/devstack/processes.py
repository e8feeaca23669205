"""Starting the local stack's programs as child processes, and stopping them.

Each program prints one line naming its address once it listens (`... listening
on ADDRESS`); `start` waits for that line rather than for time to pass, so the
caller knows the port even when the program picked it. The tests start their
servers through the same helpers.
"""

import contextlib
import ctypes
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence

LISTENING = re.compile(r"listening on (?:https?://)?(?P<host>[^\s]+):(?P<port>\d+)")
PROVIDER_RUNNING = re.compile(r"running on http://(?P<host>[^\s:]+):(?P<port>\d+)")


PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """In the child, before exec: ask Linux to stop it when its parent dies.

    The children run in sessions of their own so that a terminal's Ctrl-C
    reaches only the parent, which stops them in order; this makes sure they
    go too when the parent is killed without a chance to do so.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class StartError(RuntimeError):
    """A child process exited or stayed silent instead of starting to listen."""


class Child:
    """A running child process whose output is kept for reading."""

    def __init__(
        self,
        name: str,
        command: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        ready: re.Pattern[str] = LISTENING,
        echo: bool = False,
        tied: bool = False,
    ) -> None:
        self.name = name
        self.command = list(command)
        self.output: list[str] = []
        self.port = 0
        self._ready = ready
        self._echo = echo
        self._listening = threading.Event()
        self.process = subprocess.Popen(
            self.command,
            env={**os.environ, **(env or {})},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            start_new_session=True,
            # Only for a parent that lives as long as its children: Linux
            # sends the signal when the thread that started the child ends.
            preexec_fn=die_with_parent if tied else None,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)
            if self._echo:
                sys.stdout.write(f"[{self.name}] {line}")
                sys.stdout.flush()
            match = self._ready.search(line)
            if match and not self._listening.is_set():
                self.port = int(match.group("port"))
                self._listening.set()
        self._listening.set()

    def wait_listening(self, timeout: float = 30.0) -> int:
        """Block until the child says it listens; return its port."""
        self._listening.wait(timeout)
        if not self.port:
            self.stop()
            tail = "".join(self.output[-20:])
            raise StartError(f"{self.name} did not start:\n{tail}")
        return self.port

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        """Stop the child (and its own children) and return its exit code."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._reader.join(timeout=5)
        if self.process.stdout is not None:
            self.process.stdout.close()
        return self.process.returncode

    def text(self) -> str:
        """Return everything the child printed so far."""
        return "".join(self.output)


def python(*args: str) -> list[str]:
    """Return a command running this Python with args."""
    return [sys.executable, *args]


def start_provider(host: str, port: int, *extra_args: str, **options: object) -> Child:
    """Start oidc-provider-mock, the local OpenID Connect provider."""
    command = python(
        "-u", "-m", "oidc_provider_mock", "-H", host, "-p", str(port), *extra_args
    )
    child = Child("oidc-provider", command, ready=PROVIDER_RUNNING, **options)  # type: ignore[arg-type]
    child.wait_listening()
    return child


def start_auth0(
    host: str, port: int, client_id: str, client_secret: str, **options: object
) -> Child:
    """Start the local stand-in for the Auth0 Management API."""
    command = python(
        "-m",
        "identity_service.devstack.auth0_standin",
        "--host",
        host,
        "--port",
        str(port),
        "--client-id",
        client_id,
        "--client-secret",
        client_secret,
    )
    child = Child("auth0-standin", command, **options)  # type: ignore[arg-type]
    child.wait_listening()
    return child


def start_identity(env: Mapping[str, str], **options: object) -> Child:
    """Start `identity-service serve` with env added to the environment."""
    command = python("-m", "identity_service.cli", "serve")
    child = Child("identity-service", command, env=env, **options)  # type: ignore[arg-type]
    child.wait_listening()
    return child


@contextlib.contextmanager
def stopping(*children: Child) -> Iterator[None]:
    """Stop the children, last started first, however the block ends."""
    try:
        yield
    finally:
        for child in reversed(children):
            child.stop()
