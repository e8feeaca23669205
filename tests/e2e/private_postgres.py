"""A PostgreSQL server of the test's own, in a temporary folder, on loopback.

The machine's shared PostgreSQL serves other test runs at the same time, so a
test that stops, pauses or restarts its database uses one of these instead.
PostgreSQL refuses to run as root, so under root every command runs as the
`postgres` OS user through runuser. The server trusts connections from
127.0.0.1 without a password and turns fsync off: its data is thrown away
after the tests, and what they check is the identity server's transactions,
which fsync does not change while PostgreSQL itself keeps running. A watchdog
process (postgres_watchdog.py) stops the server if the test process dies
without doing so.
"""

import contextlib
import ctypes
import glob
import os
import pathlib
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile

WATCHDOG = pathlib.Path(__file__).with_name("postgres_watchdog.py")
PR_SET_PDEATHSIG = 1
SERVER_SETTINGS = """
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
fsync = off
full_page_writes = off
max_connections = 200
"""


class Unavailable(RuntimeError):
    """PostgreSQL's programs are not installed, or cannot be run here."""


def find_bin_dir() -> pathlib.Path:
    """Return the folder of the newest installed initdb and pg_ctl."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda path: int(pathlib.Path(path).parts[-3]),
    )
    if found:
        return pathlib.Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb is None:
        raise Unavailable("PostgreSQL's initdb is not installed")
    return pathlib.Path(initdb).parent


def die_with_parent() -> None:
    """Ask the kernel for SIGTERM when the parent dies; runs in the child."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port() -> int:
    """Return a loopback port that nothing listens on at the moment."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PrivatePostgres:
    """One PostgreSQL cluster that this test process made and controls."""

    def __init__(self) -> None:
        self.bin_dir = find_bin_dir()
        self.as_user: list[str] = []
        self.root = pathlib.Path(tempfile.mkdtemp(prefix="tecken-pg-"))
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                raise Unavailable("running as root, but no `postgres` user") from None
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = free_port()
        self._paused: list[int] = []
        self._watchdog: subprocess.Popen[bytes] | None = None
        self.running = False

    def run(self, program: str, *args: str) -> None:
        """Run one of PostgreSQL's programs as its user; raise if it fails."""
        command = [*self.as_user, str(self.bin_dir / program), *args]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise Unavailable(f"{program} failed: {result.stderr.strip()[-500:]}")

    def create(self) -> None:
        """Make the cluster and start it, watched in case this process dies."""
        self.start_watchdog()
        self.run(
            "initdb",
            "--pgdata",
            str(self.data),
            "--username",
            "postgres",
            "--auth",
            "trust",
            "--encoding",
            "UTF8",
            "--no-sync",
        )
        with open(self.data / "postgresql.conf", "a", encoding="utf-8") as conf:
            conf.write(SERVER_SETTINGS)
        self.start()

    def start_watchdog(self) -> None:
        """Start the process that cleans up if this one dies first."""
        stop = [*self.as_user, str(self.bin_dir / "pg_ctl"), "--pgdata"]
        stop += [str(self.data), "--mode", "immediate", "stop"]
        self._watchdog = subprocess.Popen(
            [sys.executable, str(WATCHDOG), str(os.getpid()), str(self.root), *stop],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            # Its own session, so that a Ctrl-C meant for pytest spares it.
            start_new_session=True,
            preexec_fn=die_with_parent,
        )

    def start(self) -> None:
        """Start the server on its port and wait until it accepts connections."""
        self.run(
            "pg_ctl",
            "--pgdata",
            str(self.data),
            "--log",
            str(self.log),
            "--options",
            f"-p {self.port}",
            "--wait",
            "--timeout",
            "60",
            "start",
        )
        self.running = True

    def stop(self) -> None:
        """Stop the server at once, ending every session, as a restart does."""
        self.run(
            "pg_ctl", "--pgdata", str(self.data), "--mode", "fast", "--wait", "stop"
        )
        self.running = False

    def pids(self) -> list[int]:
        """Return the postmaster's process id and those of its children."""
        postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        children = []
        for stat in pathlib.Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError):
                # The parent's pid is the second field after the parenthesised name.
                fields = stat.read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == postmaster:
                    children.append(int(stat.parent.name))
        return [postmaster, *children]

    def pause(self) -> None:
        """Freeze every process of the server: connections stay open, unanswered."""
        self._paused = self.pids()
        for pid in self._paused:
            os.kill(pid, signal.SIGSTOP)

    def resume(self) -> None:
        """Let the processes frozen by pause run again."""
        for pid in self._paused:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        self._paused = []

    def create_database(self, name: str) -> str:
        """Create an empty database and return its plain URL."""
        self.run(
            "createdb",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "-U",
            "postgres",
            name,
        )
        return self.url(name)

    def url(self, database: str = "postgres") -> str:
        """Return the plain URL of one of the server's databases."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def destroy(self) -> None:
        """Stop the server if it runs and delete its folder."""
        if self._watchdog is not None:
            self._watchdog.kill()
            self._watchdog.wait()
        self.resume()
        if self.running:
            with contextlib.suppress(Unavailable):
                self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
