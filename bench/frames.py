"""Frame decoding benchmark: frames/s of the /api/v1/frames parse stage against baselines in the same run.

    .venv/bin/python bench/frames.py [--frames 10000] [--rounds 5]

CPU only, no database: the stage that runs before the shared COPY path.
Each body holds N Kamstrup MULTICAL 602 frames (400 meters x N/400 hours,
meter clock in every frame; tests/gateways/mbus_frames.py builds them).

  (a) gateways.mbus.decode of each frame alone             (the decoder's floor)
  (b) gateways.frames.parse_frames of the body             (decode, map, convert: ours)
  (c) gateways.payload.parse_readings of the same readings (the JSON endpoint's stage)

Prints the median frames/s of each over the rounds, and (b)/(a) and (b)/(c).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))
os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mbusportal.settings")

import django  # noqa: E402

django.setup()

from gateways import delivery, mbus  # noqa: E402
from gateways.frames import parse_frames  # noqa: E402
from gateways.payload import InstallationIndex, InstalledMeter, parse_readings  # noqa: E402
from tests.gateways.mbus_frames import multical_602  # noqa: E402

METERS = 400
START = datetime(2026, 1, 1, tzinfo=UTC)
ZONE = "Europe/Copenhagen"


def building() -> InstallationIndex:
    return InstallationIndex(
        InstalledMeter(i, f"{30_000_000 + i:08d}", "KAM", "heat", "kWh", datetime(2020, 1, 1, tzinfo=UTC), None)
        for i in range(METERS)
    )


def bodies(count: int) -> tuple[list[bytes], bytes, bytes]:
    frames, items, readings = [], [], []
    for n in range(count):
        meter, hour = n % METERS, n // METERS
        received = START + timedelta(hours=hour, seconds=3)
        local = (START + timedelta(hours=hour)).astimezone(ZoneInfo(ZONE)).replace(tzinfo=None)
        frame = multical_602(30_000_000 + meter, energy_kwh=10_000 + n, clock=local)
        frames.append(frame)
        items.append({"frame": frame.hex(), "received_at": received.isoformat()})
        readings.append(
            {
                "meter": f"{30_000_000 + meter:08d}",
                "manufacturer": "KAM",
                "timestamp": (START + timedelta(hours=hour)).isoformat(),
                "value": str(10_000 + n),
                "unit": "kWh",
                "error_flags": 0,
            }
        )
    return frames, json.dumps(items).encode(), json.dumps({"readings": readings}).encode()


def timed(run: Callable[[], Any]) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--frames", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    options = parser.parse_args()
    meters = building()
    frames, frames_body, readings_body = bodies(options.frames)
    now = datetime.now(UTC)
    frame_limits = delivery.frame_limits()
    frame_limits = type(frame_limits)(options.frames, 100, frame_limits.max_clock_skew, timedelta(days=1))
    reading_limits = type(delivery.limits())(options.frames, 100, timedelta(minutes=15))

    def decoder_alone() -> None:
        for frame in frames:  # each answer dropped at once, as parse_frames does
            mbus.decode(frame)

    def ours() -> None:
        parsed = parse_frames(frames_body, installations=meters, time_zone=ZONE, now=now, limits=frame_limits)
        assert parsed.rejected_total == 0 and len(parsed.payload.rows) == options.frames, parsed.rejected[:3]

    variants: dict[str, tuple[str, Callable[[], Any]]] = {
        "a": ("gateways.mbus.decode, frame by frame", decoder_alone),
        "b": ("parse_frames (decode, map, convert)", ours),
        "c": (
            "parse_readings (same readings as JSON)",
            lambda: parse_readings(readings_body, installations=meters, now=now, limits=reading_limits),
        ),
    }
    results: dict[str, list[float]] = {key: [] for key in variants}
    for _ in range(options.rounds):
        for key, (_, run) in variants.items():
            results[key].append(options.frames / timed(run))
    median = {key: statistics.median(values) for key, values in results.items()}
    print(f"median frames/s over {options.rounds} rounds of {options.frames:,} frames ({METERS} meters)")
    for key, (label, _) in variants.items():
        print(f"  ({key}) {label:<42} {median[key]:>10,.0f}")
    print(f"  (b)/(a) the whole stage against decoding:  {median['b'] / median['a']:.2f}")
    print(f"  (b)/(c) frames against JSON readings:      {median['b'] / median['c']:.2f}")


if __name__ == "__main__":
    main()
