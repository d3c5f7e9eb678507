"""POST /api/v1/frames against real PostgreSQL: decoding, mapping, units, time, alarms, all-or-nothing, partial."""

import json
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from asgiref.sync import sync_to_async

from gateways.models import Alarm, Gateway, RawFrame
from readings.models import MeterInstallation, Property, Reading, Unit
from tests.gateways import mbus_corpus
from tests.gateways.mbus_frames import energy_in_joules, long_frame, multical_602
from tests.gateways.mbus_frames import water_meter as water_meter_frame

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fresh_pool")]

URL = "/api/v1/frames"
COPENHAGEN = ZoneInfo("Europe/Copenhagen")
# 07:00 in Copenhagen (winter time) is 06:00 UTC.
METER_CLOCK = datetime(2026, 3, 1, 7, 0)
RECEIVED = datetime(2026, 3, 1, 6, 0, 20, tzinfo=UTC)


def item(frame: bytes, received_at: datetime = RECEIVED, **extra):
    return {"frame": frame.hex(" "), "received_at": received_at.isoformat(), **extra}


async def post(client, token, body, *, query=""):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return await client.post(
        URL + query, data=data, content_type="application/json", headers={"Authorization": f"Bearer {token}"}
    )


async def stored():
    return [
        (r.installation_id, r.timestamp, r.value, r.unit)
        async for r in Reading.objects.order_by("installation_id", "timestamp")
    ]


async def install(unit, gateway, serial, manufacturer="KAM", meter_type="heat", register_unit="kWh", **extra):
    return await MeterInstallation.objects.acreate(
        unit=unit,
        gateway=gateway,
        meter_serial=serial,
        manufacturer=manufacturer,
        meter_type=meter_type,
        register_unit=register_unit,
        installed_at=extra.pop("installed_at", datetime(2000, 1, 1, tzinfo=UTC)),
        **extra,
    )


@pytest.fixture
def second_unit(prop):
    return Unit.objects.create(property=prop, label="2 th", floor_area_m2=Decimal("80"))


