"""Prometheus metrics of the portal: what is measured, and the /metrics endpoint.

Every process (each daphne, the relay, the MQTT subscriber, the job worker)
counts into prometheus-client's metrics. With PROMETHEUS_MULTIPROC_DIR set
(in the environment, before the process starts) they write to memory-mapped
files in that directory and /metrics adds up all processes' files, so any
daphne answers for the whole machine. The directory must be emptied when the
services start (README, "Monitoring"); without the variable each process
counts for itself alone (development, tests).

Metrics are cheap to update (a dictionary look-up and an add under a lock);
figures that cost a query (database size, job queue, TimescaleDB jobs) are
read from PostgreSQL when /metrics is scraped, and kept METRICS_DB_CACHE_SECONDS.

The ground: this module imports no app; the apps import it.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

import psycopg
from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)

# --- Requests --------------------------------------------------------------
# `group`: gateway_api, mqtt, pages, exports, websockets, metrics, static.
REQUESTS = Counter("mbusportal_requests", "Requests answered, by endpoint group and status.", ["group", "status"])
REQUEST_SECONDS = Histogram(
    "mbusportal_request_duration_seconds",
    "Time from the request to the end of the answer (websockets: to the close), by endpoint group.",
    ["group"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, float("inf")),
)
PAYLOAD_BYTES = Histogram(
    "mbusportal_payload_bytes",
    "Size of gateway payloads as received (before decompression), by transport.",
    ["transport"],
    buckets=(1_000, 10_000, 100_000, 300_000, 1_000_000, 3_000_000, 10_000_000, float("inf")),
)
# --- Ingestion ------------------------------------------------------------
READINGS = Counter(
    "mbusportal_readings",
    "Readings received, by outcome (inserted, updated, unchanged, folded, refused) and transport.",
    ["outcome", "transport"],
)
# --- Pools (sampled by mbusportal.saturation every second) -----------------
POOL_SIZE = Gauge("mbusportal_pool_size", "Open connections of the pool.", ["pool"], multiprocess_mode="livesum")
POOL_MAX = Gauge("mbusportal_pool_max_size", "The pool's maximum size.", ["pool"], multiprocess_mode="livesum")
POOL_IN_USE = Gauge("mbusportal_pool_in_use", "Connections lent out.", ["pool"], multiprocess_mode="livesum")
POOL_WAITING = Gauge(
    "mbusportal_pool_waiting", "Requests waiting for a connection.", ["pool"], multiprocess_mode="livesum"
)
POOL_UTILISATION = Gauge(
    "mbusportal_pool_utilisation",
    "In use / max size of the busiest process's pool (0..1).",
    ["pool"],
    multiprocess_mode="livemax",
)
POOL_WAIT_SECONDS = Histogram(
    "mbusportal_pool_wait_seconds",
    "Time a request waited for a connection from the pool.",
    ["pool"],
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, float("inf")),
)
POOL_CONNECTIONS_LOST = Counter(
    "mbusportal_pool_connections_lost", "Connections found dead or given back broken.", ["pool"]
)
# --- Relay and websockets -------------------------------------------------
RELAY_LAG_SECONDS = Gauge(
    "mbusportal_relay_lag_seconds",
    "Age of the newest alarm change when the relay published it (last batch).",
    multiprocess_mode="livemax",
)
RELAY_PUBLISHED = Counter("mbusportal_relay_published_alarm_changes", "Alarm changes the relay published.")
RELAY_RECONNECTS = Counter("mbusportal_relay_reconnects", "Times the relay (re)connected to PostgreSQL.")
WEBSOCKET_CLIENTS = Gauge(
    "mbusportal_websocket_clients", "Websocket clients connected now.", multiprocess_mode="livesum"
)
WEBSOCKET_DROPPED = Counter(
    "mbusportal_websocket_dropped_clients",
    "Websocket clients closed by the server: too slow, or a message missed.",
    ["reason"],
)
# --- MQTT -----------------------------------------------------------------
MQTT_CONNECTED = Gauge(
    "mbusportal_mqtt_connected", "1 while the MQTT subscriber is subscribed, else 0.", multiprocess_mode="livemax"
)
MQTT_RECONNECTS = Counter("mbusportal_mqtt_connects", "Times the MQTT subscriber (re)subscribed.")
MQTT_REDELIVERIES = Counter(
    "mbusportal_mqtt_redeliveries", "Messages that arrived again (a broker's redelivery or a gateway's retry)."
)


def observe_stored(counts: dict[str, int], *, transport: str) -> None:
    """Count what one ingestion stored (its returned counts)."""
    for outcome, number in counts.items():
        if number:
            READINGS.labels(outcome, transport).inc(number)


def observe_refused(number: int, *, transport: str) -> None:
    """Count readings refused (an invalid payload stores none)."""
    if number:
        READINGS.labels("refused", transport).inc(number)


# --- From PostgreSQL, at scrape --------------------------------------------

DATABASE_FIGURES = """
SELECT pg_database_size(current_database()),
       (SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)
          FROM pg_class c
         WHERE c.oid = to_regclass('reading') OR c.oid IN (
               SELECT inhrelid FROM pg_inherits WHERE inhparent = to_regclass('reading')))
