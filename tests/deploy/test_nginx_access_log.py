"""The shipped nginx site (deploy/nginx/mbusportal.conf) logs requests without the secret that an
invitation, a password reset or an unsubscribe link carries in its path (as daphne's log does:
tests/mbusportal/test_access_log.py). nginx alone, in front of no daphne: a 502 is logged as well."""

import contextlib
import getpass
import os
import shutil
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from mbusportal.stack import DEPLOY, render

HTTP_PORT, HTTPS_PORT, NO_DAPHNE_PORT = 18635, 18634, 18633  # this worktree's range
SECRETS = {
    "/invitation/MQ/cp1x2-0a1b2c3d4e5f60718293/": "cp1x2-0a1b2c3d4e5f60718293",
    "/password-reset/MQ/cp1x3-ffeeddccbbaa99887766/": "cp1x3-ffeeddccbbaa99887766",
    "/alarms/unsubscribe/WyJzdWIiLDEsImFiYyJd:1t2u3v:Zm9vYmFy/?from=mail": "WyJzdWIiLDEsImFiYyJd:1t2u3v:Zm9vYmFy",
}
NO_SECRET = ["/password-reset/MQ/set-password/", "/password-reset/sent/", "/login/?next=/home/"]


@pytest.fixture
def nginx(tmp_path):
    if shutil.which("nginx") is None or shutil.which("openssl") is None:
        pytest.skip("needs nginx and openssl")
    key, certificate = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"),
            *("-days", "1", "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(certificate)),
        ],
        check=True,
        capture_output=True,
    )
    log = tmp_path / "access.log"
    site = render(
        (DEPLOY / "nginx" / "mbusportal.conf").read_text(),
        {
            "UPSTREAM_SERVERS": f"    server 127.0.0.1:{NO_DAPHNE_PORT};",
            "HTTPS_LISTEN": f"127.0.0.1:{HTTPS_PORT} ssl",
            "HTTP_LISTEN": f"127.0.0.1:{HTTP_PORT}",
            "SERVER_NAME": "localhost 127.0.0.1",
            "TLS_CERTIFICATE": str(certificate),
            "TLS_CERTIFICATE_KEY": str(key),
            "STATIC_ROOT": str(tmp_path),
            "INGEST_MAX_BODY": "1m",
            "SITE_MAX_BODY": "1m",
            "ACCESS_LOG": str(log),
        },
    )
    (tmp_path / "mbusportal.conf").write_text(site)
    temps = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    for temp in temps:
        (tmp_path / "temp" / temp).mkdir(parents=True)
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        "\n".join(
            [
                *([f"user {getpass.getuser()};"] if os.geteuid() == 0 else []),
                "daemon off;",
                f"pid {tmp_path / 'nginx.pid'};",
                f"error_log {tmp_path / 'error.log'};",
                "events { worker_connections 64; }",
                "http {",
                *(f"    {temp}_temp_path {tmp_path / 'temp' / temp};" for temp in temps),
                f"    include {tmp_path / 'mbusportal.conf'};",
                "}",
            ]
        )
    )
    process = subprocess.Popen(["nginx", "-p", str(tmp_path), "-c", str(conf)], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 10
    while not _listens(HTTPS_PORT):
        if process.poll() is not None or time.monotonic() > deadline:
            process.terminate()  # nginx's fast shutdown: its workers too
            error_log = tmp_path / "error.log"
            pytest.fail(f"nginx did not start: {process.communicate()[1]} {error_log.read_text()[-2000:]}")
        time.sleep(0.1)
    yield log
    process.terminate()
    process.wait(timeout=10)


def _listens(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def _get(url: str) -> None:
    unverified = ssl._create_unverified_context()  # noqa: S323 (the test's own certificate)
    with contextlib.suppress(urllib.error.HTTPError):
        urllib.request.urlopen(url, timeout=5, context=unverified).close()


def test_it_logs_no_secret_of_a_link(nginx: Path):
    for path in [*SECRETS, *NO_SECRET]:
        _get(f"https://127.0.0.1:{HTTPS_PORT}{path}")  # 502: no daphne behind it
        with contextlib.suppress(urllib.error.URLError):
            urllib.request.urlopen(f"http://127.0.0.1:{HTTP_PORT}{path}", timeout=5).close()  # 301 to https
    time.sleep(0.2)
    log = nginx.read_text()
    for secret in SECRETS.values():
        assert secret not in log
    assert log.count("[redacted]") == 2 * len(SECRETS)
    assert "/alarms/unsubscribe/[redacted]/?from=mail" in log
    for path in NO_SECRET:
        assert f"GET {path} " in log
