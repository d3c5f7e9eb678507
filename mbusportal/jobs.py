"""The project's one job queue: procrastinate on the default database.

Tasks live in each app's `tasks.py` (discovered when Django starts), periodic ones
declared beside them with `@app.periodic(cron=...)`. The worker is
`python manage.py procrastinate worker`; deferring a job is `task.defer(...)` inside
the caller's transaction, so a job is queued exactly when the work that asked for it commits.
"""

from procrastinate.contrib.django import app

__all__ = ["app"]
