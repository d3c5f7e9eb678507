"""`make bench` (bench/summary.py): every benchmark in bench/ is in its table."""

from pathlib import Path

from bench.summary import BENCHMARKS, Result, table

BENCH = Path(__file__).resolve().parents[1] / "bench"


def test_it_runs_every_benchmark_in_bench():
    modules = {path.stem for path in BENCH.glob("*.py")} - {"__init__", "summary"}
    assert {benchmark.name for benchmark in BENCHMARKS} == modules


def test_it_prints_one_row_per_benchmark_with_its_figure_and_ratio():
    frames = next(benchmark for benchmark in BENCHMARKS if benchmark.name == "frames")
    lines = table([Result(frames, "ok", 12.0, "2,028", "0.36")]).splitlines()
    assert lines[0].split()[:3] == ["benchmark", "figure", "ratio"]
    assert lines[2].split()[:4] == ["frames", "2,028", "frames/s", "0.36"]