def test_it_lands_a_kamstrup_multical_frame_in_kwh_on_its_installation(
    daphne_server, gateway_token, gateway, heat_meter, second_unit
):
    """End to end through daphne: the frame's E1 in kWh on installation KAM 12345678, at the meter's clock."""
    neighbour = MeterInstallation.objects.create(
        unit=second_unit,
        gateway=gateway,
        meter_serial="12345679",
        manufacturer="KAM",
        meter_type="heat",
        register_unit="MWh",
        installed_at=datetime(2024, 1, 1, tzinfo=UTC),
    )
    frames = [
        item(multical_602(12345678, energy_kwh=19650, clock=METER_CLOCK)),
        item(multical_602(12345679, energy_kwh=4321, clock=METER_CLOCK)),
    ]
    request = urllib.request.Request(
        daphne_server + URL,
        data=json.dumps(frames).encode(),
        headers={"Authorization": f"Bearer {gateway_token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        answer = json.load(response)
    assert answer == {
        "inserted": 2,
        "updated": 0,
        "unchanged": 0,
        "folded": 0,
        "rejected": 0,
        "errors": [],
        "warnings": [],
    }
    at = datetime(2026, 3, 1, 6, 0, tzinfo=UTC)
    rows = {(r.installation_id, r.timestamp, r.value, r.unit, r.meter_type) for r in Reading.objects.all()}
    assert rows == {
        (heat_meter.pk, at, Decimal("19650"), "kWh", "heat"),
        (neighbour.pk, at, Decimal("4.321"), "MWh", "heat"),
    }
    assert RawFrame.objects.filter(gateway=gateway, error="").count() == 2


async def test_it_reads_the_register_that_fits_each_meter_type(async_client, gateway_token, gateway, unit, second_unit):
    heat = await install(unit, gateway, "00802657", manufacturer="SVM", register_unit="kWh")
    water = await install(
        second_unit, gateway, "70112345", manufacturer="ELS", meter_type="cold_water", register_unit="L"
    )
    hca = await install(unit, gateway, "01030101", manufacturer="REL", meter_type="hca", register_unit="units")
    body = [
        # Real frames: an Elster F2 heat meter (energy and volume), an Elster Falcon water meter, a Relay HCA.
        item(mbus_corpus.frame_bytes("frames", "Elster-F2"), datetime(2013, 6, 29, 10, 12, 30, tzinfo=UTC)),
        item(mbus_corpus.frame_bytes("frames", "els_falcon"), datetime(2007, 2, 6, 12, 58, 40, tzinfo=UTC)),
        item(mbus_corpus.frame_bytes("frames", "rel_padpuls3"), datetime(2013, 12, 1, 9, 0, tzinfo=UTC)),
    ]
    response = await post(async_client, gateway_token, body)
    assert response.status_code == 200, response.content
    assert await stored() == [
        # 5,272,000 Wh at the meter's 12:12 summer time in Copenhagen.
        (heat.pk, datetime(2013, 6, 29, 10, 12, tzinfo=UTC), Decimal("5272"), "kWh"),
        (water.pk, datetime(2007, 2, 6, 12, 58, tzinfo=UTC), Decimal("1234567"), "L"),
        # The HCA's date leaves the day open: received_at is the reading's time.
        (hca.pk, datetime(2013, 12, 1, 9, 0, tzinfo=UTC), Decimal("1987"), "units"),
    ]


async def test_it_converts_energy_in_joules_and_volume_in_litres(
    async_client, gateway_token, gateway, unit, water_meter
):
    heat = await install(unit, gateway, "00000001", register_unit="GJ")
    body = [item(energy_in_joules(1, megajoules=3600)), item(water_meter_frame(55550001, litres=1234567))]
    response = await post(async_client, gateway_token, body)
    assert response.status_code == 200, response.content
    # 3600 MJ = 3.6 GJ; 1,234,567 L = 1234.567 m3 (the water meter's register unit).
    assert await stored() == [
        (water_meter.pk, RECEIVED, Decimal("1234.567"), "m3"),
        (heat.pk, RECEIVED, Decimal("3.6"), "GJ"),
    ]


async def test_it_uses_received_at_when_the_meter_clock_is_invalid_absent_or_far_off(
    async_client, gateway_token, heat_meter
):
    body = [
        item(multical_602(12345678, energy_kwh=1, clock=METER_CLOCK, clock_invalid=True), RECEIVED),
        item(multical_602(12345678, energy_kwh=2), RECEIVED + timedelta(hours=1)),
        item(multical_602(12345678, energy_kwh=3, clock=datetime(2000, 1, 1)), RECEIVED + timedelta(hours=2)),
    ]
    response = await post(async_client, gateway_token, body)
    assert response.status_code == 200, response.content
    # The clock the meter marks invalid is as visible as the one far off (it used to pass in silence).
    assert [(w["index"], w["field"], w["message"]) for w in response.json()["warnings"]] == [
        (0, "frame.records[8]", "Time point (date and time): the meter marks this date and time invalid; not read"),
        (
            0,
            "frame",
            "the meter's clock (record 8) is not usable: the meter marks this date and time invalid; "
            "received_at was used",
        ),
        (2, "frame", "the meter's clock (2000-01-01 00:00:00) is far from received_at; received_at was used"),
    ]
    assert [(at, value) for _, at, value, _ in await stored()] == [
        (RECEIVED, Decimal("1")),
        (RECEIVED + timedelta(hours=1), Decimal("2")),
        (RECEIVED + timedelta(hours=2), Decimal("3")),
    ]


async def test_it_reads_summer_time_from_the_meter_clock(async_client, gateway_token, heat_meter):
    # 02:30 on 2026-10-25 happens twice in Copenhagen; the meter says summer time: the first (00:30 UTC).
    autumn = datetime(2026, 10, 25, 2, 30)
    received = datetime(2026, 10, 25, 0, 30, 5, tzinfo=UTC)
    body = [item(multical_602(12345678, energy_kwh=7, clock=autumn, summer_time=True), received)]
    assert (await post(async_client, gateway_token, body)).status_code == 200
    assert [at for _, at, _, _ in await stored()] == [datetime(2026, 10, 25, 0, 30, tzinfo=UTC)]


async def test_it_routes_by_the_frames_time_across_a_meter_swap(async_client, gateway_token, heat_meter, unit, gateway):
    swap = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    heat_meter.removed_at = swap
    await heat_meter.asave()
    new = await install(unit, gateway, "12345678", installed_at=swap)
    before, after = datetime(2026, 3, 1, 11, 0), datetime(2026, 3, 1, 14, 0)  # meter clock, UTC+1
    body = [
        item(multical_602(12345678, energy_kwh=500, clock=before), datetime(2026, 3, 1, 10, 0, 3, tzinfo=UTC)),
        item(multical_602(12345678, energy_kwh=3, clock=after), datetime(2026, 3, 1, 13, 0, 3, tzinfo=UTC)),
    ]
    assert (await post(async_client, gateway_token, body)).status_code == 200
    assert [(i, value) for i, _, value, _ in await stored()] == [
        (heat_meter.pk, Decimal("500")),
        (new.pk, Decimal("3")),
    ]


async def test_it_changes_nothing_when_frames_are_sent_again(async_client, gateway_token, heat_meter):
    body = [item(multical_602(12345678, energy_kwh=19650, clock=METER_CLOCK))]
    await post(async_client, gateway_token, body)
    response = await post(async_client, gateway_token, body)
    assert response.json()["unchanged"] == 1 and response.json()["inserted"] == 0
    assert len(await stored()) == 1


async def test_it_rejects_an_undecodable_frame_and_writes_nothing(async_client, gateway_token, heat_meter):
    good = multical_602(12345678, energy_kwh=1, clock=METER_CLOCK)
    broken = good[:-3] + bytes([good[-3] ^ 0xFF]) + good[-2:]  # checksum no longer matches
    body = [item(good), item(broken), item(mbus_corpus.frame_bytes("error-frames", "application_busy"))]
    response = await post(async_client, gateway_token, body)
    assert response.status_code == 422
    answer = response.json()
    assert answer["error_count"] == 2
    assert "?partial=1" in answer["error"]
    assert [(e["index"], e["field"]) for e in answer["errors"]] == [(1, "frame"), (2, "frame")]
    assert "not a valid M-Bus frame" in answer["errors"][0]["message"]
    assert "application is busy" in answer["errors"][1]["message"]
    assert await Reading.objects.acount() == 0
    assert await RawFrame.objects.acount() == 0


async def test_it_rejects_another_propertys_and_unknown_meters(
    async_client, gateway_token, heat_meter, other_organisation
):
    # charlie's organisation has KAM 77777777; this gateway must not reach it.
    elsewhere = await Property.objects.acreate(organisation=other_organisation, name="Elsewhere")
    foreign_unit = await Unit.objects.acreate(property=elsewhere, label="1", floor_area_m2=50)
    foreign_gateway = await Gateway.objects.acreate(property=elsewhere, serial="GW-B", name="B")
    await install(foreign_unit, foreign_gateway, "77777777")
    body = [item(multical_602(77777777, energy_kwh=1)), item(multical_602(99999999, energy_kwh=1))]
    response = await post(async_client, gateway_token, body)
    assert response.status_code == 422
    messages = [e["message"] for e in response.json()["errors"]]
    assert messages[0].startswith("no meter KAM 77777777 installed at this property at 2026-03-01")
    assert messages[1].startswith("no meter KAM 99999999 installed at this property")
    assert await Reading.objects.acount() == 0


async def test_it_rejects_a_frame_without_the_register_its_meter_needs(async_client, gateway_token, heat_meter):
    # A water meter's frame under a heat installation's serial: no energy register.
    response = await post(
        async_client, gateway_token, [item(water_meter_frame(12345678, litres=5, manufacturer="KAM"))]
    )
    assert response.status_code == 422
    assert "has no current energy register" in response.json()["errors"][0]["message"]


async def test_it_stores_the_good_frames_with_partial_and_keeps_every_frame(async_client, gateway_token, heat_meter):
    bad = mbus_corpus.frame_bytes("error-frames", "premature_end_of_data2")
    body = [item(multical_602(12345678, energy_kwh=42, clock=METER_CLOCK)), item(bad), {"frame": "zz"}]
    response = await post(async_client, gateway_token, body, query="?partial=1")
    assert response.status_code == 200, response.content
    answer = response.json()
    assert answer["inserted"] == 1 and answer["rejected"] == 2
    assert [(e["index"], e["field"]) for e in answer["errors"]] == [(1, "frame"), (2, "received_at")]
    assert [value for _, _, value, _ in await stored()] == [Decimal("42")]
    kept = [(bytes(f.frame), f.installation_id, f.error) async for f in RawFrame.objects.order_by("id")]
    assert kept[0][1:] == (heat_meter.pk, "")
    assert kept[1][0] == bad and kept[1][1] is None and "premature end of the record" in kept[1][2]
    assert len(kept) == 2  # an item that is not a frame at all has nothing to keep


async def test_it_raises_alarms_from_the_status_byte(async_client, gateway_token, heat_meter, water_meter):
    body = [
        item(multical_602(12345678, energy_kwh=1, clock=METER_CLOCK, status=0b1000)),  # permanent error
        item(
            long_frame(
                identification=55550001, manufacturer="AXI", medium=7, records=b"\x04\x13\x01\x00\x00\x00", status=0b100
            )
        ),  # power low
    ]
    assert (await post(async_client, gateway_token, body)).status_code == 200
    alarms = {(a.installation_id, a.type, a.severity) async for a in Alarm.objects.open()}
    assert alarms == {(heat_meter.pk, "meter_error", "critical"), (water_meter.pk, "low_battery", "warning")}


async def test_it_takes_the_object_form_and_hex_without_spaces(async_client, gateway_token, heat_meter):
    frame = multical_602(12345678, energy_kwh=8, clock=METER_CLOCK).hex()
    response = await post(
        async_client, gateway_token, {"frames": [{"frame": frame, "received_at": "2026-03-01T06:00:20Z"}]}
    )
    assert response.status_code == 200, response.content
    assert response.json()["inserted"] == 1


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ([], "frames", "must not be empty"),
        ({"readings": []}, "frames", "JSON list"),
        ([{"frame": "68", "received_at": "2026-03-01T06:00:00"}], "received_at", "needs a UTC offset"),
        ([{"frame": "68", "received_at": "2099-03-01T06:00:00Z"}], "received_at", "is in the future"),
        ([{"frame": 68, "received_at": "2026-03-01T06:00:00Z"}], "frame", "hex string"),
        ([{"frame": "6 8", "received_at": "2026-03-01T06:00:00Z"}], "frame", "is not hex"),
        ([{"frame": "68", "received_at": "2026-03-01T06:00:00Z", "rssi": 1}], "rssi", "unknown field"),
    ],
)
async def test_it_names_what_is_wrong_with_the_request(async_client, gateway_token, heat_meter, body, field, message):
    response = await post(async_client, gateway_token, body)
    assert response.status_code == 422
    error = response.json()["errors"][0]
    assert error["field"] == field and message in error["message"]


