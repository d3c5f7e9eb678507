"""POST /api/v1/readings against real PostgreSQL: counts, idempotence, every error class, alarms."""

import asyncio
import codecs
import gzip
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async

from gateways.models import Alarm, Gateway
from mbusportal import db
from readings.models import MeterInstallation, Reading, ReadingDaily

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fresh_pool")]

URL = "/api/v1/readings"
T0 = datetime(2026, 3, 1, 0, 0, tzinfo=UTC)


def reading(hour=0, value="100.5", meter="12345678", manufacturer="KAM", unit="kWh", **extra):
    item = {
        "meter": meter,
        "manufacturer": manufacturer,
        "timestamp": (T0 + timedelta(hours=hour)).isoformat(),
        "value": value,
        "unit": unit,
    }
    return {**item, **extra}


async def post(client, token, body, *, encoding=None, content_type="application/json"):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Authorization": f"Bearer {token}"}
    if encoding:
        headers["Content-Encoding"] = encoding
    return await client.post(URL, data=data, content_type=content_type, headers=headers)


async def stored():
    return [
        (r.installation_id, r.timestamp, r.value)
        async for r in Reading.objects.order_by("installation_id", "timestamp")
    ]


async def test_it_stores_readings_and_reports_counts(async_client, gateway_token, heat_meter, gateway):
    response = await post(async_client, gateway_token, {"readings": [reading(0, "100.5"), reading(1, "101")]})
    assert response.status_code == 200, response.content
    assert response.json() == {"inserted": 2, "updated": 0, "unchanged": 0, "folded": 0}
    assert await stored() == [
        (heat_meter.pk, T0, Decimal("100.5")),
        (heat_meter.pk, T0 + timedelta(hours=1), Decimal("101")),
    ]
    assert await ReadingDaily.objects.filter(installation=heat_meter).aexists()
    await gateway.arefresh_from_db()
    assert gateway.last_seen_at is not None


async def test_it_changes_nothing_when_a_payload_is_sent_again(async_client, gateway_token, heat_meter):
    payload = {"readings": [reading(0, "100.5"), reading(1, "101")]}
    await post(async_client, gateway_token, payload)
    before = await stored()
    response = await post(async_client, gateway_token, payload)
    assert response.json() == {"inserted": 0, "updated": 0, "unchanged": 2, "folded": 0}
    assert await stored() == before


async def test_it_updates_a_corrected_value(async_client, gateway_token, heat_meter):
    await post(async_client, gateway_token, {"readings": [reading(0, "100.5")]})
    response = await post(async_client, gateway_token, {"readings": [reading(0, "100.7")]})
    assert response.json() == {"inserted": 0, "updated": 1, "unchanged": 0, "folded": 0}
    assert await stored() == [(heat_meter.pk, T0, Decimal("100.7"))]


async def test_it_folds_duplicates_in_one_payload_to_the_last(async_client, gateway_token, heat_meter):
    response = await post(
        async_client, gateway_token, {"readings": [reading(0, "1"), reading(0, "2"), reading(0, "3")]}
    )
    assert response.json() == {"inserted": 1, "updated": 0, "unchanged": 0, "folded": 2}
    assert await stored() == [(heat_meter.pk, T0, Decimal("3"))]


@pytest.mark.parametrize(
    ("value", "unit_name", "expected"),
    [("1.5", "MWh", "1500"), ("2500", "Wh", "2.5"), ("1", "GJ", "277.777778"), (7, "kWh", "7")],
)
async def test_it_converts_energy_units_to_the_register_unit(
    async_client, gateway_token, heat_meter, value, unit_name, expected
):
    response = await post(async_client, gateway_token, {"readings": [reading(0, value, unit=unit_name)]})
    assert response.status_code == 200, response.content
    assert await stored() == [(heat_meter.pk, T0, Decimal(expected))]


@pytest.mark.parametrize(("value", "unit_name"), [("999999999999", "MWh"), ("4000000000", "GJ")])
async def test_it_refuses_a_value_too_large_for_the_register_once_converted(
    async_client, gateway_token, heat_meter, value, unit_name
):
    # Within the bounds as sent, beyond numeric(18, 6) in kWh: a 422 naming the value, not a 500.
    response = await post(async_client, gateway_token, {"readings": [reading(0), reading(1, value, unit=unit_name)]})
    assert response.status_code == 422, response.content
    assert [(error["index"], error["field"]) for error in response.json()["errors"]] == [(1, "value")]
    assert "kWh; the register takes" in response.json()["errors"][0]["message"]
    assert await Reading.objects.acount() == 0


