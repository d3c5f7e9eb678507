"""The one home of an alarm's text: its type and parameters, rendered in the active language.

An alarm stores what happened as data (`Alarm.params`, a JSON object per
type, below) and `render()` turns it into a sentence with gettext, so the
admin, the e-mails and the dashboard all say the same thing in the reader's
language. The English rendering is also kept in `Alarm.message` when the
alarm is raised (`english()`): search, CSV exports and the read API keep
their plain text. Alarms from before parameters existed (and any whose
parameters this release does not know) fall back to that stored text.

Parameters per type (all JSON):

- low_battery: {"meter", "level"} or {"meter", "power_low": true}
- meter_error: {"meter", "problems": ["permanent" | "temporary" | "application_busy" | "application_error"]}
- gateway_offline: {"last_seen": "YYYY-MM-DD HH:MM" (UTC) | null, "hours"}
- leak_suspected: {"meter", "hours", "flow_lph", "leak_hours"}
- burst_suspected: {"meter", "used_m3", "until": "YYYY-MM-DD HH:MM" (UTC) | null, "limit_m3"}
- supply_imbalance: {"meter_type", "meter", "month": "YYYY-MM", "share", "usual", "months"}
- relay_behind: {"lag_s", "cursor"}
- job_failing: {"jobs": [{"task", "count", "for_good"}]}
- gateway_refusing: {"serial", "refused", "total"}
- mqtt_disconnected: {"seconds", "reason"}
- pool_saturated: {"pools": [{"name", "in_use", "max_size", "waiting", "seconds"}]}

Meter names ("Kamstrup 12345678") and numbers are kept as the raiser saw
them; decimals are strings so that what was measured is not re-rounded.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date
from typing import Any

from django.utils import formats, translation
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

Params = Mapping[str, Any]

PROBLEM_CODES = ("permanent", "temporary", "application_busy", "application_error")


def render(type: str, params: Params | None, legacy: str = "") -> str:
    """The alarm's text in the active language; `legacy` (the stored text) when the params cannot say it."""
    renderer = _RENDERERS.get(type)
    if not params or renderer is None:
        return legacy
    try:
        return renderer(params)
    except (KeyError, TypeError, ValueError):
        # Parameters of an older or newer shape: the stored text is still right.
        return legacy


def english(type: str, params: Params) -> str:
    """The English text, for `Alarm.message`."""
    with translation.override("en"):
        return render(type, params)


def in_languages(type: str, params: Params | None, legacy: str, languages: list[str]) -> dict[str, str]:
    """{language: text} for each of `languages` (the dashboard's payload)."""
    texts = {}
    for language in languages:
        with translation.override(language):
            texts[language] = render(type, params, legacy)
    return texts


def _decimal(value: Any) -> str:
    """A stored decimal string in the active language's format (1.5 → "1,5" in Danish), as given."""
    text = str(value)
    places = len(text.split(".", 1)[1]) if "." in text else 0
    return formats.number_format(text, places)


def _low_battery(p: Params) -> str:
    if p.get("power_low"):
        return _("meter %(meter)s reports power low.") % {"meter": p["meter"]}
    return _("Battery at %(level)s %% on meter %(meter)s.") % {"level": int(p["level"]), "meter": p["meter"]}


def _problem(code: str) -> str:
    return {
        "permanent": _("a permanent error"),
        "temporary": _("a temporary error"),
        "application_busy": _("application busy"),
        "application_error": _("an application error"),
    }[code]


def _meter_error(p: Params) -> str:
    problems = _(" and ").join(_problem(code) for code in p["problems"])
    return _("meter %(meter)s reports %(problems)s.") % {"meter": p["meter"], "problems": problems}


def _gateway_offline(p: Params) -> str:
    hours = formats.number_format(p["hours"])
    if p.get("last_seen"):
        return _("Last payload %(when)s UTC; silent for more than %(hours)s hours.") % {
            "when": p["last_seen"],
            "hours": hours,
        }
    return _("No payload yet; silent for more than %(hours)s hours.") % {"hours": hours}