"""
HYPERTABLE_SIZE = "SELECT hypertable_size('reading')"
TIMESCALEDB_PRESENT = "SELECT to_regclass('timescaledb_information.job_stats') IS NOT NULL"
TIMESCALEDB_FAILING = "SELECT count(*) FROM timescaledb_information.job_stats WHERE last_run_status = 'Failed'"
IS_HYPERTABLE = "SELECT EXISTS (SELECT 1 FROM timescaledb_information.hypertables WHERE hypertable_name = 'reading')"
# Longest wait for the database's figures in a scrape (connection, then each query).
SCRAPE_DB_TIMEOUT_S = 2
JOB_QUEUE = "SELECT status::text, count(*) FROM procrastinate_jobs GROUP BY status"
# Job workers alive: a heartbeat within JOBS_STALLED_AFTER_S. A worker that was killed (or whose machine
# went) leaves its row behind, so counting rows would report a worker when none runs.
LIVE_JOB_WORKERS = """
SELECT count(*) FROM procrastinate_workers WHERE last_heartbeat > now() - make_interval(secs => %(stalled_after)s)
"""


def live_workers_parameters() -> dict[str, float]:
    return {"stalled_after": settings.PROCRASTINATE_WORKER_DEFAULTS["stalled_worker_timeout"]}


class DatabaseCollector(Collector):
    """Figures read from PostgreSQL when scraped, cached a few seconds (one query set per scrape at most)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._read_at = -1e9
        self._families: list[GaugeMetricFamily] = []

    def collect(self) -> Iterable[GaugeMetricFamily]:
        with self._lock:
            if time.monotonic() - self._read_at >= settings.METRICS_DB_CACHE_SECONDS:
                try:
                    self._families = list(self._read())
                except Exception as error:  # a scrape must answer, figures or not
                    logger.warning("metrics: cannot read the database's figures: %s", error)
                    self._families = [
                        GaugeMetricFamily("mbusportal_database_up", "1 when the figures could be read.", value=0)
                    ]
                self._read_at = time.monotonic()
            return list(self._families)

    def _read(self) -> Iterator[GaugeMetricFamily]:
        # A connection of its own with short timeouts, not the ORM pool's: with the database away, a
        # checkout waits ORM_POOL_TIMEOUT (10 s), Prometheus's whole scrape timeout, and the scrape
        # failed with every figure in it instead of answering database_up 0.
        from mbusportal import db  # (mbusportal.pools, under db, imports this module)

        with psycopg.connect(db.conninfo(), connect_timeout=SCRAPE_DB_TIMEOUT_S) as conn, conn.cursor() as cursor:
            cursor.execute(f"SET LOCAL statement_timeout = {int(SCRAPE_DB_TIMEOUT_S * 1000)}")
            cursor.execute(DATABASE_FIGURES)
            database_size, reading_size = cursor.fetchone() or (0, 0)
            cursor.execute(TIMESCALEDB_PRESENT)
            row = cursor.fetchone()
            timescaledb = bool(row and row[0])
            failing = None
            if timescaledb:
                cursor.execute(IS_HYPERTABLE)
                row = cursor.fetchone()
                if row and row[0]:
                    cursor.execute(HYPERTABLE_SIZE)
                    row = cursor.fetchone()
                    reading_size = row[0] if row and row[0] is not None else reading_size
                cursor.execute(TIMESCALEDB_FAILING)
                row = cursor.fetchone()
                failing = row[0] if row else 0
            cursor.execute(JOB_QUEUE)
            jobs: dict[str, int] = dict(cursor.fetchall())
            cursor.execute(LIVE_JOB_WORKERS, live_workers_parameters())
            row = cursor.fetchone()
            workers = row[0] if row else 0
        yield GaugeMetricFamily("mbusportal_database_up", "1 when the figures could be read.", value=1)
        yield GaugeMetricFamily("mbusportal_database_size_bytes", "Size of the database.", value=database_size)
        yield GaugeMetricFamily(
            "mbusportal_reading_table_size_bytes", "Size of the reading table with its indexes.", value=reading_size
        )
        if failing is not None:
            yield GaugeMetricFamily(
                "mbusportal_timescaledb_jobs_failing", "TimescaleDB jobs whose last run failed.", value=failing
            )
        queue = GaugeMetricFamily("mbusportal_jobs", "Jobs in the queue, by status.", labels=["status"])
        for status in ("todo", "doing", "succeeded", "failed", "cancelled", "aborted"):
            queue.add_metric([status], jobs.get(status, 0))
        yield queue
        # 0 means nothing periodic runs: no alarm checks, no e-mails (alert on it; the worker cannot).
        yield GaugeMetricFamily("mbusportal_job_workers", "Job workers with a recent heartbeat.", value=workers)