async def test_it_converts_litres_to_cubic_metres(async_client, gateway_token, water_meter):
    body = {"readings": [reading(0, "1234.5", meter="55550001", manufacturer="AXI", unit="L")]}
    assert (await post(async_client, gateway_token, body)).status_code == 200
    assert await stored() == [(water_meter.pk, T0, Decimal("1.2345"))]


async def swap_meter(meter, unit, gateway, at, register_unit="kWh"):
    """The same physical meter, refurbished and re-installed: a new installation from `at` on."""
    meter.removed_at = at
    await meter.asave()
    return await MeterInstallation.objects.acreate(
        unit=unit,
        gateway=gateway,
        meter_serial=meter.meter_serial,
        manufacturer=meter.manufacturer,
        meter_type=meter.meter_type,
        register_unit=register_unit,
        installed_at=at,
    )


async def test_it_routes_readings_across_a_meter_swap_in_one_payload(
    async_client, gateway_token, heat_meter, unit, gateway
):
    new = await swap_meter(heat_meter, unit, gateway, T0 + timedelta(hours=2))
    response = await post(
        async_client, gateway_token, {"readings": [reading(1, "500"), reading(2, "3"), reading(3, "4")]}
    )
    assert response.status_code == 200, response.content
    assert await stored() == [
        (heat_meter.pk, T0 + timedelta(hours=1), Decimal("500")),
        (new.pk, T0 + timedelta(hours=2), Decimal("3")),
        (new.pk, T0 + timedelta(hours=3), Decimal("4")),
    ]


async def test_it_sees_a_meter_swap_made_between_two_posts(async_client, gateway_token, heat_meter, unit, gateway):
    # The endpoint keeps the last index of the property's meters; a change must reach the next post.
    first = await post(async_client, gateway_token, {"readings": [reading(1, "500")]})
    assert first.status_code == 200, first.content
    new = await swap_meter(heat_meter, unit, gateway, T0 + timedelta(hours=2), register_unit="MWh")
    second = await post(async_client, gateway_token, {"readings": [reading(3, "4000")]})
    assert second.status_code == 200, second.content
    assert await stored() == [
        (heat_meter.pk, T0 + timedelta(hours=1), Decimal("500")),
        (new.pk, T0 + timedelta(hours=3), Decimal("4")),
    ]


async def test_it_accepts_a_meter_installation_id_and_gzip(async_client, gateway_token, heat_meter):
    item = {"meter_installation_id": heat_meter.pk, "timestamp": T0.isoformat(), "value": 5, "unit": "kWh"}
    response = await post(
        async_client, gateway_token, gzip.compress(json.dumps({"readings": [item]}).encode()), encoding="gzip"
    )
    assert response.json()["inserted"] == 1


@pytest.mark.parametrize(
    ("named", "message"),
    [
        ({"meter": "99999999"}, "installation {id} is meter KAM 12345678, not KAM 99999999"),
        ({"manufacturer": "ELS"}, "installation {id} is meter KAM 12345678, not ELS 12345678"),
        ({"meter": "99999999", "manufacturer": "KAM"}, "installation {id} is meter KAM 12345678, not KAM 99999999"),
    ],
)
async def test_it_refuses_a_reading_whose_meter_contradicts_its_installation_id(
    async_client, gateway_token, heat_meter, named, message
):
    # Which of the two is wrong cannot be told: stored under either, the reading could bill the wrong tenant.
    item = {"meter_installation_id": heat_meter.pk, "timestamp": T0.isoformat(), "value": 5, "unit": "kWh", **named}
    response = await post(async_client, gateway_token, {"readings": [reading(1), item]})
    assert response.status_code == 422, response.content
    [error] = response.json()["errors"]
    assert error == {"index": 1, "field": "meter", "message": message.format(id=heat_meter.pk)}
    assert await stored() == []


async def test_it_takes_an_installation_id_with_the_meters_own_address(async_client, gateway_token, heat_meter):
    item = {"meter_installation_id": heat_meter.pk, "meter": "12345678", "manufacturer": "kam"}
    response = await post(async_client, gateway_token, {"readings": [{**reading(), **item}]})
    assert response.json()["inserted"] == 1


