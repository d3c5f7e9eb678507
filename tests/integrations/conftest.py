"""The settlements' fixtures (a heat settlement over the consumption building, its full statement) for the
exchange format's tests."""

import pytest

from tests.settlements.conftest import full_statement, heat_settlement  # noqa: F401


@pytest.fixture
def alice_client(client, alice, property_managers):
    client.force_login(alice)
    return client


@pytest.fixture
def charlie_client(client, charlie, property_managers):
    client.force_login(charlie)
    return client
