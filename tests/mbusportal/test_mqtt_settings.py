"""MQTT_* settings: parsed into their parts, bad values fail loudly at start-up."""

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[2]

PRINT_MQTT = "from django.conf import settings; print(sorted(settings.MQTT.items()))"


def settings_with(**env):
    base = {k: v for k, v in os.environ.items() if not k.startswith("MQTT_")}
    return subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", PRINT_MQTT],
        cwd=PROJECT,
        env={**base, "DJANGO_SETTINGS_MODULE": "mbusportal.settings", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def mqtt_settings(**env):
    result = settings_with(**env)
    assert result.returncode == 0, result.stderr
    return dict(ast.literal_eval(result.stdout.strip().splitlines()[-1]))


def test_it_names_no_broker_unless_mqtt_url_is_set():
    """Not even 127.0.0.1:1883: a broker there may be another deployment's."""
    mqtt = mqtt_settings()
    assert mqtt["configured"] is False
    assert (mqtt["host"], mqtt["port"], mqtt["username"], mqtt["password"]) == (None, None, None, None)
    assert mqtt["session_expiry_s"] == 604800
    assert mqtt_settings(MQTT_URL="mqtt://127.0.0.1:1883")["configured"] is True


def test_it_derives_the_client_id_from_the_deployments_database():
    first = mqtt_settings(DATABASE_URL="postgres://portal@db1.example.com:5432/mbusportal")["client_id"]
    again = mqtt_settings(DATABASE_URL="postgres://portal@db1.example.com:5432/mbusportal")["client_id"]
    other_database = mqtt_settings(DATABASE_URL="postgres://portal@db1.example.com:5432/mbusportal2")["client_id"]
    other_server = mqtt_settings(DATABASE_URL="postgres://portal@db1.example.com:5433/mbusportal")["client_id"]
    assert first == again
    assert len({first, other_database, other_server}) == 3
    assert first.startswith("mbusportal-") and len(first) <= 23  # the length every broker must accept
    assert "mbusportal-ingest" not in {first, other_database, other_server}
    chosen = mqtt_settings(DATABASE_URL="postgres://portal@db1.example.com/mbusportal", MQTT_CLIENT_ID="portal-a")
    assert chosen["client_id"] == "portal-a"


def test_it_reads_credentials_and_tls_from_the_url_and_keeps_the_password_out_of_the_display():
    result = settings_with(MQTT_URL="mqtts://portal:p%40ss@broker.example.com")
    assert result.returncode == 0, result.stderr
    assert "('display', 'mqtts://portal@broker.example.com:8883')" in result.stdout
    assert "('password', 'p@ss')" in result.stdout and "('tls', True)" in result.stdout


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("MQTT_URL", "http://127.0.0.1:1883", "MQTT_URL must look like mqtt://[user:password@]host[:port]"),
        ("MQTT_URL", "mqtt://127.0.0.1:99999", "MQTT_URL has an invalid port"),
        ("MQTT_URL", "mqtt://127.0.0.1/some/topic", "MQTT_URL must look like"),
        ("MQTT_CLIENT_ID", "", "MQTT_CLIENT_ID must be a non-empty id"),
        ("MQTT_CLIENT_ID", "a/b", "MQTT_CLIENT_ID must be a non-empty id without spaces"),
        ("MQTT_SESSION_EXPIRY_S", "0", "MQTT_SESSION_EXPIRY_S must be from 1 to 4294967295 seconds"),
        ("MQTT_CONCURRENCY", "0", "MQTT_CONCURRENCY must be at least 1"),
        ("MQTT_DYNSEC_USERNAME", "admin", "MQTT_DYNSEC_USERNAME and MQTT_DYNSEC_PASSWORD must be set together"),
        ("MQTT_DYNSEC_TIMEOUT_S", "0", "MQTT_DYNSEC_TIMEOUT_S must be positive"),
    ],
)
def test_it_refuses_bad_values(name, value, message):
    result = settings_with(**{"MQTT_URL": "mqtt://127.0.0.1:1883", name: value})
    assert result.returncode != 0
    assert message in result.stderr


def test_it_refuses_a_broker_admin_without_a_broker():
    result = settings_with(MQTT_DYNSEC_USERNAME="admin", MQTT_DYNSEC_PASSWORD="admin-password-1")
    assert result.returncode != 0
    assert "MQTT_DYNSEC_USERNAME needs MQTT_URL" in result.stderr
