"""A person opens the admin in a real browser and logs in."""

import pytest

from tests.e2e.conftest import log_in

pytestmark = pytest.mark.django_db(transaction=True)


def test_it_logs_a_superuser_into_the_admin(page, daphne_server, django_user_model):
    django_user_model.objects.create_superuser("root", password="root-password-1")
    log_in(page, daphne_server, "root", "root-password-1")
    page.wait_for_selector("#site-name")
    assert "Site administration" in page.content()


def test_it_rejects_a_wrong_password(page, daphne_server, django_user_model):
    django_user_model.objects.create_superuser("root", password="root-password-1")
    log_in(page, daphne_server, "root", "wrong")
    assert page.locator(".errornote").is_visible()
