"""Decode kept raw M-Bus frames again, after a decoder fix, and store what they give now.

    python manage.py reprocess_frames --since 2026-03-01 [--until 2026-03-08] [--gateway SERIAL] [--dry-run]

Frames received in [since, until) are decoded with today's code and mapped
to today's installations; their readings go through the same ingestion path
(an unchanged reading stays unchanged, a corrected one is updated, a frame
rejected before and decodable now is inserted), each frame's row records what
became of it. Re-processing is not a delivery: the gateway is not marked
seen and no alarms are raised from old status bytes. Readings a frame gave
before at a different time or installation are listed, not deleted: another
source may have written the same key.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from psycopg import AsyncConnection

from gateways import delivery, frames, sql
from gateways.payload import InstallationIndex
from mbusportal import db

BATCH = 5000
MOVED_LISTED = 20


@dataclass
class Tally:
    frames: int = 0
    now_decoded: int = 0
    now_rejected: int = 0
    still_rejected: int = 0
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(("inserted", "updated", "unchanged"), 0))
    moved: list[str] = field(default_factory=list)


class Command(BaseCommand):
    help = "Decode kept raw M-Bus frames again and store the readings they give now."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--since", required=True, help="date or ISO 8601 date and time (received_at)")
        parser.add_argument("--until", help="date or ISO 8601 date and time, exclusive (default: now)")
        parser.add_argument("--gateway", help="only this gateway's frames (its serial)")
        parser.add_argument("--dry-run", action="store_true", help="decode and report, store nothing")

    def handle(self, *args: Any, **options: Any) -> None:
        since = _moment(options["since"], "--since")
        until = _moment(options["until"], "--until") if options["until"] else timezone.now()
        if until <= since:
            raise CommandError("--until must be after --since")
        asyncio.run(self._run(since, until, options["gateway"], options["dry_run"]))

    async def _run(self, since: datetime, until: datetime, serial: str | None, dry_run: bool) -> None:
        try:
            pool = await db.get_pool()
            async with pool.connection() as conn:
                gateways = await sql.gateways_with_frames(conn, since, until, serial)
            if not gateways:
                self.stdout.write(f"No frames received from {since.isoformat()} to {until.isoformat()}.")
            for gateway in gateways:
                tally = await _reprocess(gateway, since, until, dry_run)
                self._report(gateway, tally, dry_run)
        finally:
            await db.close_pool()

    def _report(self, gateway: sql.AuthenticatedGateway, tally: Tally, dry_run: bool) -> None:
        counts = ", ".join(f"{count} {name}" for name, count in tally.counts.items())
        self.stdout.write(
            f"{gateway.serial}: {tally.frames} frames; {'would store' if dry_run else 'readings'}: {counts}; "
            f"{tally.now_decoded} decoded that were rejected, {tally.now_rejected} rejected that were decoded, "
            f"{tally.still_rejected} still rejected"
        )
        for line in tally.moved[:MOVED_LISTED]:
            self.stdout.write(f"  {line}")
        if len(tally.moved) > MOVED_LISTED:
            self.stdout.write(f"  … and {len(tally.moved) - MOVED_LISTED} more frames whose reading moved")


async def _reprocess(gateway: sql.AuthenticatedGateway, since: datetime, until: datetime, dry_run: bool) -> Tally:
    tally = Tally()
    pool = await db.get_pool()
    drift = timedelta(seconds=settings.FRAMES["max_meter_clock_drift_s"])
    after = 0
    while True:
        async with pool.connection() as conn:
            meters = await sql.installation_index(conn, gateway.property_id)
            kept = await sql.kept_frames(conn, gateway.id, since, until, after=after, limit=BATCH)
        if not kept:
            return tally
        after = kept[-1].id
        decoded = frames.decode_stored(
            [(frame.received_at, frame.frame) for frame in kept],
            installations=meters,
            time_zone=gateway.time_zone,
            now=datetime.now(UTC),
            max_meter_clock_drift=drift,
        )
        _compare(kept, decoded.raw, tally)
        if dry_run:
            tally.counts["inserted"] += len(decoded.payload.rows)
            continue
        counts = await _store(gateway, meters, kept, decoded)
        for name in tally.counts:
            tally.counts[name] += counts[name]


async def _store(
    gateway: sql.AuthenticatedGateway,
    meters: InstallationIndex,
    kept: list[sql.KeptFrame],
    decoded: frames.ParsedFrames,
) -> dict[str, int]:
    """The readings, and what became of each kept frame, in one transaction; not a delivery."""

    async def record(conn: AsyncConnection[Any]) -> None:
        await sql.update_raw_frames(conn, [frame.id for frame in kept], decoded.raw)

    return await delivery.store(gateway, meters, decoded.payload, also=record, delivery=False)


def _compare(kept: list[sql.KeptFrame], now: list[frames.RawFrameRow], tally: Tally) -> None:
    for before, after in zip(kept, now, strict=True):
        tally.frames += 1
        if before.error and not after.error:
            tally.now_decoded += 1
        elif after.error and not before.error:
            tally.now_rejected += 1
        elif after.error:
            tally.still_rejected += 1
        elif (before.installation_id, before.reading_at) != (after.installation_id, after.reading_at):
            tally.moved.append(
                f"frame {before.id}: reading of installation {before.installation_id} at {before.reading_at} "
                f"is now installation {after.installation_id} at {after.reading_at}"
            )


def _moment(text: str, option: str) -> datetime:
    """An aware datetime from a date (midnight, server time zone) or an ISO 8601 date and time."""
    moment = parse_datetime(text)
    if moment is None:
        day = parse_date(text)
        if day is None:
            raise CommandError(f"{option} {text!r} is not a date (2026-03-01) or ISO 8601 date and time")
        moment = datetime.combine(day, time())
    return moment if timezone.is_aware(moment) else timezone.make_aware(moment)