async def test_it_refuses_too_many_frames(async_client, gateway_token, heat_meter, settings):
    settings.FRAMES = {**settings.FRAMES, "max_per_request": 2}
    frame = multical_602(12345678, energy_kwh=1)
    response = await post(async_client, gateway_token, [item(frame)] * 3)
    assert response.status_code == 422
    assert "at most 2" in response.json()["errors"][0]["message"]


async def test_it_answers_400_to_a_bad_partial_and_to_malformed_json(async_client, gateway_token, heat_meter):
    response = await post(
        async_client, gateway_token, [item(multical_602(12345678, energy_kwh=1))], query="?partial=yes"
    )
    assert response.status_code == 400 and "partial must be 1 or 0" in response.json()["error"]
    response = await post(async_client, gateway_token, b"[{")
    assert response.status_code == 400 and "malformed JSON" in response.json()["error"]


async def test_it_answers_401_and_403_like_the_readings_endpoint(async_client, gateway_token, gateway, heat_meter):
    body = [item(multical_602(12345678, energy_kwh=1))]
    assert (await post(async_client, gateway_token + "x", body)).status_code == 401
    await Gateway.objects.filter(pk=gateway.pk).aupdate(active=False)
    assert (await post(async_client, gateway_token, body)).status_code == 403
    assert await Reading.objects.acount() == 0


