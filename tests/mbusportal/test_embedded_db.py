"""The embedded server's port: derived from the data directory, or the next free one when that is taken;
the same again when it restarts."""

import socket

import pytest

from mbusportal import embedded_db
from tests.faults import Server


def test_it_derives_a_stable_port_from_the_data_directory(tmp_path, monkeypatch):
    monkeypatch.delenv("EMBEDDED_PG_PORT", raising=False)
    monkeypatch.setenv("EMBEDDED_PG_DIR", str(tmp_path))
    first = embedded_db.port()
    assert first == embedded_db.port()
    assert embedded_db.PORT_RANGE_START <= first < embedded_db.PORT_RANGE_START + embedded_db.PORT_RANGE_SIZE


def test_it_moves_to_the_next_free_port_when_the_derived_one_is_taken(tmp_path, monkeypatch):
    monkeypatch.delenv("EMBEDDED_PG_PORT", raising=False)
    monkeypatch.setenv("EMBEDDED_PG_DIR", str(tmp_path))
    derived = embedded_db.port()
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", derived))
        squatter.listen()
        chosen = embedded_db._choose_port()
    assert chosen != derived and derived < chosen < derived + 50
    assert embedded_db.port() == chosen  # settings.py finds the server where it started
    assert embedded_db.database_url().endswith(f":{chosen}/mbusportal")


def test_it_starts_again_on_the_port_it_had_when_the_derived_one_is_free_again(tmp_path, monkeypatch):
    monkeypatch.delenv("EMBEDDED_PG_PORT", raising=False)
    monkeypatch.setenv("EMBEDDED_PG_DIR", str(tmp_path))
    derived = embedded_db.port()
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", derived))
        squatter.listen()
        chosen = embedded_db._choose_port()
    # Its clients were given `chosen`; that it could now have the derived port changes nothing.
    assert embedded_db._choose_port() == chosen != derived


def test_it_takes_an_explicit_port_as_given(tmp_path, monkeypatch):
    monkeypatch.setenv("EMBEDDED_PG_DIR", str(tmp_path))
    monkeypatch.setenv("EMBEDDED_PG_PORT", "15999")
    assert embedded_db._choose_port() == 15999 == embedded_db.port()


@pytest.fixture
def own_cluster(tmp_path, monkeypatch):
    """A throwaway embedded server of this test's own (started, and stopped after)."""
    monkeypatch.delenv("EMBEDDED_PG_PORT", raising=False)
    monkeypatch.setenv("EMBEDDED_PG_DIR", str(tmp_path / "pgdata"))
    embedded_db.start()
    yield embedded_db.database_url()
    embedded_db.stop()


def test_it_comes_back_on_its_port_when_restarted_under_a_running_daphne(own_cluster):
    server = Server(DATABASE_URL=own_cluster, ALARM_RELAY_IN_PROCESS="false")
    try:
        assert server.get("/health") == 200
        # daphne's idle pooled connections stay open across the restart, so the server's ends of
        # them linger (FIN-WAIT-2) on its port.
        embedded_db.stop()
        embedded_db.start()
        assert embedded_db.database_url() == own_cluster
        assert server.get("/health") == 200
    finally:
        print(server.stop())
