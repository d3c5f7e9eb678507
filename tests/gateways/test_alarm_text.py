"""gateways.alarm_text: every alarm type's text from its parameters, in Danish and English, and the
parameters recovered from the English texts alarms were stored with before (migration 0017)."""

import importlib
from typing import Any

import pytest
from django.apps import apps
from django.urls import reverse
from django.utils import translation

from gateways import alarm_legacy, alarm_text, events
from gateways.models import Alarm, AlarmType

METER = "KAM 12345678"
# For each type: its parameters, the English text and the Danish.
SAMPLES: dict[str, tuple[dict[str, Any], str, str]] = {
    AlarmType.LOW_BATTERY: (
        {"meter": METER, "level": 9},
        "Battery at 9 % on meter KAM 12345678.",
        "Batteriet er på 9 % på måler KAM 12345678.",
    ),
    AlarmType.METER_ERROR: (
        {"meter": METER, "problems": ["permanent", "application_busy"]},
        "meter KAM 12345678 reports a permanent error and application busy.",
        "måler KAM 12345678 melder en permanent fejl og applikationen optaget.",
    ),
    AlarmType.GATEWAY_OFFLINE: (
        {"last_seen": "2026-12-01 10:00", "hours": 26},
        "Last payload 2026-12-01 10:00 UTC; silent for more than 26 hours.",
        "Seneste data 2026-12-01 10:00 UTC; tavs i mere end 26 timer.",
    ),
    AlarmType.LEAK_SUSPECTED: (
        {"meter": METER, "hours": 24, "flow_lph": "2.5", "leak_hours": 12},
        "Water flowing for 24 hours without pause on meter KAM 12345678 (rule: at least 2.5 l/h in every hour for"
        " 12 hours).",
        "Vand har løbet i 24 timer uden pause på måler KAM 12345678 (regel: mindst 2,5 l/t i hver time i 12 timer).",
    ),
    AlarmType.BURST_SUSPECTED: (
        {"meter": METER, "used_m3": "1.25", "until": "2026-12-01 10:00", "limit_m3": "1"},
        "1.25 m³ within an hour on meter KAM 12345678, the last such hour up to 2026-12-01 10:00 UTC (rule: more"
        " than 1 m³ in one hour).",
        "1,25 m³ inden for en time på måler KAM 12345678, den seneste sådanne time frem til 2026-12-01 10:00 UTC"
        " (regel: mere end 1 m³ på én time).",
    ),
    AlarmType.SUPPLY_IMBALANCE: (
        {"meter_type": "heat", "meter": METER, "month": "2026-10", "share": "75.00", "usual": "25.00", "months": 6},
        "Heat supply meter KAM 12345678, October 2026: 75.00 % of the supply is not accounted for by the units'"
        " meters; usually 25.00 % (median of the 6 months before).",
        "Forsyningsmåler (Varme) KAM 12345678, oktober 2026: 75,00 % af forsyningen genfindes ikke i enhedernes"
        " målere; normalt 25,00 % (median af de 6 måneder før).",
    ),
    AlarmType.RELAY_BEHIND: (
        {"lag_s": 120, "cursor": 5},
        "the alarm relay has not published alarm changes for 120 s (its cursor: change 5)",
        "alarmrelæet har ikke udsendt alarmændringer i 120 s (dets markør: ændring 5)",
    ),
    AlarmType.JOB_FAILING: (
        {"jobs": [{"task": "a.b", "count": 3, "for_good": False}, {"task": "c", "count": 1, "for_good": True}]},
        "jobs failing in the last hour: a.b failed 3 times; c failed 1 time, for good",
        "job, der fejlede inden for den seneste time: a.b fejlede 3 gange; c fejlede 1 gang, endeligt",
    ),
    AlarmType.GATEWAY_REFUSING: (
        {"serial": "GW-1", "refused": 7, "total": 9},
        "GW-1: 7 of 9 readings refused in the last hour; check the gateway's configuration and meters",
        "GW-1: 7 af 9 aflæsninger afvist inden for den seneste time; kontrollér gatewayens opsætning og målere",
    ),
    AlarmType.MQTT_DISCONNECTED: (
        {"seconds": 61, "reason": "connection refused"},
        "no session with the MQTT broker for 61 s: connection refused",
        "ingen forbindelse til MQTT-brokeren i 61 s: connection refused",
    ),
    AlarmType.POOL_SATURATED: (
        {"pools": [{"name": "async", "in_use": 9, "max_size": 10, "waiting": 2, "seconds": 30}]},
        "async pool: 9 of 10 connections in use, 2 request(s) waiting, for 30 s or more",
        "async-pulje: 9 af 10 forbindelser i brug, 2 forespørgsel(er) venter, i 30 s eller mere",
    ),
}
# Raised by nothing in this release (only by hand or by older code): their stored text is their text.
LEGACY_ONLY = {AlarmType.METER_SILENT, AlarmType.REGISTER_BACKWARDS}


