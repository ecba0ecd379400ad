"""Sink scale: a simulated sweep of N trials x R reports through the real ParquetResultSink on real Ray.

A stub function trainable reports fake metrics in the sink's schema as fast as Ray takes them
(no training), so the driver's share is all there is to see. Printed side by side with the
targets: the sink's driver time per report (every Tune callback hook it overrides, get_state
included), the files left under reports/, DuckDB's time to count the rows (when duckdb is
importable; it is no dependency) and the analysis of the result (load_results, then analyze:
what ``advent-sweep analyze`` runs).

    python benchmarks/sink_scale.py                          # 1,000 trials x 20 reports
    python benchmarks/sink_scale.py --trials 200 --reports 10
    python benchmarks/sink_scale.py --stub --trials 10000    # the sink's callbacks driven without Ray

``--stub`` drives the sink's callbacks the way Tune's loop calls them (a trial starts, reports, ends;
``on_step_end`` after every event; ``get_state`` every 10 s) with stand-in trial objects, on a clock
that advances 1/REPORTS_PER_S per report (the rate embedded Ray reached on 2 cores): flushes come as
often as in a real sweep, and the sink's cost shows alone at a size a real run takes an hour to reach.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import random
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from advent_sweep.analysis import analyze, load_results
from advent_sweep.data.labels import CITYSCAPES_CLASS_NAMES
from advent_sweep.sweep import results_schema as rs
from advent_sweep.sweep.launch import shutdown_started_ray, start_ray
from advent_sweep.sweep.spec import SweepSpec

REPORTS_PER_S = 50.0  # 7,500 stub trials x 20 reports in 50 minutes through embedded Ray on 2 cores
METRICS = (*rs.METRIC_COLUMNS, *(f"iou.{name}" for name in CITYSCAPES_CLASS_NAMES))


@contextlib.contextmanager
def timed_hooks() -> Iterator[dict[str, float]]:
    """Seconds spent in each Tune callback hook that ParquetResultSink overrides (setup, get_state, on_*).

    get_state counts: the sink flushes there when Ray saves its state.
    """
    from ray.tune import Callback

    from advent_sweep.sweep.parquet_sink import ParquetResultSink

    spent: dict[str, float] = {}
    longest: dict[str, float] = {}
    step_ends: list[float] = []
    hooks = {name: hook for name, hook in vars(ParquetResultSink).items() if not name.startswith("_") and hasattr(Callback, name)}

    def timed(name: str, hook: Any) -> Any:
        @functools.wraps(hook)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return hook(*args, **kwargs)
            finally:
                seconds = time.perf_counter() - started
                spent[name] = spent.get(name, 0.0) + seconds
                longest[name] = max(longest.get(name, 0.0), seconds)
                if name == "on_step_end":
                    step_ends.append(seconds)
        return wrapper

    for name, hook in hooks.items():
        setattr(ParquetResultSink, name, timed(name, hook))
    try:
        yield spent, longest, step_ends
    finally:
        for name, hook in hooks.items():
            setattr(ParquetResultSink, name, hook)


def stub_trial(config: dict[str, Any], reports: int) -> None:
    """Reports ``reports`` times at trainer iterations 100, 200, …: random values for every metric column."""
    from ray import tune

    rng = random.Random(config["lr"])
    for step in range(1, reports + 1):
        tune.report({"iteration": 100 * step, **{name: rng.random() for name in METRICS}})


def run_sweep(storage: str, trials: int, reports: int, concurrency: int) -> tuple[str, tuple[dict, dict, list], float]:
    """The sweep's folder, the seconds in each sink hook (summed, longest call, every on_step_end), and the wall time.

    Ray and the sink (which imports Ray) are imported here, after start_ray chose Ray's network settings.
    """
    from ray import tune

    spec, sink = sweep_and_sink(storage, trials, reports, concurrency)
    tuner = tune.Tuner(
        tune.with_resources(tune.with_parameters(stub_trial, reports=reports), {"cpu": 0.1}),
        param_space={"lr": tune.loguniform(1e-4, 1e-2)},
        tune_config=tune.TuneConfig(num_samples=trials, max_concurrent_trials=concurrency, reuse_actors=True),
        run_config=tune.RunConfig(name=spec.name, storage_path=storage, callbacks=[sink], verbose=0),
    )
    started = time.perf_counter()
    with timed_hooks() as spent:
        tuner.fit()
    return spec.folder, spent, time.perf_counter() - started


def sweep_and_sink(storage: str, trials: int, reports: int, concurrency: int) -> tuple[SweepSpec, Any]:
    """The simulated sweep's spec (its metadata written) and a real sink for it."""
    from advent_sweep.sweep.parquet_sink import ParquetResultSink, write_sweep_metadata

    spec = SweepSpec.model_validate({
        "name": "sink_scale", "storage": storage,
        "trainer": {"backbone": "resnet18", "iterations": 100 * reports, "eval_interval": 100},
        "space": {"lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}},
        "num_samples": trials, "max_concurrent": concurrency,
    })
    write_sweep_metadata(spec.folder, spec.name, spec.metric, spec.mode, spec.model_dump(mode="json"))
    sink = ParquetResultSink(spec.folder, spec.name, spec.metric, spec.mode, CITYSCAPES_CLASS_NAMES, spec.train_config, 100 * reports)
    return spec, sink


@dataclass
class StubTrial:
    """What the sink reads of a Tune trial."""

    trial_id: str
    config: dict[str, float]
    placement_group_factory: None = None
    checkpoint: None = None
    num_failures: int = 0
    error_file: None = None


def drive_stub_sweep(storage: str, trials: int, reports: int, concurrency: int) -> tuple[str, tuple[dict, dict, list], float]:
    """As :func:`run_sweep`, with the sink's callbacks called in Tune's order by this loop instead of Ray."""
    from advent_sweep.sweep import parquet_sink

    spec, sink = sweep_and_sink(storage, trials, reports, concurrency)
    clock = SimpleNamespace(now=0.0)
    parquet_sink.time = SimpleNamespace(monotonic=lambda: clock.now)  # the sink's flush interval, on this clock
    rng = random.Random(0)
    waiting = [StubTrial(f"{n:05d}", {"lr": 10 ** rng.uniform(-4, -2)}) for n in range(trials)]
    waiting.reverse()
    running: dict[str, tuple[StubTrial, int]] = {}
    done: list[StubTrial] = []
    started = time.perf_counter()
    with timed_hooks() as spent:
        sink.setup()
        saved_at = clock.now
        while waiting or running:
            while waiting and len(running) < concurrency:
                trial = waiting.pop()
                running[trial.trial_id] = (trial, 0)
                sink.on_trial_start(0, [], trial)
                sink.on_step_end(0, [])
            for trial_id, (trial, reported) in list(running.items()):
                reported += 1
                sink.on_trial_result(0, [], trial, {"iteration": 100 * reported, "time_total_s": reported * 1.0,
                                                     **{name: rng.random() for name in METRICS}})
                sink.on_step_end(0, [])
                clock.now += 1 / REPORTS_PER_S
                running[trial_id] = (trial, reported)
                if reported == reports:
                    del running[trial_id]
                    done.append(trial)
                    sink.on_trial_complete(0, [], trial)
                    sink.on_step_end(0, [])
            if clock.now - saved_at >= 10:  # Ray saves its experiment state every 10 s
                sink.get_state()
                saved_at = clock.now
        sink.on_experiment_end(done)
    parquet_sink.time = time
    return spec.folder, spent, time.perf_counter() - started


def duckdb_count(folder: str) -> tuple[int, float] | None:
    """Rows counted by DuckDB over reports/*.parquet and the seconds it took; None without duckdb."""
    try:
        import duckdb
    except ImportError:
        return None
    started = time.perf_counter()
    rows = duckdb.sql(f"SELECT count(*) FROM read_parquet('{folder}/reports/*.parquet')").fetchall()[0][0]
    return rows, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--reports", type=int, default=20, help="reports per trial")
    parser.add_argument("--concurrency", type=int, default=8, help="trials running at once")
    parser.add_argument("--stub", action="store_true", help="drive the sink's callbacks with stand-in trials, no Ray")
    parser.add_argument("--no-analyze", action="store_true", help="skip load_results and analyze (the sink's figures only)")
    args = parser.parse_args()

    started_ray = False if args.stub else start_ray(None)
    try:
        with tempfile.TemporaryDirectory(prefix="sink-scale-") as storage:
            sweep = drive_stub_sweep if args.stub else run_sweep
            folder, (spent, longest, step_ends), wall = sweep(storage, args.trials, args.reports, args.concurrency)
            sizes = [path.stat().st_size for path in Path(folder, "reports").iterdir() if path.is_file()]
            counted = duckdb_count(folder)
            started = time.perf_counter()
            results = load_results(folder)
            loaded = time.perf_counter() - started
            started = time.perf_counter()
            if not args.no_analyze:
                analyze(folder, Path(storage) / "analysis", progress=False)
            analysed = time.perf_counter() - started
    finally:
        shutdown_started_ray(started_ray)

    expected = args.trials * args.reports
    unique = not results.reports.duplicated(["trial_id", "iteration"]).any()
    driver = "stand-in trials, no Ray" if args.stub else "Ray"
    print(f"\n{args.trials} trials x {args.reports} reports ({expected} reports), {args.concurrency} at once ({driver}); "
          f"sweep wall time {wall:.0f} s, {sum(spent.values()):.0f} s of it in the sink; rows read back: {len(results.reports)}, unique on (trial, iteration): {unique}")
    print("sink time per hook: " + ", ".join(f"{name} {seconds:.2f} s" for name, seconds in sorted(spent.items(), key=lambda kv: -kv[1])))
    rows = [
        ("sink driver time per report", f"{sum(spent.values()) / expected * 1e3:.3f} ms", "<= 1 ms"),
        ("longest on_step_end", f"{longest.get('on_step_end', 0.0):.3f} s; {sum(s > 0.1 for s in step_ends)} of "
         f"{len(step_ends)} over 0.1 s; 99.9th percentile {sorted(step_ends)[int(0.999 * (len(step_ends) - 1))]:.3f} s",
         "<= 0.1 s"),
        ("longest get_state (waits for folds)", f"{longest.get('get_state', 0.0):.3f} s", ""),
        ("files under reports/", f"{len(sizes)} ({sum(sizes) / 1e6:.1f} MB), {len(sizes) / args.trials * 100:.1f} per 100 trials",
         "<= 1 per 100 trials"),
        ("DuckDB count(*)", f"{counted[0]} rows in {counted[1] * 1e3:.0f} ms" if counted else "skipped: duckdb is not installed", ""),
        ("load_results", f"{loaded:.2f} s", ""),
        ("analyze (load_results included)", "skipped (--no-analyze)" if args.no_analyze else f"{analysed:.1f} s", "< 60 s"),
    ]
    for name, value, target in rows:
        print(f"{name:<34}{value:<48}{target}")


if __name__ == "__main__":
    main()
