"""`manage.py mqtt_broker`: the project-local Mosquitto of `make run`, from the shipped configuration, on a
port derived from its folder (two checkouts never share one), with the portal as its only admin."""

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from gateways import local_broker
from gateways.local_broker import LocalBroker, render_config
from tests.brokers import login
from tests.servers import PROJECT, database_env

pytestmark = pytest.mark.django_db(transaction=True)


def manage(*arguments, **env):
    return subprocess.run(
        [sys.executable, "manage.py", *arguments],
        cwd=PROJECT,
        env={
            **{name: value for name, value in os.environ.items() if not name.startswith("MQTT_")},
            "DJANGO_SETTINGS_MODULE": "mbusportal.settings",
            **database_env(),
            **env,
        },
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_it_keeps_the_shipped_configuration_but_for_its_own_port_and_paths():
    shipped = local_broker.SHIPPED_CONFIG.read_text()
    rendered = render_config(shipped, port=18444, folder=Path("/srv/checkout/.mosquitto"), plugin="/usr/lib/p.so")

    def directives(text):
        return [line for line in text.splitlines() if line.strip() and not line.startswith("#")]

    local = {"listener", "user", "persistence_location", "plugin", "plugin_opt_config_file", "log_dest"}
    assert [line for line in directives(rendered) if line.split()[0] not in local] == [
        line for line in directives(shipped) if line.split()[0] not in local
    ]
    assert "listener 18444 127.0.0.1" in directives(rendered)
    assert "persistence_location /srv/checkout/.mosquitto/" in directives(rendered)
    assert "plugin /usr/lib/p.so" in directives(rendered)
    assert "plugin_opt_config_file /srv/checkout/.mosquitto/dynamic-security.json" in directives(rendered)
    assert "persistence true" in directives(rendered)


def test_it_gives_each_checkout_a_port_of_its_own():
    first = LocalBroker(Path("/srv/checkout-a/.mosquitto")).port
    second = LocalBroker(Path("/srv/checkout-b/.mosquitto")).port
    assert first != second
    assert {first, second} <= set(range(18400, 19000))
    assert LocalBroker(Path("/srv/checkout-a/.mosquitto")).port == first


def test_it_starts_a_broker_the_portal_uses_and_stops_it(tmp_path):
    if local_broker.mosquitto_binary() is None or local_broker.plugin_path() is None:
        if os.environ.get("REQUIRE_MQTT") == "1":
            pytest.fail("REQUIRE_MQTT=1 but mosquitto or its dynamic security plugin is missing")
        pytest.skip("no mosquitto with its dynamic security plugin (apt-get install mosquitto)")
    folder = tmp_path / ".mosquitto"
    started = manage("mqtt_broker", "start", "--folder", str(folder))
    assert started.returncode == 0, started.stderr
    try:
        assert manage("mqtt_broker", "start", "--folder", str(folder)).returncode == 0  # already running: fine
        exports = manage("mqtt_broker", "env", "--folder", str(folder)).stdout
        env = dict(line.removeprefix("export ").split("=", 1) for line in exports.splitlines())
        env = {name: shlex.split(value)[0] for name, value in env.items()}
        port = LocalBroker(folder).port
        assert env["MQTT_URL"].endswith(f"@127.0.0.1:{port}") and 18400 <= port < 19000
        assert manage("mqtt_ingest", "--probe", **env).returncode == 0
        synced = manage("mqtt_sync", **env)
        assert synced.returncode == 0, synced.stderr
        assert "matches the database (0 change(s) made)" in synced.stdout
        assert login(port, "anyone", "guess") == "Not authorized"
        assert manage("mqtt_broker", "status", "--folder", str(folder)).returncode == 0
    finally:
        assert manage("mqtt_broker", "stop", "--folder", str(folder)).returncode == 0
    assert manage("mqtt_broker", "status", "--folder", str(folder)).returncode == 3
    assert (folder / "accounts.json").stat().st_mode & 0o777 == 0o600


def test_it_says_when_mosquitto_is_not_installed(tmp_path):
    result = manage(
        "mqtt_broker", "start", "--folder", str(tmp_path), MOSQUITTO_BINARY="/nonexistent/mosquitto", PATH=""
    )
    assert result.returncode == 1
    assert "mosquitto is not installed" in result.stderr