def test_every_alarm_type_has_a_text_or_is_known_to_have_none():
    assert set(SAMPLES) | LEGACY_ONLY == set(AlarmType)
    assert not set(SAMPLES) & LEGACY_ONLY


@pytest.mark.parametrize("type", list(SAMPLES), ids=str)
def test_it_renders_every_type_in_english_and_danish(type):
    params, english, danish = SAMPLES[type]
    with translation.override("en"):
        assert alarm_text.render(type, params) == english
    with translation.override("da"):
        assert alarm_text.render(type, params) == danish
    assert alarm_text.english(type, params) == english


@pytest.mark.parametrize("type", sorted(LEGACY_ONLY), ids=str)
def test_types_without_parameters_say_their_stored_text(type):
    with translation.override("da"):
        assert alarm_text.render(type, {"anything": 1}, "As stored.") == "As stored."


def test_it_falls_back_to_the_stored_text_for_parameters_it_cannot_read():
    with translation.override("da"):
        assert alarm_text.render(AlarmType.LOW_BATTERY, {"meter": METER}, "Old text.") == "Old text."
        assert alarm_text.render(AlarmType.LOW_BATTERY, {}, "Old text.") == "Old text."
        assert alarm_text.render("a_type_from_a_newer_release", {"x": 1}, "Old text.") == "Old text."


def test_the_payload_carries_the_texts_in_every_site_language():
    params, english, danish = SAMPLES[AlarmType.LEAK_SUSPECTED]
    row = {
        "id": 1,
        "property_id": 2,
        "property_name": "Solvej 1",
        "gateway_id": 3,
        "gateway_name": "Stairwell A",
        "gateway_serial": "GW-1",
        "installation_id": 4,
        "manufacturer": "KAM",
        "meter_serial": "12345678",
        "meter_type": "cold_water",
        "unit_label": "1 tv",
        "type": "leak_suspected",
        "severity": "critical",
        "params": params,
        "message": english,
        "raised_at": None,
        "acknowledged_at": None,
        "acknowledged_by_id": None,
        "acknowledger_username": None,
        "acknowledger_first_name": None,
        "acknowledger_last_name": None,
        "cleared_at": None,
        "cleared_by_id": None,
        "clearer_username": None,
        "clearer_first_name": None,
        "clearer_last_name": None,
        "assigned_to_id": None,
        "assignee_username": None,
        "assignee_first_name": None,
        "assignee_last_name": None,
        "change_seq": 7,
    }
    payload = events.alarm_payload(row)
    assert payload["texts"]["en"] == {
        "type": "Leak suspected",
        "severity": "Critical",
        "meter_type": "Cold water",
        "message": english,
    }
    assert payload["texts"]["da"]["message"] == danish
    assert payload["texts"]["da"]["severity"] == "Kritisk"
    assert payload["texts"]["da"]["meter_type"] == "Koldt vand"
    # A legacy alarm's text is sent once, as `message`, not once per language.
    legacy = events.alarm_payload({**row, "params": {}, "message": "Water flowing for 24 hours without pause."})
    assert legacy["texts"]["da"]["message"] is None
    assert legacy["message"] == "Water flowing for 24 hours without pause."


# The English texts as the releases before parameters stored them.
OLD_TEXTS: dict[str, list[tuple[str, dict[str, Any]]]] = {
    AlarmType.LOW_BATTERY: [
        ("Battery at 9 % on meter KAM 12345678.", {"meter": METER, "level": 9}),
        ("meter KAM 12345678 reports power low.", {"meter": METER, "power_low": True}),
    ],
    AlarmType.METER_ERROR: [
        (
            "meter KAM 12345678 reports a permanent error and an application error.",
            {"meter": METER, "problems": ["permanent", "application_error"]},
        )
    ],
    AlarmType.GATEWAY_OFFLINE: [
        (
            "Last payload 2026-12-01 10:00 UTC; silent for more than 26 hours.",
            {"last_seen": "2026-12-01 10:00", "hours": 26},
        ),
        ("No payload yet; silent for more than 0.5 hours.", {"last_seen": None, "hours": 0.5}),
    ],
    AlarmType.LEAK_SUSPECTED: [
        (
            "Water flowing for 24 hours without pause on meter KAM 12345678 (rule: at least 2.5 l/h in every hour"
            " for 12 hours).",
            {"meter": METER, "hours": 24, "flow_lph": "2.5", "leak_hours": 12},
        )
    ],
    AlarmType.BURST_SUSPECTED: [
        (
            "1.25 m³ within an hour on meter KAM 12345678, the last such hour up to ? (rule: more than 1 m³ in one"
            " hour).",
            {"meter": METER, "used_m3": "1.25", "until": None, "limit_m3": "1"},
        )
    ],
    AlarmType.SUPPLY_IMBALANCE: [(SAMPLES[AlarmType.SUPPLY_IMBALANCE][1], SAMPLES[AlarmType.SUPPLY_IMBALANCE][0])],
    AlarmType.RELAY_BEHIND: [(SAMPLES[AlarmType.RELAY_BEHIND][1], SAMPLES[AlarmType.RELAY_BEHIND][0])],
    AlarmType.JOB_FAILING: [
        (
            "jobs failing in the last hour: tests.flaky failed 3 time(s); tests.doomed failed 1 time(s), for good",
            {
                "jobs": [
                    {"task": "tests.flaky", "count": 3, "for_good": False},
                    {"task": "tests.doomed", "count": 1, "for_good": True},
                ]
            },
        )
    ],
    AlarmType.GATEWAY_REFUSING: [(SAMPLES[AlarmType.GATEWAY_REFUSING][1], SAMPLES[AlarmType.GATEWAY_REFUSING][0])],
    AlarmType.MQTT_DISCONNECTED: [(SAMPLES[AlarmType.MQTT_DISCONNECTED][1], SAMPLES[AlarmType.MQTT_DISCONNECTED][0])],
    AlarmType.POOL_SATURATED: [
        (
            "async pool: 9 of 10 connections in use, 2 request(s) waiting, for 30 s or more; sync pool: 5 of 5"
            " connections in use, 0 request(s) waiting, for 31 s or more",
            {
                "pools": [
                    {"name": "async", "in_use": 9, "max_size": 10, "waiting": 2, "seconds": 30},
                    {"name": "sync", "in_use": 5, "max_size": 5, "waiting": 0, "seconds": 31},
                ]
            },
        )
    ],
}


