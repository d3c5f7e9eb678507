"""Screenshots of the pages a manager, a tenant and an operator reach, for a reviewer to look at.

`make screenshots` runs this: it seeds the demo into a scratch database
(mbusportal_screenshots, dropped and created afresh on the same server as
DATABASE_URL, so the development data stays as it is), starts daphne on it,
logs in as each person and saves every page at 390 px and 1366 px, in Danish
and English, under screenshots/ (not committed). Debian's chromium via
Playwright, as in the browser tests.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

PROJECT = Path(__file__).resolve().parent.parent
OUTPUT = PROJECT / "screenshots"
SCRATCH_DATABASE = "mbusportal_screenshots"
WIDTHS = {"390": (390, 844), "1366": (1366, 768)}
LANGUAGES = ("en", "da")
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
OPERATOR = ("operator", "operator-demo-2026")
# Enough hourly readings for the leak to show; the demo adds daily ones back to last January.
SEED_DAYS = "14"


@dataclass(frozen=True)
class Shot:
    who: str  # the login: manager, tenant or operator
    name: str  # the file's name
    path: str


def scratch_url() -> str:
    """DATABASE_URL (or the embedded server's) with the scratch database's name."""
    from mbusportal import embedded_db

    base = os.environ.get("DATABASE_URL") or embedded_db.database_url()
    return urlunsplit(urlsplit(base)._replace(path=f"/{SCRATCH_DATABASE}"))


def recreate_database(url: str) -> None:
    """Drop and create the scratch database through the server's maintenance database."""
    maintenance = urlunsplit(urlsplit(url)._replace(path="/postgres"))
    with psycopg.connect(maintenance, autocommit=True) as conn:
        name = sql.Identifier(SCRATCH_DATABASE)
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(name))


def seed() -> list[Shot]:
    """Migrate and seed the scratch database, add an operator; returns the pages to photograph."""
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)
    call_command("seed_demo", days=int(SEED_DAYS))
    call_command("seed_demo_settlement")
    return pages()


def pages() -> list[Shot]:
    """Every page each person reaches by links, with the demo's ids filled in."""
    from django.contrib.auth.models import Permission, User

    from gateways.management.commands.seed_demo import ANNEX, PROPERTY
    from gateways.models import AlarmType
    from readings.models import MeterInstallation, MeterType, Organisation, Property, Tenancy
    from settlements.models import Settlement

    prop = Property.objects.get(name=PROPERTY)
    annex = Property.objects.get(name=ANNEX)
    operator, created = User.objects.get_or_create(username=OPERATOR[0], defaults={"is_staff": True})
    if created:
        operator.set_password(OPERATOR[1])
        operator.save()
    # An operator on duty for the demo organisation, who also watches the portal itself.
    operator.user_permissions.add(Permission.objects.get(codename="view_system_alarms"))
    Organisation.objects.get().managers.add(operator)
    leaking = MeterInstallation.objects.get(unit__property=prop, alarms__type=AlarmType.LEAK_SUSPECTED)
    heat_meter = MeterInstallation.objects.filter(unit=leaking.unit, meter_type=MeterType.HEAT).get()
    settlement = Settlement.objects.get(property=prop)
    tenancy = Tenancy.objects.get(tenant__username="tenant")
    last_month = settlement.period_end.replace(month=1)
    unit = leaking.unit
    return [
        Shot("manager", "admin-index", "/admin/"),
        Shot("manager", "property-overview", f"/properties/{prop.pk}/"),
        Shot("manager", "annex-overview", f"/properties/{annex.pk}/"),
        Shot("manager", "unit-consumption", f"/properties/{prop.pk}/units/{unit.pk}/consumption/"),
        Shot("manager", "property-admin", f"/admin/readings/property/{prop.pk}/change/"),
        Shot("manager", "meter-admin-heat", f"/admin/readings/meterinstallation/{heat_meter.pk}/change/"),
        Shot("manager", "meter-admin-leak", f"/admin/readings/meterinstallation/{leaking.pk}/change/"),
        Shot("manager", "meter-list", "/admin/readings/meterinstallation/"),
        Shot("manager", "gateway-list", "/admin/gateways/gateway/"),
        Shot("manager", "alarm-list", "/admin/gateways/alarm/"),
        Shot("manager", "tenancy-list", "/admin/readings/tenancy/"),
        Shot("manager", "settlement-admin", f"/admin/settlements/settlement/{settlement.pk}/change/"),
        Shot("manager", "alarm-dashboard", "/alarms/"),
        Shot("tenant", "home", "/home/"),
        Shot("tenant", "year", "/consumption/"),
        Shot("tenant", "monthly-months", f"/home/monthly/{tenancy.pk}/"),
        Shot("tenant", "monthly-month", f"/home/monthly/{tenancy.pk}/{last_month:%Y-%m}/"),
        Shot("tenant", "statement", f"/settlements/{settlement.pk}/statement/"),
        Shot("tenant", "downloads", "/home/downloads/"),
        Shot("operator", "alarm-dashboard", "/alarms/"),
        Shot("operator", "system", "/system/"),
        Shot("operator", "admin-index", "/admin/"),
    ]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def daphne(env: dict[str, str]) -> Iterator[str]:
    """A daphne serving the scratch database; yields its base URL, stops it afterwards."""
    port = free_port()
    log = (OUTPUT / "daphne.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "mbusportal.asgi:application"],
        cwd=PROJECT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(base + "/health", timeout=2).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"daphne did not start; see {log.name}") from None
                time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


