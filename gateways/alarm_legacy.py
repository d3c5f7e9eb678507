"""Parameters from the English texts that alarms were stored with before they had parameters.

Used once, by migration 0017. The formats are those of the releases before
it and never change. A text is only turned into parameters when rendering
them in English gives the same text back (`parse()`), so nothing is lost:
every other alarm keeps its stored text as its only text.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from django.utils import translation

from gateways import alarm_text

_METER = r"meter (?P<meter>.+?)"
_PATTERNS: dict[str, list[re.Pattern[str]]] = {
    "low_battery": [
        re.compile(rf"Battery at (?P<level>\d+) % on {_METER}\."),
        re.compile(rf"{_METER} reports power low\.(?P<power_low>)"),
    ],
    "meter_error": [re.compile(rf"{_METER} reports (?P<problems>.+)\.")],
    "gateway_offline": [
        re.compile(
            r"Last payload (?P<last_seen>\d{4}-\d\d-\d\d \d\d:\d\d) UTC;"
            r" silent for more than (?P<hours>[\d.]+) hours\."
        ),
        re.compile(r"No payload yet; silent for more than (?P<hours>[\d.]+) hours\."),
    ],
    "leak_suspected": [
        re.compile(
            rf"Water flowing for (?P<hours>\d+) hours without pause on {_METER} "
            r"\(rule: at least (?P<flow_lph>[\d.]+) l/h in every hour for (?P<leak_hours>\d+) hours\)\."
        )
    ],
    "burst_suspected": [
        re.compile(
            rf"(?P<used_m3>[\d.]+) m³ within an hour on {_METER}, the last such hour up to "
            r"(?:(?P<until>\d{4}-\d\d-\d\d \d\d:\d\d) UTC|\?) \(rule: more than (?P<limit_m3>[\d.]+) m³ in one hour\)\."
        )
    ],
    "supply_imbalance": [
        re.compile(
            r"(?P<label>.+?) supply meter (?P<meter>.+), (?P<month>[A-Z][a-z]+ \d{4}): (?P<share>-?[\d.]+) % of the "
            r"supply is not accounted for by the units' meters; usually (?P<usual>-?[\d.]+) % "
            r"\(median of the (?P<months>\d+) months before\)\."
        )
    ],
    "relay_behind": [
        re.compile(
            r"the alarm relay has not published alarm changes for (?P<lag_s>\d+) s"
            r" \(its cursor: change (?P<cursor>\d+)\)"
        )
    ],
    "job_failing": [re.compile(r"jobs failing in the last hour: (?P<jobs>.+)")],
    "gateway_refusing": [
        re.compile(
            r"(?P<serial>.+?): (?P<refused>\d+) of (?P<total>\d+) readings refused in the last hour;"
            r" check the gateway's configuration and meters"
        )
    ],
    "mqtt_disconnected": [re.compile(r"no session with the MQTT broker for (?P<seconds>\d+) s: (?P<reason>.*)", re.S)],
    "pool_saturated": [re.compile(r"(?P<pools>.+ pool: .+)")],
}
_PROBLEMS = {
    "a permanent error": "permanent",
    "a temporary error": "temporary",
    "application busy": "application_busy",
    "an application error": "application_error",
}
_JOB = re.compile(r"(?P<task>.+) failed (?P<count>\d+) time\(s\)(?P<for_good>, for good)?")
_POOL = re.compile(
    r"(?P<name>.+) pool: (?P<in_use>\d+) of (?P<max_size>\d+) connections in use,"
    r" (?P<waiting>\d+) request\(s\) waiting, for (?P<seconds>\d+) s or more"
)


def parse(type: str, message: str) -> dict[str, Any] | None:
    """The parameters that render back to exactly `message` in English; None when there are none."""
    for pattern in _PATTERNS.get(type, []):
        match = pattern.fullmatch(message)
        if match is None:
            continue
        try:
            params = _params(type, match.groupdict())
        except (KeyError, ValueError):
            continue
        if alarm_text.english(type, params) == _reworded(type, message):
            return params
    return None


def _reworded(type: str, message: str) -> str:
    """The old text as this release words it: "3 time(s)" became "3 times" (and "1 time")."""
    if type != "job_failing":
        return message
    return re.sub(r"(\d+) time\(s\)", lambda m: f"{m[1]} time" + ("" if m[1] == "1" else "s"), message)


def _number(text: str) -> int | float:
    value = float(text)
    return int(value) if value.is_integer() else value


def _params(type: str, found: dict[str, str | None]) -> dict[str, Any]:
    params: dict[str, Any] = {key: value for key, value in found.items() if value is not None}
    match type:
        case "low_battery":
            if "power_low" in params:
                params["power_low"] = True
            else:
                params["level"] = int(params["level"])
        case "meter_error":
            params["problems"] = [_PROBLEMS[name] for name in params["problems"].split(" and ")]
        case "gateway_offline":
            params["hours"] = _number(params["hours"])
            params.setdefault("last_seen", None)
        case "leak_suspected":
            params["hours"], params["leak_hours"] = int(params["hours"]), int(params["leak_hours"])
        case "burst_suspected":
            params.setdefault("until", None)
        case "supply_imbalance":
            params["meter_type"] = _meter_type(params.pop("label"))
            params["month"] = f"{datetime.strptime(params['month'], '%B %Y'):%Y-%m}"
            params["months"] = int(params["months"])
        case "relay_behind":
            params["lag_s"], params["cursor"] = int(params["lag_s"]), int(params["cursor"])
        case "job_failing":
            params["jobs"] = [_job(part) for part in params["jobs"].split("; ")]
        case "gateway_refusing":
            params["refused"], params["total"] = int(params["refused"]), int(params["total"])
        case "mqtt_disconnected":
            params["seconds"] = int(params["seconds"])
        case "pool_saturated":
            params["pools"] = [_pool(part) for part in params["pools"].split("; ")]
    return params


def _meter_type(label: str) -> str:
    from readings.models import MeterType

    with translation.override("en"):
        for value, english in MeterType.choices:
            if str(english) == label:
                return str(value)
    raise ValueError(label)


def _job(text: str) -> dict[str, Any]:
    match = _JOB.fullmatch(text)
    if match is None:
        raise ValueError(text)
    return {"task": match["task"], "count": int(match["count"]), "for_good": match["for_good"] is not None}


def _pool(text: str) -> dict[str, Any]:
    match = _POOL.fullmatch(text)
    if match is None:
        raise ValueError(text)
    return {"name": match["name"], **{key: int(match[key]) for key in ("in_use", "max_size", "waiting", "seconds")}}