async def test_it_rejects_every_error_frame_of_the_corpus_with_its_reason(async_client, gateway_token, heat_meter):
    names = mbus_corpus.names("error-frames")
    body = [item(mbus_corpus.frame_bytes("error-frames", name)) for name in names]
    response = await post(async_client, gateway_token, body, query="?partial=1")
    assert response.status_code == 200
    answer = response.json()
    assert answer["rejected"] == len(names) and answer["inserted"] == 0
    assert all(error["field"] == "frame" and len(error["message"]) > 20 for error in answer["errors"])
    assert await sync_to_async(RawFrame.objects.exclude(error="").count)() == len(names)


# --- issue 22, item 6: good records of a frame with a bad one are stored; doubts are visible --

# Elster F96 Plus / ABB F95 style: 12345 kWh, and a power during error state with invalid BCD digits.
ERROR_STATE_BCD = bytes.fromhex(
    "68 1B 1B 68 08 01 72 78 56 34 12 2D 2C 01 04 01 00 00 00 0C 06 45 23 01 00 3C 2B BD EB DD DD 32 16"
)


async def test_it_stores_the_energy_of_a_frame_whose_error_state_record_has_invalid_bcd(
    async_client, gateway_token, heat_meter
):
    response = await post(async_client, gateway_token, [item(ERROR_STATE_BCD)])
    assert response.status_code == 200, response.content
    answer = response.json()
    assert (answer["inserted"], answer["rejected"]) == (1, 0)
    assert answer["warnings"] == [
        {"index": 0, "field": "frame.records[1]", "message": "Power: invalid BCD digits (BD EB DD DD); not read"}
    ]
    assert await stored() == [(heat_meter.pk, RECEIVED, Decimal("12345"), "kWh")]
    kept = await RawFrame.objects.aget()
    assert [(record["quantity"], record.get("used"), record.get("problem")) for record in kept.records] == [
        ("Energy", "register", None),
        ("Power", None, "invalid BCD digits (BD EB DD DD)"),
    ]
    assert kept.warnings == ["Power: invalid BCD digits (BD EB DD DD); not read"]


