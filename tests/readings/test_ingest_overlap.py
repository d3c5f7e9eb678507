"""readings.ingest with payloads that overlap what is stored: only new keys are COPYed, only changed rows upserted."""

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import psycopg
import pytest

from mbusportal.db import conninfo
from readings import ingest as ingest_module
from readings.ingest import ReadingRow, ingest
from readings.models import Reading
from tests.readings.test_ingest import T0, rollups, rows, run

pytestmark = pytest.mark.django_db(transaction=True)


class PathSpy:
    """Records how many rows each ingest sent to COPY and to UPSERT."""

    def __init__(self, monkeypatch):
        self.copied: list[int] = []
        self.upserted: list[int] = []
        copy_data_init = ingest_module._CopyData.__init__
        one_per_key_init = ingest_module._OneRowPerKey.__init__

        def copy_data(data, readings):
            self.copied.append(len(readings))
            copy_data_init(data, readings)

        def one_per_key(general, columns):
            self.upserted.append(len(columns))
            one_per_key_init(general, columns)

        monkeypatch.setattr(ingest_module._CopyData, "__init__", copy_data)
        monkeypatch.setattr(ingest_module._OneRowPerKey, "__init__", one_per_key)

    def reset(self):
        self.copied.clear()
        self.upserted.clear()


def hourly(installation, first_hour, values, **extra):
    return rows(installation, values, start=T0 + timedelta(hours=first_hour), **extra)


async def stored_values(installation):
    return {r.timestamp: r.value async for r in Reading.objects.filter(installation=installation)}


async def test_a_half_overlapping_payload_copies_only_its_new_rows(prop, heat_meter, water_meter, monkeypatch):
    # 30 hours over the DST switch, two meters; the first 15 stored: the payload's other 15 of
    # each are COPYed, nothing is upserted, and the rollup (merged) equals a recomputation.
    values = [str(1000 + h) for h in range(30)]
    await run(prop, hourly(heat_meter, 0, values[:15]) + hourly(water_meter, 0, values[:15]))
    spy = PathSpy(monkeypatch)
    payload = hourly(heat_meter, 0, values) + hourly(water_meter, 0, values)
    result = await run(prop, payload[::-1])  # in no key order
    assert result.as_dict() == {"inserted": 30, "updated": 0, "unchanged": 30, "folded": 0}
    assert (spy.copied, spy.upserted) == ([30], [])
    assert await stored_values(heat_meter) == {row.timestamp: Decimal(row.value) for row in payload[:30]}
    stored, recomputed = await rollups()
    assert stored == recomputed
    assert len(stored) == 2 * 3


async def test_a_resent_payload_writes_nothing_and_takes_neither_path(prop, heat_meter, monkeypatch):
    await run(prop, hourly(heat_meter, 0, ["1", "2", "3"], battery_level_pct=None, rssi_dbm=-70))
    before = [(r.timestamp, r.value, r.received_at) async for r in Reading.objects.order_by("timestamp")]
    spy = PathSpy(monkeypatch)
    result = await run(prop, hourly(heat_meter, 0, ["1", "2", "3"], battery_level_pct=None, rssi_dbm=-70))
    assert result.as_dict() == {"inserted": 0, "updated": 0, "unchanged": 3, "folded": 0}
    assert (spy.copied, spy.upserted) == ([], [])
    assert [(r.timestamp, r.value, r.received_at) async for r in Reading.objects.order_by("timestamp")] == before


@pytest.mark.parametrize(
    "change",
    [
        {"value": Decimal("2.000001")},
        {"unit": "MWh"},
        {"meter_type": "cooling"},
        {"battery_level_pct": 50},  # stored NULL
        {"rssi_dbm": None},  # stored -70
    ],
)
async def test_a_row_that_differs_in_any_column_is_upserted_alone(prop, heat_meter, monkeypatch, change):
    await run(prop, hourly(heat_meter, 0, ["1", "2", "3"], rssi_dbm=-70))
    spy = PathSpy(monkeypatch)
    payload = hourly(heat_meter, 0, ["1", "2", "3", "4"], rssi_dbm=-70)
    payload[1] = payload[1]._replace(**change)
    result = await run(prop, payload)
    assert result.as_dict() == {"inserted": 1, "updated": 1, "unchanged": 2, "folded": 0}
    assert (spy.copied, spy.upserted) == ([1], [1])
    changed = await Reading.objects.aget(installation=heat_meter, timestamp=payload[1].timestamp)
    assert {name: getattr(changed, name) for name in change} == change
    stored, recomputed = await rollups()
    assert stored == recomputed


