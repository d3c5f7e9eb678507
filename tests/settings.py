"""The portal's own settings, with a throwaway key so that `pytest` runs as is.

Everything else comes from the environment exactly as in production
(DEBUG off unless set).
"""

import os

os.environ.setdefault("SECRET_KEY", "tests-only-secret-key-not-used-anywhere-else-0123456789")

from mbusportal.settings import *  # noqa: F403
