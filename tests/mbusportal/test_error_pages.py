"""Error pages speak the user's language: Django's own are English whatever the user chose."""

import pytest
from django.test import RequestFactory
from django.utils import translation
from django.views.defaults import server_error

pytestmark = pytest.mark.django_db

DANISH = {"HTTP_ACCEPT_LANGUAGE": "da"}


@pytest.mark.parametrize(
    ("headers", "title", "text"),
    [({}, "Page not found", "Check the address"), (DANISH, "Siden findes ikke", "Tjek adressen")],
)
def test_a_missing_page_says_so_in_the_users_language(client, headers, title, text):
    response = client.get("/no-such-page/", **headers)

    page = response.content.decode()
    assert response.status_code == 404
    assert f"<h1>{title}</h1>" in page and text in page and 'href="/"' in page


def test_a_page_refused_to_a_tenant_says_why_in_danish(client, tina):
    client.force_login(tina)

    response = client.get("/alarms/", **DANISH)

    page = response.content.decode()
    assert response.status_code == 403
    assert "<h1>Ikke tilladt</h1>" in page
    with translation.override("da"):
        assert translation.gettext("The alarm dashboard is for property managers.") in page


def test_an_unreadable_request_is_answered_in_danish(client):
    response = client.get("/login/", HTTP_HOST="not-our-host.example", **DANISH)

    page = response.content.decode()
    assert response.status_code == 400
    assert "<h1>Forespørgslen kunne ikke læses</h1>" in page and '<html lang="da">' in page


def test_a_server_error_is_explained_in_danish():
    with translation.override("da"):
        response = server_error(RequestFactory().get("/"))

    page = response.content.decode()
    assert response.status_code == 500
    assert "<h1>Noget gik galt</h1>" in page and "Prøv igen om lidt" in page
