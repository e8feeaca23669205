"""Fixtures of the client's tests.

The integration tests drive the real stack through the fixtures of the
repository's own end-to-end tests (`stack` and what it needs), imported here
rather than copied, so that both suites start the server the same way. The
repository root is put on sys.path for that import, since pytest only adds
the directories of the conftest files it loads itself.
"""

import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[3]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.e2e.conftest import (  # noqa: E402, F401
    auth0,
    auth0_process,
    provider,
    stack,
)

from tests.conftest import database_url, empty_database_url  # noqa: E402, F401