_database_collector = DatabaseCollector()


def registry() -> CollectorRegistry:
    """What /metrics exposes: every process's metrics (multiprocess) or this one's, and the database's."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        combined = CollectorRegistry()
        multiprocess.MultiProcessCollector(combined)  # type: ignore[no-untyped-call]
    else:
        combined = CollectorRegistry()
        combined.register(_ProcessMetrics())
    combined.register(_database_collector)
    return combined


class _ProcessMetrics(Collector):
    def collect(self) -> Iterable[Any]:
        return REGISTRY.collect()


def _allowed(request: HttpRequest) -> bool:
    """A scraper may read: with `Authorization: Bearer <METRICS_TOKEN>`, or from METRICS_ALLOWED_IPS."""
    token = settings.METRICS_TOKEN
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    if token and scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode()):
        return True
    networks = settings.METRICS_ALLOWED_IPS
    if networks:
        try:
            address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
        except ValueError:
            return False
        return any(address in network for network in networks)
    return False


def metrics_view(request: HttpRequest) -> HttpResponse:
    """The Prometheus text format for a scraper; 404 when not configured, 403 for anyone else."""
    if not settings.METRICS_TOKEN and not settings.METRICS_ALLOWED_IPS:
        raise Http404
    if request.method not in ("GET", "HEAD"):
        return HttpResponse(status=405, headers={"Allow": "GET, HEAD"})
    if not _allowed(request):
        return HttpResponse(
            "metrics: a token or an allowed address is required\n",
            status=403,
            content_type="text/plain; charset=utf-8",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return HttpResponse(
        generate_latest(registry()), content_type=CONTENT_TYPE_LATEST, headers={"Cache-Control": "no-store"}
    )


def mark_this_process_dead() -> None:
    """Drop this process's live gauges from the multiprocess directory (at shutdown)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]