@pytest.mark.parametrize(
    ("type", "text", "params"), [(t, text, p) for t, cases in OLD_TEXTS.items() for text, p in cases]
)
def test_it_recovers_the_parameters_of_every_old_format(type, text, params):
    assert alarm_legacy.parse(type, text) == params


@pytest.mark.parametrize(
    ("type", "text"),
    [
        # The demo's old texts, and ones written by hand: no parameters say them exactly.
        (AlarmType.LOW_BATTERY, "Battery at 9 %; replace within a month."),
        (AlarmType.METER_ERROR, "Temperature sensor error flag set by the meter."),
        (AlarmType.METER_ERROR, "meter KAM 1 reports a strange smell."),
        (AlarmType.GATEWAY_OFFLINE, "No payload for 26 hours."),
        (AlarmType.METER_SILENT, "No reading for 3 days."),
    ],
)
def test_it_leaves_texts_it_cannot_say_again_as_they_are(type, text):
    assert alarm_legacy.parse(type, text) is None


@pytest.mark.django_db
def test_the_migration_gives_old_alarms_parameters_and_keeps_the_rest(gateway, heat_meter):
    migration = importlib.import_module("gateways.migrations.0017_alarm_params")
    old = Alarm.objects.create(
        gateway=gateway,
        installation=heat_meter,
        property_id=gateway.property_id,
        type=AlarmType.LOW_BATTERY,
        severity="warning",
        message="Battery at 9 % on meter KAM 12345678.",
    )
    hand_written = Alarm.objects.create(
        gateway=gateway,
        property_id=gateway.property_id,
        type=AlarmType.GATEWAY_OFFLINE,
        severity="warning",
        message="No payload for 26 hours.",
    )
    migration.parameters_from_messages(apps, None)
    old.refresh_from_db()
    hand_written.refresh_from_db()
    assert old.params == {"meter": METER, "level": 9}
    assert hand_written.params == {}
    with translation.override("da"):
        assert old.text() == "Batteriet er på 9 % på måler KAM 12345678."
        assert hand_written.text() == "No payload for 26 hours."
    assert old.message == "Battery at 9 % on meter KAM 12345678."


@pytest.mark.django_db
@pytest.mark.parametrize("language", ["da", "en"])
def test_the_script_catalogue_speaks_the_request_language(client, language):
    client.cookies["django_language"] = language
    response = client.get(reverse("gateways:alarm-jsi18n"))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/javascript")
    if language == "da":
        assert '"Acknowledge": "Kvitt\\u00e9r"' in response.content.decode()
    else:
        assert '"Acknowledge"' not in response.content.decode()


@pytest.mark.django_db
def test_the_offline_check_stores_parameters_and_their_english_text(gateway):
    from datetime import timedelta
    from io import StringIO

    from django.core.management import call_command
    from django.utils import timezone

    gateway.last_seen_at = timezone.now() - timedelta(hours=30)
    gateway.save(update_fields=["last_seen_at"])
    call_command("check_gateways", stdout=StringIO())
    alarm = Alarm.objects.get(type=AlarmType.GATEWAY_OFFLINE)
    assert alarm.params == {"last_seen": f"{gateway.last_seen_at:%Y-%m-%d %H:%M}", "hours": 26}
    assert alarm.message == alarm_text.english(AlarmType.GATEWAY_OFFLINE, alarm.params)
    with translation.override("da"):
        assert alarm.text().endswith("tavs i mere end 26 timer.")
