"""The monthly information e-mail as the tenant receives it from a real SMTP server: text and HTML, in the
tenancy's language, with the numbers, the comparisons, the method, a chart of plain bars and the link."""

from __future__ import annotations

import re
from datetime import date
from html import escape

import pytest

from readings.formatting import format_number
from tenants.monthly_delivery import run_monthly_information
from tests.tenants import delivery_helpers
from tests.tenants.delivery_helpers import METHOD, local
from tests.tenants.helpers import parts_of

building, computed = delivery_helpers.building, delivery_helpers.computed  # the shared fixtures

pytestmark = pytest.mark.django_db

FEBRUARY_RUN = local(2025, 2, 2, 8)


@pytest.fixture(autouse=True)
def _last_month_only(settings):
    settings.MONTHLY_INFORMATION_CATCH_UP_MONTHS = 1
    settings.MONTHLY_INFORMATION_DAY = 2
    settings.PORTAL_URL = "https://portal.example"


def test_it_writes_the_numbers_and_comparisons_in_danish(smtp_server, building, computed):
    run_monthly_information(now=FEBRUARY_RUN)
    (mail,) = smtp_server.to("tina@example.org")
    assert str(mail["Subject"]) == "Dit forbrug i januar 2025 · Solvej 1"
    text, html = parts_of(mail)
    for part in (text, html):
        assert "Kære Tina Jensen" in part
        assert "Varme: 412,5 kWh" in part  # the page's decimals
        assert "Forrige måned: 375,0 kWh (denne måned +10 %)" in part
        assert "Samme måned sidste år: 450,0 kWh (denne måned \u22128 %)" in part
        assert "Gennemsnitsforbruger: 400,0 kWh (denne måned +3 %)" in part
        assert "Koldt vand: 3,250 m³" in part
        assert "1.200 kWh" in part and "1.400 kWh" in part and "Denmark" in part  # the weather comparison
        # The month's own page, with the same figures (a caught-up month is not the home page's month).
        assert f"https://portal.example/home/monthly/{building['tina'].pk}/2025-01/" in part
    assert METHOD in text and escape(METHOD) in html  # the cohort method, stated on the message


def test_it_writes_in_english_for_an_english_tenancy(smtp_server, building, computed):
    rita = building["rita"].tenant
    rita.email = "rita@example.org"
    rita.save()
    run_monthly_information(now=FEBRUARY_RUN)
    (mail,) = smtp_server.to("rita@example.org")
    assert str(mail["Subject"]) == "Your consumption in January 2025 · Solvej 1"
    text, _html = parts_of(mail)
    assert "Dear Rita," in text and "Heat: 412.5 kWh" in text and "Cold water: 3.250 m³" in text
    assert "Previous month: 375.0 kWh (this month +10 %)" in text


def test_it_draws_the_chart_as_inline_styled_bars_without_scripts_or_svg(smtp_server, building, computed):
    run_monthly_information(now=FEBRUARY_RUN)
    _text, html = parts_of(smtp_server.to("tina@example.org")[0])
    assert "<script" not in html and "<svg" not in html and "<style" not in html
    widths = re.findall(r"width:(\d+)%;height:14px", html)
    # Heat: this month 412.5 of the longest 450 (last year) → 92 %, then 375 → 83, 450 → 100, 400 → 89;
    # cold water has only this month (100).
    assert widths == ["92", "83", "100", "89", "100"]


def test_it_says_where_there_is_nothing_to_compare_with_rather_than_leaving_it_out(smtp_server, building, computed):
    run_monthly_information(now=FEBRUARY_RUN)
    text, html = parts_of(smtp_server.to("tina@example.org")[0])
    water = text.split("Koldt vand")[1].split("Varme, korrigeret")[0]
    # Cold water has no previous month, no last year and no average: each said in words, never a 0.
    for label in ("Forrige måned", "Samme måned sidste år", "Gennemsnitsforbruger"):
        assert f"{label}: intet tal at sammenligne med" in water
    assert "0 m³" not in water.replace("3,250 m³", "")
    assert "Samme måned sidste år: intet tal at sammenligne med" in html