@pytest.mark.parametrize(
    ("item", "field", "message"),
    [
        ({"timestamp": "2026-03-01T00:00:00"}, "timestamp", "needs a UTC offset"),
        ({"timestamp": "yesterday"}, "timestamp", "is not an ISO 8601"),
        ({"timestamp": "2099-01-01T00:00:00+00:00"}, "timestamp", "is in the future"),
        ({"value": "lots"}, "value", "is not a number"),
        ({"value": -1}, "value", "between 0 and"),
        ({"value": None}, "value", "required"),
        ({"unit": "m3"}, "unit", "cannot be converted"),
        ({"unit": "furlongs"}, "unit", "unknown unit"),
        ({"meter": "99999999"}, "meter", "no meter KAM 99999999 installed"),
        ({"meter_type": "cold_water"}, "meter_type", "does not match"),
        ({"battery_level_pct": 101}, "battery_level_pct", "from 0 to 100"),
        ({"rssi_dbm": "strong"}, "rssi_dbm", "whole number"),
        ({"colour": "blue"}, "colour", "unknown field"),
    ],
)
async def test_it_refuses_an_invalid_reading_and_writes_nothing(
    async_client, gateway_token, heat_meter, item, field, message
):
    response = await post(async_client, gateway_token, {"readings": [reading(0), {**reading(1), **item}]})
    assert response.status_code == 422
    body = response.json()
    assert body["error_count"] == 1
    assert body["errors"][0]["index"] == 1 and body["errors"][0]["field"] == field
    assert message in body["errors"][0]["message"]
    assert await Reading.objects.acount() == 0


@pytest.mark.parametrize(
    "timestamp", ["2026-W10-1T00:00:00Z", "2026-03-01T00:00:00+01:00:30", "2026-03-01T00:00:00\x00+01:00"]
)
async def test_it_names_the_reading_whose_timestamp_is_iso_8601_but_not_rfc_3339(
    async_client, gateway_token, heat_meter, timestamp
):
    # Python reads these, msgspec does not: the answer still names the reading and its field.
    body = {"readings": [reading(0), {**reading(1), "timestamp": timestamp}]}
    response = await post(async_client, gateway_token, body)
    assert response.status_code == 422
    assert [(error["index"], error["field"]) for error in response.json()["errors"]] == [(1, "timestamp")]
    assert await Reading.objects.acount() == 0


async def test_it_caps_the_error_list_and_gives_the_total(async_client, gateway_token, heat_meter, settings):
    settings.INGEST = {**settings.INGEST, "max_errors_reported": 5}
    response = await post(async_client, gateway_token, {"readings": [reading(h, "x") for h in range(20)]})
    assert response.status_code == 422
    assert response.json()["error_count"] == 20
    assert len(response.json()["errors"]) == 5


@pytest.mark.parametrize(
    "body", [{"readings": []}, {"readings": "all"}, [1, 2], {"data": []}], ids=["empty", "not-list", "array", "no-key"]
)
async def test_it_refuses_a_payload_of_the_wrong_shape(async_client, gateway_token, body):
    response = await post(async_client, gateway_token, body)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "readings"


async def test_it_refuses_another_propertys_meter(async_client, gateway_token, other_organisation, django_user_model):
    from readings.models import Property, Unit

    elsewhere = await Property.objects.acreate(organisation=other_organisation, name="Elsewhere")
    foreign_unit = await Unit.objects.acreate(property=elsewhere, label="1", floor_area_m2=50)
    foreign_gateway = await Gateway.objects.acreate(property=elsewhere, serial="GW-B", name="B")
    await MeterInstallation.objects.acreate(
        unit=foreign_unit,
        gateway=foreign_gateway,
        meter_serial="77777777",
        manufacturer="KAM",
        meter_type="heat",
        register_unit="kWh",
        installed_at=T0 - timedelta(days=1),
    )
    response = await post(async_client, gateway_token, {"readings": [reading(0, meter="77777777")]})
    assert response.status_code == 422
    assert "no meter KAM 77777777 installed at this property" in response.json()["errors"][0]["message"]
    assert await Reading.objects.acount() == 0


async def test_it_answers_400_to_malformed_json(async_client, gateway_token, heat_meter):
    response = await post(async_client, gateway_token, b'{"readings": [')
    assert response.status_code == 400
    assert "malformed JSON at line 1" in response.json()["error"]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"readings": [{"value": NaN}]}', "malformed JSON: NaN is no number in JSON"),
        (b'{"readings": [{"value": -Infinity}]}', "malformed JSON: -Infinity is no number in JSON"),
        (codecs.BOM_UTF8 + b'{"readings": []}', "malformed JSON: the body starts with a byte order mark; send UTF-8"),
        ('{"readings": []}'.encode("utf-16"), "malformed JSON: the body is UTF-16; send UTF-8"),
        (b'{"readings": [{"meter": "\\ud800"}]}', "malformed JSON: a string holds half a character"),
    ],
    ids=["nan", "infinity", "bom", "utf-16", "lone-surrogate"],
)
async def test_it_says_why_json_the_standard_library_reads_is_refused(async_client, gateway_token, body, reason):
    # What Python's json module reads but JSON on the wire does not allow: the vendor is told which it is.
    response = await post(async_client, gateway_token, body)
    assert response.status_code == 400
    assert response.json()["error"].startswith(reason)
    assert await Reading.objects.acount() == 0


