"""Every benchmark in bench/ at a quick setting, and one table of their figures and ratios: `make bench`.

    .venv/bin/python -m bench.summary [--only ingest,frames] [--skip pages] [--timeout 900]

Each benchmark runs as its own process, one after the other (they would
disturb each other's timings side by side), with small sizes and one round
where it has options for them; the table shows each one's headline figure
and its ratio to the baseline it measures in the same run, read from its
output. The quick settings are for seeing that nothing has got much slower,
not for quoting: run a benchmark on its own, at its defaults, for that.

Benchmarks that build a large data set once and keep it (pages, settlement,
monthly, monthly_delivery) take their minutes only the first time; the
admin benchmark reads the demo data (`make run`) and is skipped without it.
Each one's whole output is kept in a log file named under the table.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Benchmark:
    name: str
    args: tuple[str, ...]  # after `python -m bench.<name>`: the quick setting
    figure: str  # regex whose first group is the headline figure
    unit: str
    ratio: str  # regex whose first group is the ratio to the benchmark's own baseline
    ratio_of: str  # what the ratio compares
    # What it needs that may be missing here, and the output that says it is: then skipped, not failed.
    needs: str = ""
    unavailable: str = r"(?!)"


NUMBER = r"([\d,]+(?:\.\d+)?)"

BENCHMARKS = [
    Benchmark(
        "frames",
        ("--frames", "2000", "--rounds", "2"),
        rf"^\s*\(b\) .*?\s{NUMBER}\s*$",
        "frames/s",
        rf"\(b\)/\(a\) the whole stage against decoding:\s+{NUMBER}",
        "(b)/(a): parse stage / decoding alone",
    ),
    Benchmark(
        "ingest",
        ("--payloads", "1", "--rounds", "1", "--skip-patterns"),
        rf"^\s*\(e\)\s+.*?\s{NUMBER}\s+[\d.]+ x \(a\)\s*$",
        "rows/s",
        rf"\(e\)/\(a\) = {NUMBER}",
        "(e)/(a): POST through daphne / server-side COPY",
    ),
    Benchmark(
        "mqtt",
        ("--payloads", "1", "--rounds", "1"),
        rf"^\s*\(m\)\s+.*?\s{NUMBER}\s+[\d.]+ x \(e\)\s*$",
        "readings/s",
        rf"\(m\)/\(e\) = {NUMBER}",
        "(m)/(e): MQTT / HTTP",
        needs="mosquitto (apt-get install mosquitto)",
        unavailable=r"^no mosquitto binary",
    ),
    Benchmark(
        "scale",
        ("--quick",),
        rf"^\s*\(h\)\s+.*?\s{NUMBER}\s+[\d.]+ x \(a\)\s*$",
        "rows/s",
        rf"\(h\)/\(a\) = {NUMBER}",
        "(h)/(a): gateways through nginx, 2 daphnes, PgBouncer / server-side COPY",
        needs="nginx, pgbouncer, redis-server and mosquitto (make stack)",
        unavailable=r"^stack unavailable: not installed",
    ),
    Benchmark(
        "alarms",
        ("--clients", "50", "--alarms", "100"),
        rf"^\s*p99:\s+{NUMBER} ms",
        "ms p99",
        rf"^\s*p99:.*ratio\s+{NUMBER}x",
        "p99 latency / bare NOTIFY",
    ),
    Benchmark(
        "leak_rules",
        ("--meters", "200"),
        rf"^leak\.evaluate\(\).*?{NUMBER} ms",
        "ms",
        rf"^leak\.evaluate\(\).*ratio\s+{NUMBER}",
        "evaluation / SELECT count(*)",
    ),
    Benchmark(
        "export",
        ("--days", "30", "--runs", "1"),
        rf"^\s*\(b\)\s+daphne -> streaming HTTP client:.*?{NUMBER} rows/s",
        "rows/s",
        rf"\(b\)/\(a\) = {NUMBER}",
        "(b)/(a): CSV export through daphne / psql \\copy",
    ),
    Benchmark(
        "read_api",
        ("--days", "30", "--runs", "1"),
        rf"^\s*\(b\)\s+read API NDJSON via daphne:.*?{NUMBER} rows/s",
        "rows/s",
        rf"\(b\)/\(a\) = {NUMBER}",
        "(b)/(a): read API through daphne / psql \\copy",
    ),
    Benchmark(
        "settlement",
        ("--runs", "1"),
        rf"^\s*settlement_generate\s+median\s+{NUMBER} ms",
        "ms",
        rf"^\s*settlement_generate.*?{NUMBER} x baseline",
        "generation / one SQL sum",
    ),
    Benchmark(
        "monthly",
        ("--rounds", "1"),
        rf"^\s*monthly information, 10,000 tenancies\s+median\s+{NUMBER} s",
        "s",
        rf"^\s*monthly information, 10,000 tenancies.*?{NUMBER} x baseline",
        "monthly information / consumption query",
    ),
    Benchmark(
        "monthly_delivery",
        ("--runs", "1"),
        rf"^\s*whole month's run .*?median\s+{NUMBER} s",
        "s",
        rf"^\s*compute and queue .*?{NUMBER} x the consumption query",
        "compute and queue / consumption query",
    ),
    Benchmark(
        "pages",
        ("--requests", "20"),
        rf"^GET /consumption/ \(tenant\)\s+{NUMBER}",
        "ms p50",
        rf"^GET /consumption/ \(tenant\)\s+[\d.]+\s+[\d.]+\s+{NUMBER}x",
        "tenant page / GET /health",
    ),
    Benchmark(
        "admin_readings",
        (),
        rf"^readings, newest page \(keyset\)\s+{NUMBER} ms",
        "ms",
        rf"^readings, newest page \(keyset\).*ratio\s+{NUMBER}x",
        "stock paginator / keyset page",
        needs="the demo data with a year of readings (make run)",
        unavailable=r"^No demo data|^Meter .* readings; seed|relation \"readings_\w+\" does not exist",
    ),
]


@dataclass
class Result:
    benchmark: Benchmark
    status: str
    seconds: float
    figure: str = "-"
    ratio: str = "-"


def first(pattern: str, output: str) -> str | None:
    match = re.search(pattern, output, re.MULTILINE)
    return match.group(1) if match else None


def run(benchmark: Benchmark, logs: Path, timeout: float) -> Result:
    log = logs / f"{benchmark.name}.log"
    started = time.monotonic()
    print(f"--- {benchmark.name} {' '.join(benchmark.args)} (log: {log})", flush=True)
    try:
        process = subprocess.run(
            [sys.executable, "-m", f"bench.{benchmark.name}", *benchmark.args],
            cwd=PROJECT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
        )
        output, returncode = process.stdout, process.returncode
    except subprocess.TimeoutExpired as exc:
        output = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        returncode = None
    seconds = time.monotonic() - started
    log.write_text(output)
    figure, ratio = first(benchmark.figure, output), first(benchmark.ratio, output)
    if returncode is None:
        status = f"timed out after {timeout:.0f} s"
    elif figure is not None and ratio is not None:
        status = "ok" if returncode == 0 else f"exit {returncode}"
    elif re.search(benchmark.unavailable, output, re.MULTILINE):
        status = f"skipped: needs {benchmark.needs}"
    else:
        status = f"failed (exit {returncode})" if returncode else "no figures in its output"
    return Result(benchmark, status, seconds, figure or "-", ratio or "-")


def table(results: list[Result]) -> str:
    header = ("benchmark", "figure", "ratio", "ratio of", "time", "status")
    rows = [
        (
            r.benchmark.name,
            f"{r.figure} {r.benchmark.unit}" if r.figure != "-" else "-",
            r.ratio,
            r.benchmark.ratio_of,
            f"{r.seconds:.0f} s",
            r.status,
        )
        for r in results
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in [header, *rows]]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    names = [b.name for b in BENCHMARKS]
    parser.add_argument("--only", default="", help=f"comma-separated, of {', '.join(names)}")
    parser.add_argument("--skip", default="", help="comma-separated benchmarks to leave out")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per benchmark (default 900)")
    options = parser.parse_args()
    only = {n for n in options.only.split(",") if n}
    skip = {n for n in options.skip.split(",") if n}
    unknown = (only | skip) - set(names)
    if unknown:
        parser.error(f"unknown benchmarks: {', '.join(sorted(unknown))}")
    chosen = [b for b in BENCHMARKS if (not only or b.name in only) and b.name not in skip]
    logs = Path(tempfile.mkdtemp(prefix="mbusportal-bench-"))
    os.environ.setdefault("DEBUG", "true")
    results = [run(benchmark, logs, options.timeout) for benchmark in chosen]
    print()
    print(table(results))
    print(f"\nquick settings: rough figures, not for quoting. Full output of each: {logs}/<benchmark>.log")
    if any(not (r.status == "ok" or r.status.startswith("skipped")) for r in results):
        sys.exit(1)


if __name__ == "__main__":
    main()
