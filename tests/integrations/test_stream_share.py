"""One organisation's readers cannot take every readings stream of a process: a reader that stalls or
trickles holds its stream open, and another organisation's requests must still find one."""

from datetime import UTC, datetime, timedelta

import pytest

from integrations import stream

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fresh_pool")]

T0 = datetime(2025, 1, 1, tzinfo=UTC)


async def opened(query, owner):
    """A stream that has its connection and cursor (its first chunk read), held open."""
    chunks = stream.stream(query, stream.NDJSON, owner=owner)
    await anext(chunks)
    return chunks


async def test_one_organisation_holds_at_most_half_the_streams(heat_meter, settings):
    settings.EXPORT_MAX_CONCURRENT = 4
    query = stream.Query([heat_meter.pk], T0, T0 + timedelta(days=1))
    held = [await opened(query, owner=1), await opened(query, owner=1)]
    with pytest.raises(stream.StreamsBusy, match="your organisation already has 2 readings streams open"):
        await opened(query, owner=1)
    held.append(await opened(query, owner=2))
    for chunks in held:
        await chunks.aclose()
    # Closed streams give their slots back.
    again = [await opened(query, owner=1), await opened(query, owner=1)]
    for chunks in again:
        await chunks.aclose()


async def test_a_single_stream_allowed_is_one_organisations_share(heat_meter, settings):
    settings.EXPORT_MAX_CONCURRENT = 1
    query = stream.Query([heat_meter.pk], T0, T0 + timedelta(days=1))
    chunks = await opened(query, owner=1)
    with pytest.raises(stream.StreamsBusy, match="the limit of 1 readings streams at a time"):
        await opened(query, owner=2)
    await chunks.aclose()
