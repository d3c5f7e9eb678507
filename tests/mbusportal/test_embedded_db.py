"""The embedded server's port: derived from the data directory, or the next free one when that is taken."""

import socket

from mbusportal import embedded_db


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


def test_it_takes_an_explicit_port_as_given(tmp_path, monkeypatch):
    monkeypatch.setenv("EMBEDDED_PG_DIR", str(tmp_path))
    monkeypatch.setenv("EMBEDDED_PG_PORT", "15999")
    assert embedded_db._choose_port() == 15999 == embedded_db.port()
