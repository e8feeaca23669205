"""Stop a private PostgreSQL when the test process that made it dies.

private_postgres.py runs `python postgres_watchdog.py PARENT ROOT STOP...` as a
child that the kernel sends SIGTERM when the test process dies, however it
dies, SIGKILL included (PR_SET_PDEATHSIG, armed before this starts). The
watchdog then runs the STOP command and deletes the folder ROOT, so that a
killed test run leaves no PostgreSQL behind. A run that ends normally stops
its server itself and kills the watchdog first.
"""

import os
import shutil
import signal
import subprocess
import sys


def main() -> None:
    """Wait for the death signal, then stop the server and delete its folder."""
    parent, root, stop = int(sys.argv[1]), sys.argv[2], sys.argv[3:]

    def clean_up(*_: object) -> None:
        subprocess.run(stop, capture_output=True, timeout=60, check=False)
        shutil.rmtree(root, ignore_errors=True)
        sys.exit(0)

    signal.signal(signal.SIGTERM, clean_up)
    # The parent may have died before the death signal was armed.
    if os.getppid() != parent:
        clean_up()
    while True:
        signal.pause()


if __name__ == "__main__":
    main()