async def test_overlap_with_corrections_rolls_up_as_a_recomputation(prop, heat_meter, water_meter):
    # Stored: 48 hours of two meters. Sent: those 48 hours, 1 in 8 corrected (their first and last
    # readings of a day among them), and 48 new hours, some in the days that were corrected.
    start = T0 - timedelta(hours=20)
    for meter in (heat_meter, water_meter):
        await run(prop, rows(meter, [str(100 + h) for h in range(48)], start=start))
    payload = []
    for meter in (heat_meter, water_meter):
        values = [str(100 + h + (Decimal("0.5") if h % 8 == 3 else 0)) for h in range(96)]
        payload += rows(meter, values, start=start)
    result = await run(prop, payload)
    assert result.as_dict() == {"inserted": 96, "updated": 12, "unchanged": 84, "folded": 0}
    assert await stored_values(heat_meter) == {row.timestamp: Decimal(row.value) for row in payload[:96]}
    stored, recomputed = await rollups()
    assert stored == recomputed


async def test_a_deleted_stored_row_is_restored_by_a_resent_payload(prop, heat_meter):
    await run(prop, hourly(heat_meter, 0, ["1", "2"]))
    await Reading.objects.filter(timestamp=T0 + timedelta(hours=1)).aupdate(deleted_at=datetime.now(UTC))
    result = await run(prop, hourly(heat_meter, 0, ["1", "2", "3"]))
    assert result.as_dict() == {"inserted": 1, "updated": 1, "unchanged": 1, "folded": 0}
    assert not await Reading.objects.filter(deleted_at__isnull=False).aexists()
    stored, recomputed = await rollups()
    assert stored == recomputed


async def test_a_new_key_repeated_next_to_stored_ones_is_folded_by_the_upsert(prop, heat_meter, monkeypatch):
    await run(prop, hourly(heat_meter, 0, ["1", "2"]))
    spy = PathSpy(monkeypatch)
    payload = hourly(heat_meter, 0, ["1", "2", "3", "4"]) + hourly(heat_meter, 2, ["3.5"])
    result = await run(prop, payload)
    assert result.as_dict() == {"inserted": 2, "updated": 0, "unchanged": 2, "folded": 1}
    assert (spy.copied, spy.upserted) == ([1], [2])
    assert (await stored_values(heat_meter))[T0 + timedelta(hours=2)] == Decimal("3.5")
    stored, recomputed = await rollups()
    assert stored == recomputed


async def test_a_sparse_payload_over_many_stored_rows_takes_the_general_path(prop, heat_meter, monkeypatch):
    # More rows stored within the payload's span than PREPARE fetches: all of it goes to UPSERT.
    await run(prop, rows(heat_meter, [str(n) for n in range(1100)], start=T0, step=timedelta(minutes=1)))
    spy = PathSpy(monkeypatch)
    payload = [
        ReadingRow(heat_meter.pk, T0, Decimal("0"), "kWh", "heat"),
        ReadingRow(heat_meter.pk, T0 + timedelta(minutes=1099), Decimal("1099.5"), "kWh", "heat"),
    ]
    result = await run(prop, payload)
    assert result.as_dict() == {"inserted": 0, "updated": 1, "unchanged": 1, "folded": 0}
    assert (spy.copied, spy.upserted) == ([], [2])
    stored, recomputed = await rollups()
    assert stored == recomputed


