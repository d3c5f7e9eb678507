"""Load the settings before anything else, so that a bad value ends the start-up with one line."""

import sys


def settings_or_exit() -> None:
    """Read the settings; on a bad value print "Configuration error: <what and why>" and exit 1.

    The operator needs the variable and the reason (mbusportal/settings.py says both), not the
    forty lines of import machinery above them, from every command and from daphne alike.
    """
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured

    try:
        settings.INSTALLED_APPS  # noqa: B018 (touching a setting loads them all)
    except ImproperlyConfigured as error:
        sys.exit(f"Configuration error: {error}")