def photograph(base: str, shots: list[Shot]) -> tuple[int, list[str]]:
    """Save every shot at each width and language; returns how many images and the pages that went wrong."""
    from playwright.sync_api import sync_playwright

    passwords = {"manager": "manager-demo-2026", "tenant": "tenant-demo-2026", "operator": OPERATOR[1]}
    saved, problems = 0, []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--headless=new", "--no-sandbox"])
        for who, password in passwords.items():
            for language in LANGUAGES:
                for width_name, (width, height) in WIDTHS.items():
                    context = browser.new_context(viewport={"width": width, "height": height}, locale=language)
                    host = urlsplit(base).hostname or "127.0.0.1"
                    context.add_cookies([{"name": "django_language", "value": language, "domain": host, "path": "/"}])
                    page = context.new_page()
                    page.goto(f"{base}/login/")
                    page.fill("input[name=username]", who)
                    page.fill("input[name=password]", password)
                    page.click("form:has(input[name=password]) [type=submit]")
                    page.wait_for_load_state("networkidle")
                    for shot in (shot for shot in shots if shot.who == who):
                        response = page.goto(base + shot.path, wait_until="networkidle")
                        status = response.status if response else 0
                        # A refused page would redirect to the login page, which answers 200 too.
                        if status != 200 or urlsplit(page.url).path != shot.path:
                            problems.append(f"{who} {language} {shot.path}: HTTP {status} at {page.url}")
                        target = OUTPUT / language / width_name / f"{who}-{shot.name}.png"
                        target.parent.mkdir(parents=True, exist_ok=True)
                        page.screenshot(path=str(target), full_page=True)
                        saved += 1
                    context.close()
        browser.close()
    return saved, problems


def main() -> int:
    started = time.monotonic()
    OUTPUT.mkdir(exist_ok=True)
    url = scratch_url()
    recreate_database(url)
    os.environ.update(DATABASE_URL=url, DJANGO_SETTINGS_MODULE="mbusportal.settings")
    os.environ.setdefault("DEBUG", "true")  # daphne serves the static files only with DEBUG
    shots = seed()
    # Only the sync Playwright API runs from here on: the ORM work is done.
    with daphne({**os.environ, "ALARM_RELAY_IN_PROCESS": "false"}) as base:
        saved, problems = photograph(base, shots)
    for problem in problems:
        print(f"problem: {problem}")
    print(f"{saved} screenshots in {OUTPUT}/<language>/<width>/ ({time.monotonic() - started:.0f} s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