def test_it_says_which_days_a_tenant_who_moved_out_mid_month_is_told_about(smtp_server, building, computed):
    tenancy = building["tina"]
    tenancy.move_out = date(2025, 1, 16)
    tenancy.save()
    run_monthly_information(now=FEBRUARY_RUN)
    text, html = parts_of(smtp_server.to("tina@example.org")[0])
    days = "Dit forbrug fra 1. januar 2025 til 15. januar 2025, de dage i måneden du boede her."
    assert days in text and days in html


def test_it_does_not_name_days_for_a_whole_month(smtp_server, building, computed):
    run_monthly_information(now=FEBRUARY_RUN)
    text, _html = parts_of(smtp_server.to("tina@example.org")[0])
    assert "de dage i måneden du boede her" not in text


@pytest.mark.django_db(transaction=True)  # readings are ingested on a connection of their own
def test_it_sends_the_figures_the_computation_gives(smtp_server, prop, gateway, django_user_model):
    from datetime import date

    from django.utils import translation

    from readings.formatting import format_number
    from readings.reports import DECIMALS
    from tenants.monthly import UNIT_CODES, cohort_method_text, monthly_information
    from tests.tenants.monthly_helpers import build

    users = [
        django_user_model.objects.create_user(f"tenant{n}", email=f"tenant{n}@example.org", first_name=f"T{n}")
        for n in range(6)
    ]
    tenancy = build(prop, gateway, users)["tenancies"][0]
    run_monthly_information(now=local(2025, 2, 3))  # January 2025, the real computation
    expected = monthly_information(tenancy=tenancy, month=date(2025, 1, 1))
    (mail,) = smtp_server.to("tenant0@example.org")
    text, _html = parts_of(mail)
    with translation.override(tenancy.language):
        for figures in expected.figures:
            if figures.this_month is not None:
                decimals = DECIMALS[UNIT_CODES[figures.unit]][0]  # the tenant's page's
                amount = f"{format_number(figures.this_month, decimals)} {figures.unit_label}"
                assert f"{figures.label}: {amount}" in text
        assert cohort_method_text(expected) in text
    assert len(smtp_server.messages) == 5  # every tenancy living there in January, once


def test_it_says_a_meter_sent_no_readings_rather_than_leaving_it_out(smtp_server, building, computed):
    from tenants.models import MonthlyInformationDelivery
    from tenants.monthly_delivery import queue_month

    queue_month(property=building["tina"].unit.property, month=date(2025, 1, 1))
    delivery = MonthlyInformationDelivery.objects.get(tenancy=building["tina"])
    delivery.information["figures"][0]["this_month"] = None  # the heat meter said nothing in January
    delivery.save()
    run_monthly_information(now=FEBRUARY_RUN)
    text, html = parts_of(smtp_server.to("tina@example.org")[0])
    for part in (text, html):
        assert "Varme: ingen aflæsninger i måneden" in part
        assert "Forrige måned: 375,0 kWh" in part and not re.search(r"(?<![\d.,])0 kWh", part)
    assert "Koldt vand: 3,250 m³" in text


def test_it_writes_every_figure_as_the_tenants_page_shows_it(smtp_server, building, computed):
    from django.utils import translation

    from tenants.monthly_display import display
    from tests.tenants.delivery_helpers import information_for

    run_monthly_information(now=FEBRUARY_RUN)
    text, html = parts_of(smtp_server.to("tina@example.org")[0])
    with translation.override("da"):
        page = display(information_for(building["tina"], date(2025, 1, 1)))
    shown = [f"{row.text} {kind.unit}" for kind in page.types for row in kind.rows if row.text]
    assert "412,5 kWh" in shown and "3,250 m³" in shown
    for amount in shown:
        assert amount in text and amount in html


