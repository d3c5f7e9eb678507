"""/metrics: who may read it, that Prometheus can parse it, and that real traffic moves its counters.

The daphne tests run daphne with PROMETHEUS_MULTIPROC_DIR, as deployed;
the aggregation test has two processes write to one directory.
"""

import ipaddress
import json
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request

import pytest
from prometheus_client import REGISTRY, CollectorRegistry, multiprocess
from prometheus_client.parser import text_string_to_metric_families
from websockets.sync.client import connect
from websockets.typing import Origin

from tests.factories import session_cookie
from tests.gateways.test_mqtt_ingest import gateway_client, payload
from tests.servers import PROJECT, start_daphne, stop_daphne

pytestmark = pytest.mark.django_db(transaction=True)

TOKEN = "scrape-token-0123456789abcdef"


def scrape(base: str, token: str | None = TOKEN) -> tuple[int, str]:
    request = urllib.request.Request(base + "/metrics")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of an exposition, by name and labels (the client's own parser)."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(parsed, name: str, **labels: str) -> float:
    return float(parsed.get((name, frozenset(labels.items())), 0.0))


@pytest.fixture
def daphne_with_metrics(tmp_path):
    directory = tmp_path / "prometheus"
    directory.mkdir()
    base, process = start_daphne(METRICS_TOKEN=TOKEN, PROMETHEUS_MULTIPROC_DIR=str(directory))
    yield base
    stop_daphne(process)


def test_it_answers_404_when_no_token_or_address_is_configured(client, settings):
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOWED_IPS = []
    assert client.get("/metrics").status_code == 404


def test_it_refuses_anonymous_requests_and_wrong_tokens(daphne_with_metrics):
    assert scrape(daphne_with_metrics, token=None)[0] == 403
    assert scrape(daphne_with_metrics, token="not-the-token")[0] == 403
    assert scrape(daphne_with_metrics, token=TOKEN[:-1])[0] == 403


def test_it_admits_an_allowed_address_without_a_token(client, settings):
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOWED_IPS = [ipaddress.ip_network("127.0.0.0/8")]
    answer = client.get("/metrics", REMOTE_ADDR="127.0.0.1")
    assert answer.status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 403


def test_it_counts_a_gateway_post_and_a_websocket_client(
    daphne_with_metrics, gateway, gateway_token, heat_meter, alice
):
    base = daphne_with_metrics
    before = samples(scrape(base)[1])
    body = json.dumps(payload(range(3))).encode()
    request = urllib.request.Request(
        base + "/api/v1/readings",
        data=body,
        headers={"Authorization": f"Bearer {gateway_token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
    with connect(
        base.replace("http://", "ws://") + "/ws/alarms/",
        origin=Origin(base),
        additional_headers={"Cookie": session_cookie(alice)},
        proxy=None,
    ) as websocket:
        json.loads(websocket.recv(timeout=10))  # the snapshot
        during = samples(scrape(base)[1])
    status, text = scrape(base)
    after = samples(text)

    assert status == 200
    assert value(after, "mbusportal_requests_total", group="gateway_api", status="200") == 1 + value(
        before, "mbusportal_requests_total", group="gateway_api", status="200"
    )
    assert value(after, "mbusportal_readings_total", outcome="inserted", transport="http") == 3
    assert value(after, "mbusportal_payload_bytes_count", transport="http") == 1
    assert value(after, "mbusportal_payload_bytes_sum", transport="http") == len(body)
    assert value(during, "mbusportal_websocket_clients") == 1
    assert value(after, "mbusportal_websocket_clients") == 0
    assert value(after, "mbusportal_requests_total", group="websockets", status="101") == 1
    assert value(after, "mbusportal_pool_wait_seconds_count", pool="async") >= 2
    # From PostgreSQL at the scrape.
    assert value(after, "mbusportal_database_size_bytes") > 0
    assert value(after, "mbusportal_reading_table_size_bytes") > 0
    assert ("mbusportal_jobs", frozenset({("status", "todo")})) in after


async def test_it_counts_an_mqtt_message(mosquitto, mqtt_subscriber, gateway, gateway_token, heat_meter):
    # The subscriber runs in this process, without a multiprocess directory: its own registry.
    def read(name, **labels):
        return REGISTRY.get_sample_value(name, labels) or 0.0

    inserted = read("mbusportal_readings_total", outcome="inserted", transport="mqtt")
    messages = read("mbusportal_payload_bytes_count", transport="mqtt")
    async with gateway_client(mosquitto, gateway, gateway_token) as client:
        await client.publish(payload(range(2)))
        assert (await client.ack())["status"] == 200
    assert read("mbusportal_readings_total", outcome="inserted", transport="mqtt") == inserted + 2
    assert read("mbusportal_payload_bytes_count", transport="mqtt") == messages + 1
    assert read("mbusportal_mqtt_connected") == 1


def test_it_adds_up_the_metrics_of_several_processes(tmp_path):
    directory = tmp_path / "prometheus"
    directory.mkdir()
    script = textwrap.dedent(
        """
        import sys
        from mbusportal import metrics
        metrics.observe_stored({"inserted": int(sys.argv[1]), "updated": 0}, transport="http")
        """
    )
    env = {"PROMETHEUS_MULTIPROC_DIR": str(directory), "DJANGO_SETTINGS_MODULE": "tests.settings", "PATH": ""}
    for count in ("3", "4"):
        subprocess.run([sys.executable, "-c", script, count], cwd=PROJECT, env=env, check=True, timeout=60)

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(directory))
    assert registry.get_sample_value("mbusportal_readings_total", {"outcome": "inserted", "transport": "http"}) == 7


def test_it_ships_a_grafana_dashboard_over_metrics_that_exist():
    import re

    from mbusportal import metrics

    dashboard = json.loads((PROJECT / "deploy/grafana/mbusportal.json").read_text())
    used = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"mbusportal_[a-z_]+", target["expr"])
    }
    known = set()
    for family in REGISTRY.collect():
        known |= {family.name + suffix for suffix in ("", "_total", "_bucket", "_count", "_sum")}
    # Read from PostgreSQL at scrape (metrics.DatabaseCollector).
    known |= set(re.findall(r'GaugeMetricFamily\(\s*"(mbusportal_[a-z_]+)"', (PROJECT / metrics.__file__).read_text()))
    assert used and used <= known, used - known
