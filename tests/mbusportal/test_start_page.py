"""/: everyone starts where they work: staff (managers) in the admin, tenants at their home."""

import pytest

pytestmark = pytest.mark.django_db


def log_in(client, username, password):
    response = client.post("/login/", {"username": username, "password": password})
    assert response.status_code == 302
    return client.get(response["Location"])


def test_it_sends_a_tenant_to_her_home_after_login(client, tina, tenancy):
    response = log_in(client, "tina", "tina-password-1")
    assert response.status_code == 302 and response["Location"] == "/home/"


def test_it_keeps_sending_a_manager_to_the_admin(client, alice, organisation):
    response = log_in(client, "alice", "alice-password-1")
    assert response.status_code == 302 and response["Location"] == "/admin/"


def test_it_sends_a_visitor_to_the_login_page(client):
    assert client.get("/")["Location"] == "/login/"
