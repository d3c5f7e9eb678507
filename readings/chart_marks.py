"""Marks on a meter's daily consumption chart that apps above readings contribute (alarms, from gateways).

readings draws the charts but may not import the apps above it, so it owns this small registry: an app
registers a source in its AppConfig.ready() (gateways: its alarms), and the pages that draw a meter's
days ask `day_marks()`, which asks every source. A source decides itself what the user may see, in one
query, and returns marks already worded in the active language.
"""

from __future__ import annotations

import zoneinfo
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from readings.scoping import AnyUser


@dataclass(frozen=True, slots=True)
class DayMark:
    """Something that happened to a meter on a local day: drawn above that day's bar."""

    installation_id: int
    day: date
    at: datetime
    severity: str  # "critical", "warning" or "info": the mark's colour
    open: bool  # still open (a filled mark) or over (an outlined one)
    label: str  # what a tooltip and a screen reader say
    href: str = ""  # where the mark leads ("" for no link)


# (user, installation ids, first day, last day inclusive, the property's zone) -> marks, in any order.
MarkSource = Callable[[AnyUser, Sequence[int], date, date, zoneinfo.ZoneInfo], list[DayMark]]

_sources: dict[str, MarkSource] = {}


def register(name: str, source: MarkSource) -> None:
    """Add (or replace) the source called `name`."""
    _sources[name] = source


def day_marks(
    user: AnyUser, installation_ids: Sequence[int], first: date, last: date, zone: zoneinfo.ZoneInfo
) -> dict[date, list[DayMark]]:
    """The marks every source has for these meters on the local days [first, last], by day, most severe
    first (then oldest); {} for no meters, no days or no sources. Synchronous (the ORM)."""
    if not installation_ids or last < first:
        return {}
    by_day: defaultdict[date, list[DayMark]] = defaultdict(list)
    for source in _sources.values():
        for mark in source(user, installation_ids, first, last, zone):
            by_day[mark.day].append(mark)
    return {day: sorted(marks, key=mark_order) for day, marks in by_day.items()}


SEVERITY_RANK = {"critical": 0, "warning": 1, "info": 2}


def mark_order(mark: DayMark) -> tuple[int, int, datetime]:
    """Open before over, the most severe first, then the oldest."""
    return (0 if mark.open else 1, SEVERITY_RANK.get(mark.severity, 9), mark.at)
