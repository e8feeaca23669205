"""Run identity-admin as `python -m tecken_identity.admin`."""

import sys

from . import main

sys.exit(main())