async def test_it_answers_400_to_broken_gzip(async_client, gateway_token, heat_meter):
    response = await post(async_client, gateway_token, b"not gzip at all", encoding="gzip")
    assert response.status_code == 400
    assert "not valid gzip" in response.json()["error"]
    truncated = gzip.compress(json.dumps({"readings": [reading(0)]}).encode())[:-10]
    assert (await post(async_client, gateway_token, truncated, encoding="gzip")).status_code == 400


async def test_it_answers_413_to_an_oversized_body(async_client, gateway_token, heat_meter, settings):
    settings.INGEST = {**settings.INGEST, "max_body_bytes": 2000}
    big = {"readings": [reading(h) for h in range(50)]}
    response = await post(async_client, gateway_token, big)
    assert response.status_code == 413
    assert await Reading.objects.acount() == 0


async def test_it_answers_413_to_a_gzip_bomb(async_client, gateway_token, heat_meter, settings):
    settings.INGEST = {**settings.INGEST, "max_body_bytes": 100_000}
    bomb = gzip.compress(b'{"readings": [' + b" " * 50_000_000 + b"]}")
    assert len(bomb) < 100_000
    response = await post(async_client, gateway_token, bomb, encoding="gzip")
    assert response.status_code == 413


async def test_it_answers_415_to_other_content(async_client, gateway_token, heat_meter):
    response = await post(async_client, gateway_token, b"meter=1", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415
    response = await post(async_client, gateway_token, {"readings": [reading(0)]}, encoding="br")
    assert response.status_code == 415


async def test_it_answers_401_without_or_with_a_wrong_token(async_client, gateway_token, heat_meter):
    response = await async_client.post(URL, data=b"{}", content_type="application/json")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"
    response = await post(async_client, gateway_token + "x", {"readings": [reading(0)]})
    assert response.status_code == 401
    assert "unknown or revoked" in response.json()["error"]


async def test_it_answers_401_to_a_revoked_token(async_client, gateway_token, gateway, heat_meter):
    await sync_to_async(gateway.revoke_token)()
    assert (await post(async_client, gateway_token, {"readings": [reading(0)]})).status_code == 401


async def test_it_answers_403_to_a_deactivated_gateway(async_client, gateway_token, gateway, heat_meter):
    await Gateway.objects.filter(pk=gateway.pk).aupdate(active=False)
    response = await post(async_client, gateway_token, {"readings": [reading(0)]})
    assert response.status_code == 403
    assert await Reading.objects.acount() == 0


async def test_it_answers_429_over_the_rate_limit(async_client, gateway_token, heat_meter, settings):
    settings.INGEST = {**settings.INGEST, "rate_per_minute": 2}
    statuses = [(await post(async_client, gateway_token, {"readings": [reading(h)]})).status_code for h in range(3)]
    assert statuses[:2] == [200, 200]
    if statuses[2] == 200:
        pytest.skip("the minute turned between requests; the window restarted")
    response = await post(async_client, gateway_token, {"readings": [reading(5)]})
    assert response.status_code == 429
    assert 1 <= int(response["Retry-After"]) <= 60


async def test_it_answers_503_when_the_database_is_down(async_client, gateway_token, monkeypatch, settings):
    monkeypatch.setattr(db, "conninfo", lambda: "host=127.0.0.1 port=9 dbname=nothing connect_timeout=1")
    settings.ASYNC_POOL = {**settings.ASYNC_POOL, "timeout": 1.0}
    await db.close_pool()
    started = asyncio.get_running_loop().time()
    response = await post(async_client, gateway_token, {"readings": [reading(0)]})
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert asyncio.get_running_loop().time() - started < 5
    await db.close_pool()


async def test_it_raises_alarms_from_the_data_and_clears_offline(
    async_client, gateway_token, gateway, heat_meter, water_meter
):
    await Alarm.objects.acreate(
        gateway=gateway, property_id=gateway.property_id, type="gateway_offline", severity="warning", message="silent"
    )
    body = {
        "readings": [
            reading(0, battery_level_pct=50),
            reading(1, battery_level_pct=8),
            reading(0, "1", meter="55550001", manufacturer="AXI", unit="m3", error_flags=0b1000),
        ]
    }
    assert (await post(async_client, gateway_token, body)).status_code == 200
    open_alarms = {(a.installation_id, a.type, a.severity) async for a in Alarm.objects.open()}
    assert open_alarms == {(heat_meter.pk, "low_battery", "warning"), (water_meter.pk, "meter_error", "critical")}
    # Still low on the next day: the open alarm stays the only one.
    assert (
        await post(async_client, gateway_token, {"readings": [reading(30, battery_level_pct=7)]})
    ).status_code == 200
    assert await Alarm.objects.open().filter(type="low_battery").acount() == 1


async def test_it_ignores_an_old_low_battery_when_the_latest_is_fine(async_client, gateway_token, heat_meter):
    body = {"readings": [reading(1, battery_level_pct=95), reading(0, battery_level_pct=5)]}
    assert (await post(async_client, gateway_token, body)).status_code == 200
    assert not await Alarm.objects.aexists()


async def test_it_keeps_one_row_per_key_under_50_concurrent_overlapping_posts(
    async_client, gateway_token, heat_meter, water_meter, settings
):
    settings.INGEST = {**settings.INGEST, "rate_per_minute": 1000}

    def payload(n):
        hours = range(n % 10, n % 10 + 24)  # windows overlap heavily
        return {
            "readings": [reading(h, str(1000 + h)) for h in hours]
            + [reading(h, str(h), meter="55550001", manufacturer="AXI", unit="m3") for h in hours]
        }

    responses = await asyncio.gather(*(post(async_client, gateway_token, payload(n)) for n in range(50)))
    assert [r.status_code for r in responses] == [200] * 50
    assert await Reading.objects.acount() == 2 * 33
    assert sum(r.json()["inserted"] for r in responses) == 2 * 33


async def test_it_raises_each_alarm_once_under_50_concurrent_posts_that_call_for_it(
    async_client, gateway_token, gateway, heat_meter, water_meter, settings
):
    """Alarm writes queue on the change-numbering lock (gateways migration 0008) until commit: no deadlock."""
    settings.INGEST = {**settings.INGEST, "rate_per_minute": 1000}
    await Alarm.objects.acreate(
        gateway=gateway, property_id=gateway.property_id, type="gateway_offline", severity="warning", message="silent"
    )

    def payload(n):
        return {
            "readings": [
                reading(n, str(1000 + n), battery_level_pct=5),
                reading(n, str(n), meter="55550001", manufacturer="AXI", unit="m3", error_flags=0b1000),
            ]
        }

    responses = await asyncio.gather(*(post(async_client, gateway_token, payload(n)) for n in range(50)))
    assert [r.status_code for r in responses] == [200] * 50
    open_alarms = sorted([(a.installation_id, a.type) async for a in Alarm.objects.open()])
    assert open_alarms == sorted([(heat_meter.pk, "low_battery"), (water_meter.pk, "meter_error")])
    assert await Alarm.objects.acount() == 3  # and the offline alarm, cleared


async def test_it_reports_type_and_meaning_problems_together_at_their_indexes(async_client, gateway_token, heat_meter):
    body = {"readings": [reading(0), reading(1, battery_level_pct="full"), reading(2, meter="99999999")]}
    response = await post(async_client, gateway_token, body)
    assert response.status_code == 422
    assert [(e["index"], e["field"]) for e in response.json()["errors"]] == [(1, "battery_level_pct"), (2, "meter")]


async def test_it_answers_503_within_the_pool_timeout_when_the_pool_is_exhausted(async_client, gateway_token, settings):
    settings.ASYNC_POOL = {**settings.ASYNC_POOL, "min_size": 1, "max_size": 1, "timeout": 1.0}
    await db.close_pool()
    pool = await db.get_pool()
    async with pool.connection():  # the only connection, held by someone else
        started = asyncio.get_running_loop().time()
        response = await post(async_client, gateway_token, {"readings": [reading(0)]})
        waited = asyncio.get_running_loop().time() - started
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert 0.9 <= waited < 3
    await db.close_pool()


async def test_it_refuses_a_payload_spanning_more_than_ten_years(async_client, gateway_token, heat_meter):
    far = {**reading(0), "timestamp": "2013-01-01T00:00:00+00:00"}
    heat_meter.installed_at = datetime(2010, 1, 1, tzinfo=UTC)
    await heat_meter.asave()
    response = await post(async_client, gateway_token, {"readings": [far, reading(0)]})
    assert response.status_code == 422
    assert "split them into payloads of at most 3650 days" in response.json()["errors"][0]["message"]
    assert await Reading.objects.acount() == 0
