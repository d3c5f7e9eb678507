"""readings.ingest plans the statements that read a span of `reading` for each batch, never from a cached plan."""

from datetime import timedelta

import psycopg
import pytest

from mbusportal.db import conninfo
from readings.ingest import ingest
from tests.readings.test_ingest import T0, rollups, rows

pytestmark = pytest.mark.django_db(transaction=True)


async def test_it_never_prepares_the_statements_that_read_a_span_of_readings(prop, heat_meter):
    # psycopg prepares a statement from its fifth run on a connection; PostgreSQL may then reuse a
    # generic plan that scans each partition as it was when planned (an empty month: sequentially,
    # however full it has grown since). Eight fresh payloads and eight corrections on one connection:
    # PREPARE, UPSERT and ROLLUP each ran eight times, and none of them was prepared. Straight to
    # PostgreSQL: through PgBouncer (make test-pgbouncer) psycopg's prepared statements do not hold.
    async with await psycopg.AsyncConnection.connect(conninfo(direct=True)) as conn:
        for day in range(8):
            start = T0 + timedelta(days=day)
            assert (await ingest(conn, property_id=prop.pk, rows=rows(heat_meter, ["1", "2"], start=start))).inserted
            corrected = await ingest(conn, property_id=prop.pk, rows=rows(heat_meter, ["1", "2.5"], start=start))
            assert corrected.updated == 1
        cursor = await conn.execute("SELECT statement FROM pg_prepared_statements")
        prepared = [statement for (statement,) in await cursor.fetchall()]
    assert prepared  # the statements on reading_daily (rollup merge, went-down check) are prepared
    assert not [statement for statement in prepared if "reading r" in statement]
    stored, recomputed = await rollups()
    assert stored == recomputed
