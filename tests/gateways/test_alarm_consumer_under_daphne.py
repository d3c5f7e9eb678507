"""/ws/alarms/ under a real daphne: clients that lie about what they read, and a snapshot that fails."""

import contextlib
import itertools
import json
import socket
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.conf import settings
from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State
from websockets.sync.client import connect
from websockets.typing import Origin
from websockets.uri import parse_uri

from gateways import consumers
from gateways.models import Alarm
from mbusportal import db
from tests.factories import create_alarm, session_cookie
from tests.servers import start_daphne, stop_daphne

pytestmark = pytest.mark.django_db(transaction=True)

MAX_PENDING_BYTES = 4 << 20  # the default
FRAME_BYTES = 512 << 10
# 20 MiB to each: far past the bound plus what the kernel's socket buffers take (up to 4 MiB here).
FRAMES_PER_LIAR = 40
LIARS = 3
# Beyond the bytes buffered for a liar: the frame in flight and its transient copies (row,
# JSON, UTF-8, websocket frame, for both clients), and what the allocator keeps (a peak of
# +5 to +9 MiB in all seen; unbounded, daphne would hold about 16 MiB of each liar's 20).
PEAK_SLACK = 8 << 20
# After the drops: the allocator may keep about one freed buffer for reuse (up to +4.4 MiB seen);
# buffers still held would add up, one per liar.
KEPT_SLACK = 2 << 20


def browser_like(base: str, cookie: str):
    """A websocket client that reads every frame it is sent (websockets' sync client)."""
    return connect(
        base.replace("http://", "ws://") + "/ws/alarms/",
        origin=Origin(base),
        additional_headers={"Cookie": cookie},
        proxy=None,
        max_size=None,
    )


def rss_bytes(pid: int) -> int:
    """Resident set size of a process (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise LookupError("no VmRSS")


class NonReadingClient:
    """A websocket client on a plain socket that never reads after the handshake (websockets' sans-I/O protocol).

    Its receive buffer is made small before connecting, so that the kernel
    soon stops taking what daphne sends: the rest waits in daphne's memory.
    """

    def __init__(self, base: str, cookie: str) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.connect(("127.0.0.1", int(base.rsplit(":", 1)[1])))
        self.protocol = ClientProtocol(parse_uri(base.replace("http://", "ws://") + "/ws/alarms/"), origin=Origin(base))
        request = self.protocol.connect()
        request.headers["Cookie"] = cookie
        self.protocol.send_request(request)
        self._flush()
        self.sock.settimeout(10)
        while self.protocol.state is State.CONNECTING:
            self.protocol.receive_data(self.sock.recv(512))
        assert self.protocol.state is State.OPEN, self.protocol.handshake_exc

    def _flush(self) -> None:
        self.sock.sendall(b"".join(self.protocol.data_to_send()))

    def send_json(self, content: dict[str, object]) -> None:
        """Send a text frame; nothing if the server has dropped us already."""
        self.protocol.send_text(json.dumps(content).encode())
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            self._flush()

    def dropped_by_server(self, quiet_s: float = 3.0) -> bool:
        """Read at last; True if the server ended the connection, False if it kept it open."""
        self.sock.settimeout(quiet_s)
        try:
            while self.sock.recv(1 << 16):
                pass
        except TimeoutError:
            return False
        except ConnectionResetError:
            pass
        return True

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def daphne_with_relay():
    base, process = start_daphne(ALARM_WS_MAX_PENDING_BYTES=str(MAX_PENDING_BYTES))
    yield base, process
    stop_daphne(process)


@pytest.mark.parametrize("lie", ["never_acknowledges", "acknowledges_unread_frames"])
def test_it_drops_clients_that_do_not_read_and_gives_their_memory_back(daphne_with_relay, alice, gateway, lie):
    base, process = daphne_with_relay
    cookie = session_cookie(alice)
    alarm = create_alarm(gateway, message="x")
    changes = itertools.count()

    def change_alarm() -> int:
        """One event of about FRAME_BYTES for every watcher; returns its number."""
        n = next(changes)
        Alarm.objects.filter(pk=alarm.pk).update(message=f"{n:08d}" + "x" * FRAME_BYTES)
        return n

    with browser_like(base, cookie) as honest:
        received = 0

        def honest_reads_one() -> Any:
            nonlocal received
            frame = json.loads(honest.recv(timeout=10))
            received += 1
            honest.send(json.dumps({"type": "ack", "frames": received}))
            return frame

        honest_reads_one()  # the snapshot
        for _ in range(3):  # warm up: what handling a frame of this size needs is allocated once
            change_alarm()
            honest_reads_one()
        baseline = peak = rss_bytes(process.pid)
        dropped, after = [], []
        for _ in range(LIARS):
            liar = NonReadingClient(base, cookie)
            for _ in range(FRAMES_PER_LIAR):
                n = change_alarm()
                # The client that reads gets every frame, whatever the other one does.
                assert honest_reads_one()["events"][0]["alarm"]["message"].startswith(f"{n:08d}")
                if lie == "acknowledges_unread_frames":
                    liar.send_json({"type": "ack", "frames": 1_000_000_000})
                peak = max(peak, rss_bytes(process.pid))
            dropped.append(liar.dropped_by_server())
            liar.close()
            time.sleep(1.0)  # daphne's periodic clean-up of closed connections
            after.append(rss_bytes(process.pid))
    print(
        f"daphne RSS: baseline {baseline / 2**20:.1f} MiB, peak +{(peak - baseline) / 2**20:.1f} MiB, after each drop"
        f" {', '.join(f'+{(rss - baseline) / 2**20:.1f}' for rss in after)} MiB"
        f" ({FRAMES_PER_LIAR * FRAME_BYTES / 2**20:.0f} MiB sent to each, bound {MAX_PENDING_BYTES / 2**20:.0f} MiB)"
    )
    assert dropped == [True] * LIARS
    assert peak - baseline < MAX_PENDING_BYTES + PEAK_SLACK
    assert after[-1] - baseline < MAX_PENDING_BYTES + KEPT_SLACK


@pytest.mark.skipif(
    settings.DATABASE_PGBOUNCER,
    reason="needs the pool's per-session statement_timeout, which is PgBouncer's connect_query there",
)
def test_it_closes_with_a_code_daphne_accepts_when_the_snapshot_fails(alice, gateway):
    # The snapshot's query waits for a lock this test holds, until its statement timeout.
    base, process = start_daphne(ALARM_RELAY_IN_PROCESS="false", DB_STATEMENT_TIMEOUT_MS="200")
    try:
        with psycopg.connect(db.conninfo()) as locker:
            locker.execute("LOCK TABLE gateways_alarm IN ACCESS EXCLUSIVE MODE")
            with browser_like(base, session_cookie(alice)) as ws, pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=10)
    finally:
        process.terminate()
        output = process.communicate(timeout=10)[0]
    assert closed.value.rcvd is not None and closed.value.rcvd.code == consumers.CLOSE_SERVER_ERROR, output
    assert "snapshot failed" in output
    assert "invalid close code" not in output
