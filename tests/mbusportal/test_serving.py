"""The real server: daphne serves /health and the admin login, and closes the pool on shutdown."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings

PROJECT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.django_db(transaction=True)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def url_of_the_test_database():
    db = settings.DATABASES["default"]
    return f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


@pytest.fixture
def daphne():
    port = free_port()
    env = {**os.environ, "DATABASE_URL": url_of_the_test_database(), "DJANGO_SETTINGS_MODULE": "mbusportal.settings"}
    process = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "mbusportal.asgi:application"],
        cwd=PROJECT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(base + "/health", timeout=2)
            break
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                pytest.fail("daphne did not come up:\n" + process.communicate()[0])
            time.sleep(0.2)
    yield base, process
    if process.poll() is None:
        process.kill()
        process.communicate()


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