@pytest.mark.django_db(transaction=True)  # readings are ingested on a connection of their own
def test_it_tells_a_tenancy_entered_late_her_own_days_only(smtp_server, prop, gateway, django_user_model):
    from datetime import date

    from django.utils import translation

    from readings.consumption import unit_consumption
    from readings.models import Tenancy
    from tenants.monthly import monthly_information
    from tests.tenants.monthly_helpers import build

    users = [
        django_user_model.objects.create_user(f"tenant{n}", email=f"tenant{n}@example.org", first_name=f"T{n}")
        for n in range(6)
    ]
    built = build(prop, gateway, users)
    # 5 tv: tenant5 moved out on 3 January (entered in time); nobody else lived there at January's run.
    leaving = built["tenancies"][-1]
    leaving.move_out = date(2025, 1, 3)
    leaving.save()
    run_monthly_information(now=local(2025, 2, 3))
    # Nora moved in on 3 January and was entered on 10 February.
    nora = django_user_model.objects.create_user("nora", email="nora@example.org", first_name="Nora")
    arriving = Tenancy.objects.create(unit=leaving.unit, tenant=nora, move_in=date(2025, 1, 3), language="da")
    run_monthly_information(now=local(2025, 2, 10))
    (mail,) = smtp_server.to("nora@example.org")
    text, _html = parts_of(mail)
    assert "Dit forbrug fra 3. januar 2025 til 31. januar 2025, de dage i måneden du boede her." in text
    own = monthly_information(tenancy=arriving, month=date(2025, 1, 1))
    before = monthly_information(tenancy=leaving, month=date(2025, 1, 1))
    heat = next(one for one in own.figures if one.meter_type == "heat")
    assert heat.previous_month is None and heat.same_month_last_year is None  # not the previous tenant's
    whole = unit_consumption(
        unit=leaving.unit, meter_type="heat", start=date(2025, 1, 1), end=date(2025, 2, 1), now=local(2025, 2, 10)
    ).total
    hers, theirs = heat.this_month, next(one for one in before.figures if one.meter_type == "heat").this_month
    assert whole is not None and hers is not None and theirs is not None
    assert hers + theirs == whole.value
    with translation.override("da"):
        assert f"Varme: {format_number(hers, 1)} kWh" in text
    assert len(smtp_server.to("tenant5@example.org")) == 1  # the one leaving: January once, as before


def test_it_gives_no_change_in_per_cent_between_a_whole_month_and_part_of_one(smtp_server, building, computed):
    from tenants.models import MonthlyInformationDelivery
    from tenants.monthly_delivery import queue_month

    queue_month(property=building["tina"].unit.property, month=date(2025, 1, 1))
    delivery = MonthlyInformationDelivery.objects.get(tenancy=building["tina"])
    delivery.information["previous_partial"] = True  # she moved in in mid-December
    delivery.save()
    run_monthly_information(now=FEBRUARY_RUN)
    text, html = parts_of(smtp_server.to("tina@example.org")[0])
    for part in (text, html):
        assert "Forrige måned (kun dine dage): 375,0 kWh" in part and "denne måned +10 %" not in part
        assert "Samme måned sidste år: 450,0 kWh (denne måned \u22128 %)" in part  # a whole month: compared


def test_it_compares_a_part_month_in_per_cent_with_the_average_user_only(smtp_server, building, computed):
    tenancy = building["tina"]
    tenancy.move_out = date(2025, 1, 16)
    tenancy.save()
    run_monthly_information(now=FEBRUARY_RUN)
    text, _html = parts_of(smtp_server.to("tina@example.org")[0])
    assert "Forrige måned: 375,0 kWh\r\n" in text and "Samme måned sidste år: 450,0 kWh\r\n" in text
    assert "Gennemsnitsforbruger: 400,0 kWh (denne måned +3 %)" in text  # scaled to her days
