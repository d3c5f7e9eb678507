"""The site's pages under its Content-Security-Policy, in a real Chromium: scripts run, charts render,
the admin works, and the browser reports no violation (neither as an event nor on the console, which the
`page` fixture fails on)."""

from datetime import date
from decimal import Decimal

import pytest

from readings.models import Tenancy, Unit
from settlements.models import Settlement
from settlements.services import settlement_finalise, settlement_generate
from tests.e2e.conftest import log_in
from tests.factories import create_alarm

pytestmark = pytest.mark.django_db(transaction=True)


def open_under_policy(page, url):
    response = page.goto(url)
    assert response is not None and response.ok, url
    assert "default-src 'self'" in response.headers["content-security-policy"]
    return response


def test_it_renders_the_tenants_charts_under_the_policy(page, violations, daphne_server, consumption_building):
    open_under_policy(page, f"{daphne_server}/login/?next=/consumption/%3Fmonth%3D2025-02")
    page.fill("input[name=username]", "tina")
    page.fill("input[name=password]", "tina-password-1")
    page.click("form.login button[type=submit]")
    page.wait_for_selector("svg[data-chart=heat-monthly]")
    assert page.locator("svg[data-chart=heat-monthly] rect.bar").count() == 2
    assert page.locator("svg[data-chart=heat-daily] rect.bar").count() == 28
    # The stylesheet applies (a bar is filled by portal.css, not by an inline style).
    fill = page.locator("svg[data-chart=heat-daily] rect.bar").first.evaluate("bar => getComputedStyle(bar).fill")
    assert fill not in ("", "none", "rgb(0, 0, 0)")
    assert violations == []


def test_it_prints_the_statement_from_a_script_file(page, violations, daphne_server, consumption_building, alice, tina):
    prop = consumption_building["unit"].property
    settlement = Settlement.objects.create(
        property=prop,
        utility="heat",
        period_start=date(2024, 12, 1),
        period_end=date(2025, 4, 1),
        total_cost_dkk=Decimal("10000.00"),
        fixed_share_pct=Decimal("30"),
    )
    settlement_generate(settlement=settlement)
    settlement_finalise(settlement=settlement, user=alice)
    # Headless Chromium has no print dialog; record the call instead.
    page.add_init_script("window.print = function () { document.documentElement.dataset.printed = 'yes'; };")
    statement = f"/settlements/{settlement.pk}/statement/"
    open_under_policy(page, f"{daphne_server}/login/?next={statement}")
    page.fill("input[name=username]", "tina")
    page.fill("input[name=password]", "tina-password-1")
    page.click("form.login button[type=submit]")
    page.wait_for_url(f"**{statement}")
    page.click("button[data-print]")
    page.wait_for_selector("html[data-printed=yes]", timeout=5_000)
    assert violations == []


def test_it_runs_the_live_alarm_dashboard_under_the_policy(page, violations, daphne_server, alice, gateway):
    alarm = create_alarm(gateway, severity="critical", message="Leak suspected")
    log_in(page, daphne_server, "alice", "alice-password-1")
    page.wait_for_url("**/admin/")
    open_under_policy(page, f"{daphne_server}/alarms/")
    # The script connected its websocket (connect-src 'self') and drew the snapshot.
    page.wait_for_selector("#connection[data-state=live]", timeout=10_000)
    page.wait_for_selector(f"#alarm-{alarm.pk}")
    assert page.title() == "(1) Alarms · M-Bus portal"
    page.select_option("#filter-severity", "warning")
    assert page.locator(f"#alarm-{alarm.pk}").is_hidden()
    page.select_option("#filter-severity", "")
    page.locator(f"#alarm-{alarm.pk} button[data-action=acknowledge]").click()
    page.wait_for_selector(f"#alarm-{alarm.pk} td.status.acknowledged", timeout=5_000)
    page.goto("about:blank")  # close the websocket before daphne's database is flushed
    assert violations == []


def test_it_keeps_the_admin_working_under_the_policy(page, violations, daphne_server, property_managers, prop, tina):
    Unit.objects.create(property=prop, label="3 tv", floor_area_m2=Decimal("64"))
    open_under_policy(page, f"{daphne_server}/admin/login/")
    log_in(page, daphne_server, "alice", "alice-password-1")
    page.wait_for_url("**/admin/")

    # A form with an autocomplete (select2), a select and the calendar of a date field.
    open_under_policy(page, f"{daphne_server}/admin/readings/tenancy/add/")
    page.click("#id_unit + .select2 .select2-selection")
    page.fill(".select2-search__field", "3 tv")
    page.click(".select2-results__option:has-text('3 tv')")
    page.fill("#id_name", "Tina Test")
    page.click("#calendarlink0")
    assert page.locator("#calendarbox0").is_visible()
    page.click("#calendarbox0 .calendarnav-previous")
    page.click("#calendarbox0 td:not(.nonday) a >> nth=0")
    assert page.input_value("#id_move_in").endswith("-01")
    page.click("input[name=_save]")
    page.wait_for_selector(".messagelist .success")
    assert Tenancy.objects.filter(unit__label="3 tv", tenant__last_name="Test").exists()

    # The change list (actions, the date hierarchy) and the language switch (admin-portal.js).
    assert page.locator("#changelist-form select[name=action]").is_visible()
    assert page.locator("nav.toplinks").is_visible()
    with page.expect_navigation():
        page.select_option("#language-select", "da")
    assert page.locator("h1").inner_text().startswith("Vælg lejeforhold")
    assert violations == []
