"""The portal's own settings, with a throwaway key so that `pytest` runs as is.

Everything else comes from the environment exactly as in production
(DEBUG off unless set).
"""

import os

os.environ.setdefault("SECRET_KEY", "tests-only-secret-key-not-used-anywhere-else-0123456789")
# A server with TimescaleDB (see README, "Running on TimescaleDB"): the suite runs on it, where
# `reading` is a hypertable, and so do the tests marked `timescaledb`, which are skipped otherwise.
if os.environ.get("TIMESCALE_DATABASE_URL"):
    os.environ["DATABASE_URL"] = os.environ["TIMESCALE_DATABASE_URL"]

from mbusportal.settings import *  # noqa: F403
from mbusportal.settings import DATABASE_DIRECT, DATABASES

# Under pytest every connection is to the test database, those past PgBouncer too (the suite through
# PgBouncer: `make test-pgbouncer`, README "PgBouncer").
if DATABASE_DIRECT is not None:
    DATABASE_DIRECT = {**DATABASE_DIRECT, "NAME": DATABASES["default"]["TEST"]["NAME"]}
