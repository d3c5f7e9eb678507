"""The real server: daphne serves /health and the admin login, and closes the pool on shutdown."""

import json
import signal
import urllib.request

import pytest

from tests.servers import start_daphne, stop_daphne

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def daphne():
    base, process = start_daphne()
    yield base, process
    stop_daphne(process)


def test_it_serves_health_and_the_admin_login(daphne):
    base, _ = daphne
    with urllib.request.urlopen(base + "/health", timeout=5) as response:
        assert response.status == 200
        assert json.load(response)["database"] == "ok"
    with urllib.request.urlopen(base + "/admin/login/", timeout=5) as response:
        assert response.status == 200
        assert b'name="username"' in response.read()


def test_it_closes_the_pool_on_shutdown(daphne):
    _, process = daphne
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=20)
    assert "async connection pool closed" in output
