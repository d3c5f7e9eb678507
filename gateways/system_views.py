"""The System page: the portal's own key figures, for operators (installations without Grafana).

The figures are those of /metrics (mbusportal.metrics), added up over every
process as a scraper would see them; the open system alarms come from the
alarm table.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET

from gateways.access import is_operator
from gateways.models import Alarm
from mbusportal import metrics
from mbusportal.jobs_admin.admin import STATUS_LABELS

Samples = dict[str, list[tuple[dict[str, str], float]]]


def _samples() -> Samples:
    """Every sample of the metrics registry by name: (labels, value)."""
    found: Samples = defaultdict(list)
    for family in metrics.registry().collect():
        for sample in family.samples:
            found[sample.name].append((sample.labels, sample.value))
    return found


def _total(samples: Samples, name: str, **labels: str) -> float:
    return sum(
        value
        for sample_labels, value in samples.get(name, [])
        if all(sample_labels.get(k) == v for k, v in labels.items())
    )


# The metrics' label values (mbusportal/request_metrics.py, readings/ingest.py), as the page names them.
REQUEST_GROUPS = {
    "gateway_api": gettext_lazy("gateway API"),
    "websockets": gettext_lazy("websockets"),
    "metrics": gettext_lazy("monitoring (/metrics)"),
    "static": gettext_lazy("static files"),
    "exports": gettext_lazy("CSV exports"),
    "pages": gettext_lazy("pages"),
}
READING_OUTCOMES = {
    "inserted": gettext_lazy("inserted"),
    "updated": gettext_lazy("updated"),
    "unchanged": gettext_lazy("unchanged"),
    "folded": gettext_lazy("folded (repeated in one batch)"),
    "refused": gettext_lazy("refused"),
}


def _labelled(figures: dict[str, float], labels: dict[str, Any]) -> dict[str, float]:
    """The figures keyed by their labels in the reader's language (an unknown value as it is)."""
    return {str(labels.get(value, value)): count for value, count in figures.items()}


def _by(samples: Samples, name: str, label: str) -> dict[str, float]:
    grouped: defaultdict[str, float] = defaultdict(float)
    for sample_labels, value in samples.get(name, []):
        grouped[sample_labels.get(label, "")] += value
    return dict(sorted(grouped.items()))


@login_required
@require_GET
def system(request: HttpRequest) -> HttpResponse:
    """The key figures of the whole portal; 403 for anyone but operators."""
    if not is_operator(request.user):
        raise PermissionDenied(_("The System page is for the people who run the portal."))
    samples = _samples()
    pools: list[dict[str, Any]] = []
    for name in ("async", "orm"):
        max_size = _total(samples, "mbusportal_pool_max_size", pool=name)
        in_use = _total(samples, "mbusportal_pool_in_use", pool=name)
        pools.append(
            {
                "name": name,
                "size": int(_total(samples, "mbusportal_pool_size", pool=name)),
                "max_size": int(max_size),
                "in_use": int(in_use),
                "waiting": int(_total(samples, "mbusportal_pool_waiting", pool=name)),
                "utilisation_pct": round(100 * in_use / max_size) if max_size else 0,
                "lost": int(_total(samples, "mbusportal_pool_connections_lost_total", pool=name)),
            }
        )
    context = {
        "pools": pools,
        "requests": _labelled(_by(samples, "mbusportal_requests_total", "group"), REQUEST_GROUPS),
        "readings": _labelled(_by(samples, "mbusportal_readings_total", "outcome"), READING_OUTCOMES),
        "websocket_clients": int(_total(samples, "mbusportal_websocket_clients")),
        "websocket_dropped": int(_total(samples, "mbusportal_websocket_dropped_clients_total")),
        "relay_lag_s": _total(samples, "mbusportal_relay_lag_seconds"),
        "relay_reconnects": int(_total(samples, "mbusportal_relay_reconnects_total")),
        "mqtt_connected": bool(_total(samples, "mbusportal_mqtt_connected")),
        "database_up": bool(_total(samples, "mbusportal_database_up")),
        "database_bytes": int(_total(samples, "mbusportal_database_size_bytes")),
        "reading_bytes": int(_total(samples, "mbusportal_reading_table_size_bytes")),
        "timescaledb_failing": samples.get("mbusportal_timescaledb_jobs_failing"),
        # By status in the reader's language ("succeeded" is "lykkedes"), as the jobs' admin says it.
        "jobs": _labelled(_by(samples, "mbusportal_jobs", "status"), STATUS_LABELS),
        "job_workers": int(_total(samples, "mbusportal_job_workers")),
        "alarms": Alarm.objects.system().open().order_by("-raised_at")[:50],
    }
    response = render(request, "gateways/system.html", context)
    response["Cache-Control"] = "no-store"
    return response