def _leak(p: Params) -> str:
    return _(
        "Water flowing for %(hours)s hours without pause on meter %(meter)s "
        "(rule: at least %(flow)s l/h in every hour for %(leak_hours)s hours)."
    ) % {"hours": int(p["hours"]), "meter": p["meter"], "flow": _decimal(p["flow_lph"]), "leak_hours": p["leak_hours"]}


def _burst(p: Params) -> str:
    return _(
        "%(used)s m³ within an hour on meter %(meter)s, the last such hour up to %(until)s "
        "(rule: more than %(limit)s m³ in one hour)."
    ) % {
        "used": _decimal(p["used_m3"]),
        "meter": p["meter"],
        "until": f"{p['until']} UTC" if p.get("until") else "?",
        "limit": _decimal(p["limit_m3"]),
    }


def _supply_imbalance(p: Params) -> str:
    from readings.models import MeterType  # the labels' one home

    year, month = (int(part) for part in str(p["month"]).split("-"))
    return _(
        "%(meter_type)s supply meter %(meter)s, %(month)s: %(share)s %% of the supply is not accounted for "
        "by the units' meters; usually %(usual)s %% (median of the %(months)s months before)."
    ) % {
        "meter_type": MeterType(p["meter_type"]).label,
        "meter": p["meter"],
        "month": formats.date_format(date(year, month, 1), "F Y"),
        "share": _decimal(p["share"]),
        "usual": _decimal(p["usual"]),
        "months": p["months"],
    }


def _relay_behind(p: Params) -> str:
    return _("the alarm relay has not published alarm changes for %(seconds)s s (its cursor: change %(cursor)s)") % {
        "seconds": round(float(p["lag_s"])),
        "cursor": p["cursor"],
    }


def _job(job: Params) -> str:
    count = int(job["count"])
    if job.get("for_good"):
        text = ngettext("%(task)s failed %(count)s time, for good", "%(task)s failed %(count)s times, for good", count)
    else:
        text = ngettext("%(task)s failed %(count)s time", "%(task)s failed %(count)s times", count)
    return text % {"task": job["task"], "count": count}


def _job_failing(p: Params) -> str:
    return _("jobs failing in the last hour: %(jobs)s") % {"jobs": "; ".join(_job(job) for job in p["jobs"])}


def _gateway_refusing(p: Params) -> str:
    return _(
        "%(serial)s: %(refused)s of %(total)s readings refused in the last hour;"
        " check the gateway's configuration and meters"
    ) % {"serial": p["serial"], "refused": int(p["refused"]), "total": int(p["total"])}


def _mqtt_disconnected(p: Params) -> str:
    # The reason is the MQTT library's own words, not ours to translate.
    return _("no session with the MQTT broker for %(seconds)s s: %(reason)s") % {
        "seconds": round(float(p["seconds"])),
        "reason": p["reason"],
    }


def _pool(pool: Params) -> str:
    return _(
        "%(name)s pool: %(in_use)s of %(max_size)s connections in use, %(waiting)s request(s) waiting,"
        " for %(seconds)s s or more"
    ) % {
        "name": pool["name"],
        "in_use": int(pool["in_use"]),
        "max_size": int(pool["max_size"]),
        "waiting": int(pool["waiting"]),
        "seconds": round(float(pool["seconds"])),
    }


def _pool_saturated(p: Params) -> str:
    return "; ".join(_pool(pool) for pool in p["pools"])


_RENDERERS: dict[str, Callable[[Params], str]] = {
    "low_battery": _low_battery,
    "meter_error": _meter_error,
    "gateway_offline": _gateway_offline,
    "leak_suspected": _leak,
    "burst_suspected": _burst,
    "supply_imbalance": _supply_imbalance,
    "relay_behind": _relay_behind,
    "job_failing": _job_failing,
    "gateway_refusing": _gateway_refusing,
    "mqtt_disconnected": _mqtt_disconnected,
    "pool_saturated": _pool_saturated,
}