async def test_it_stores_a_frame_whose_signature_field_is_no_encryption_mode(async_client, gateway_token, heat_meter):
    # CALEC MB style: FF FF where old meters had the signature.
    frame = long_frame(
        identification=12345678, manufacturer="KAM", medium=4, configuration=0xFFFF, records=b"\x04\x06\x39\x30\x00\x00"
    )
    response = await post(async_client, gateway_token, [item(frame)])
    assert response.status_code == 200, response.content
    assert await stored() == [(heat_meter.pk, RECEIVED, Decimal("12345"), "kWh")]


async def test_it_stores_a_reading_at_the_meters_clock_on_the_31st(async_client, gateway_token, heat_meter):
    # The meter read 2026-10-31 23:50 (Copenhagen, winter time: 22:50 UTC); the gateway got it at 00:05 on 1 November.
    received = datetime(2026, 11, 1, 0, 5, tzinfo=COPENHAGEN)
    frame = multical_602(12345678, energy_kwh=19650, clock=datetime(2026, 10, 31, 23, 50))
    response = await post(async_client, gateway_token, [item(frame, received)])
    assert response.status_code == 200, response.content
    assert response.json()["warnings"] == []
    assert [at for _, at, _, _ in await stored()] == [datetime(2026, 10, 31, 22, 50, tzinfo=UTC)]
    kept = await RawFrame.objects.aget()
    assert (kept.reading_at, kept.time_source) == (datetime(2026, 10, 31, 22, 50, tzinfo=UTC), "meter")


async def test_it_marks_a_reading_whose_meter_clock_it_could_not_trust(async_client, gateway_token, heat_meter):
    frame = multical_602(12345678, energy_kwh=7, clock=METER_CLOCK, clock_invalid=True)
    response = await post(async_client, gateway_token, [item(frame)])
    assert response.status_code == 200, response.content
    assert [(w["field"], "received_at was used" in w["message"]) for w in response.json()["warnings"]] == [
        ("frame.records[8]", False),
        ("frame", True),
    ]
    kept = await RawFrame.objects.aget()
    assert (kept.reading_at, kept.time_source) == (RECEIVED, "untrusted_clock")
    assert kept.records[8]["problem"] == "the meter marks this date and time invalid"
    assert kept.warnings[1].startswith("the meter's clock (record 8) is not usable")


async def test_it_stores_an_electricity_meter_that_counts_only_per_tariff(async_client, gateway_token, unit, gateway):
    meter = await install(unit, gateway, "40000001", manufacturer="EMH", meter_type="electricity", register_unit="kWh")
    # T1 12,520 Wh and T2 17,744,330 Wh (8-digit BCD), no total register (EMH DIZ, Saia ALE3 style).
    records = b"\x8c\x10\x03\x20\x25\x01\x00" + b"\x8c\x20\x03\x30\x43\x74\x17"
    frame = long_frame(identification=40000001, manufacturer="EMH", medium=2, records=records)
    response = await post(async_client, gateway_token, [item(frame)])
    assert response.status_code == 200, response.content
    assert await stored() == [(meter.pk, RECEIVED, Decimal("17756.85"), "kWh")]


async def test_it_stores_the_good_records_of_a_frame_with_eleven_difes(async_client, gateway_token, heat_meter):
    eleven_difes = b"\x84" + b"\x80" * 10 + b"\x00" + b"\x06" + b"\x05\x00\x00\x00"
    frame = long_frame(
        identification=12345678, manufacturer="KAM", medium=4, records=b"\x04\x06\x2a\x00\x00\x00" + eleven_difes
    )
    response = await post(async_client, gateway_token, [item(frame)])
    assert response.status_code == 200, response.content
    assert response.json()["warnings"] == [
        {
            "index": 0,
            "field": "frame.records[1]",
            "message": "Energy: 11 DIFEs; EN 13757-3 allows at most 10; not read",
        }
    ]
    assert await stored() == [(heat_meter.pk, RECEIVED, Decimal("42"), "kWh")]