@pytest.mark.parametrize("concurrent_value", ["3", "3.25"])
async def test_a_key_stored_by_a_concurrent_ingest_after_the_probe_falls_back_to_the_upsert(
    prop, heat_meter, monkeypatch, concurrent_value
):
    # Between PREPARE's probe and the COPY of the new keys another ingest stores one of them: the
    # COPY fails on its key, is rolled back, and the whole batch takes the general path.
    await run(prop, hourly(heat_meter, 0, ["1", "2"]))
    copied_directly = ingest_module._copied_directly

    async def after_a_concurrent_ingest(*args):
        monkeypatch.setattr(ingest_module, "_copied_directly", copied_directly)  # for the other ingest's COPY
        async with await psycopg.AsyncConnection.connect(conninfo()) as other:
            await ingest(other, property_id=prop.pk, rows=hourly(heat_meter, 2, [concurrent_value]))
        return await copied_directly(*args)

    monkeypatch.setattr(ingest_module, "_copied_directly", after_a_concurrent_ingest)
    spy = PathSpy(monkeypatch)
    result = await run(prop, hourly(heat_meter, 0, ["1", "2", "3", "4"]))
    same = concurrent_value == "3"
    assert result.as_dict() == {"inserted": 1, "updated": 0 if same else 1, "unchanged": 3 if same else 2, "folded": 0}
    # The COPY of hours 2 and 3 (the other ingest's COPY of hour 2 ran in between) failed: all upserted.
    assert (spy.copied, spy.upserted) == ([2, 1], [4])
    assert sorted((await stored_values(heat_meter)).values()) == [Decimal(v) for v in ("1", "2", "3", "4")]
    stored, recomputed = await rollups()
    assert stored == recomputed


async def test_a_copy_that_waits_for_a_concurrent_insert_of_its_key_falls_back_once_it_commits(prop, heat_meter):
    await run(prop, hourly(heat_meter, 0, ["1"]))
    async with await psycopg.AsyncConnection.connect(conninfo()) as other:
        await other.execute("SELECT 1")  # its transaction stays open
        await ingest(other, property_id=prop.pk, rows=hourly(heat_meter, 2, ["3.5"]))
        overlapping = asyncio.create_task(run(prop, hourly(heat_meter, 0, ["1", "2", "3"])))
        await asyncio.sleep(0.5)
        assert not overlapping.done()  # the COPY waits on the uncommitted key
        await other.commit()
        result = await overlapping
    assert result.as_dict() == {"inserted": 1, "updated": 1, "unchanged": 1, "folded": 0}
    assert sorted((await stored_values(heat_meter)).values()) == [Decimal(v) for v in ("1", "2", "3")]
    stored, recomputed = await rollups()
    assert stored == recomputed


def test_ingest_sync_splits_an_overlapping_payload_the_same_way(prop, heat_meter, monkeypatch):
    from django.db import connection, transaction

    from readings.ingest import ingest_sync

    with transaction.atomic():
        connection.ensure_connection()
        ingest_sync(connection.connection, property_id=prop.pk, rows=hourly(heat_meter, 0, ["1", "2", "3"]))
        spy = PathSpy(monkeypatch)
        mixed = ingest_sync(
            connection.connection, property_id=prop.pk, rows=hourly(heat_meter, 0, ["1", "2.5", "3", "4"])
        )
        resent = ingest_sync(
            connection.connection, property_id=prop.pk, rows=hourly(heat_meter, 0, ["1", "2.5", "3", "4"])
        )
    assert mixed.as_dict() == {"inserted": 1, "updated": 1, "unchanged": 2, "folded": 0}
    assert resent.as_dict() == {"inserted": 0, "updated": 0, "unchanged": 4, "folded": 0}
    assert (spy.copied, spy.upserted) == ([1], [1])
    assert [r.value for r in Reading.objects.order_by("timestamp")] == [Decimal(v) for v in ("1", "2.5", "3", "4")]
    stored, recomputed = asyncio.run(rollups())
    assert stored == recomputed


async def test_a_unit_holding_the_text_separator_sends_the_payload_to_the_upsert(prop, heat_meter, monkeypatch):
    # PREPARE joins the stored units and meter types with U+001F: one that holds it cannot be split
    # back, so the payload is compared by UPSERT instead, with the same counts.
    await run(prop, [row._replace(unit="k\x1fWh") for row in hourly(heat_meter, 0, ["1", "2"])])
    spy = PathSpy(monkeypatch)
    result = await run(prop, [row._replace(unit="k\x1fWh") for row in hourly(heat_meter, 0, ["1", "2.5", "3"])])
    assert result.as_dict() == {"inserted": 1, "updated": 1, "unchanged": 1, "folded": 0}
    assert (spy.copied, spy.upserted) == ([], [3])
    assert {r.unit async for r in Reading.objects.all()} == {"k\x1fWh"}
