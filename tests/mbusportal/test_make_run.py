"""`make run` on a port already in use stops before it touches anything (database, broker, subscriber)."""

import socket
import subprocess

from tests.servers import PROJECT


def make(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["make", *args], cwd=PROJECT, capture_output=True, text=True, timeout=60)


def test_it_refuses_a_busy_port_in_one_line():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = make("port-free", "HOST=127.0.0.1", f"PORT={port}")
    assert result.returncode != 0
    assert f"make run: 127.0.0.1:{port} is in use (another make run?)" in result.stderr


def test_it_lets_a_free_port_pass():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert make("port-free", "HOST=127.0.0.1", f"PORT={port}").returncode == 0


def test_run_checks_the_port_before_the_database_migrations_and_the_broker():
    """A second `make run` re-seeded the live database and stopped the first one's broker on its way out."""
    planned = make("-n", "run", "PORT=18000").stdout
    assert planned.index("is in use") < planned.index("embedded_db start") < planned.index("mqtt_broker start")
