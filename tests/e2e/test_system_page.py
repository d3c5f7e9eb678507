"""The System page in a real Chromium: an operator on a phone and a laptop, in English and Danish,
without horizontal scrolling and without a Content-Security-Policy violation."""

import pytest
from django.contrib.auth.models import Permission

from tests.e2e.conftest import log_in
from tests.e2e.page_checks import overflow_problem

pytestmark = pytest.mark.django_db(transaction=True)

PHONE = {"width": 390, "height": 844}
LAPTOP = {"width": 1366, "height": 768}
HEADINGS = {"en": "Connection pools", "da": "Forbindelsespuljer"}


@pytest.mark.parametrize("language", ["en", "da"])
@pytest.mark.parametrize("viewport", [PHONE, LAPTOP], ids=["phone", "laptop"])
def test_it_fits_the_screen_under_the_policy(page, violations, daphne_server, django_user_model, language, viewport):
    operator = django_user_model.objects.create_user("olga", password="olga-password-1", is_staff=True)
    operator.user_permissions.add(Permission.objects.get(codename="view_system_alarms"))
    page.set_viewport_size(viewport)
    page.context.add_cookies([{"name": "django_language", "value": language, "url": daphne_server}])
    log_in(page, daphne_server, "olga", "olga-password-1")
    response = page.goto(f"{daphne_server}/system/")
    assert response is not None and response.ok
    assert page.get_by_role("heading", name=HEADINGS[language]).is_visible()
    assert overflow_problem(page) is None
    assert violations == []
