#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mbusportal.settings")
    from mbusportal.configured import run_command

    run_command(sys.argv)


if __name__ == "__main__":
    main()
