"""Sweep efficiency: ASHA + TPE against random search without early stopping, same trial count; worker reuse on/off.

Runs three sweeps of one space back to back on one embedded Ray (ASHA + TPE, random without
stopping, and ASHA + TPE again with a new worker process per trial) and prints, side by side,
the trainer iterations each spent, the best target mIoU each found and their ratios; then
the share of wall time not spent inside trials (Ray scheduling, actor start-up, the Parquet
sink): 1 − (Σ trial time / concurrency) / sweep wall time, and the part of it spent in the
sink's callback hooks on the driver. That share is split in two: the tail (slots left idle
after the last trial started, because no trial was left to start: ASHA's stops make it long)
and the rest, the time a slot waited although a trial could have run (start-up, scheduling,
the sink, the sweep's start and end). A trial runs from its first report's driver timestamp
less its ``wall_time_s`` to its last report's. A source warm-up in the space is trained once before
the sweeps, which then read it back.

    python benchmarks/sweep_efficiency.py                       # the quickstart space
    python benchmarks/sweep_efficiency.py --space search_spaces/quickstart.yaml --samples 8
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import pandas as pd

from advent_sweep.data import build_domain_data
from advent_sweep.sweep.launch import launch, prepare_warmup
from advent_sweep.sweep.spec import SweepSpec
from sink_scale import timed_hooks  # benchmarks/ is on sys.path when a script here runs


def tail_idle_seconds(reports: pd.DataFrame, slots: int) -> float:
    """Slot-seconds idle between the last trial's start and the last trial's end: no trial was left to start."""
    seen = (reports.timestamp - reports.timestamp.min()).dt.total_seconds()
    spans = reports.assign(seen=seen).groupby("trial_id").apply(
        lambda t: pd.Series({"start": (t.seen - t.wall_time_s).min(), "end": t.seen.max()}), include_groups=False)
    last_start, last_end = spans.start.max(), spans.end.max()
    busy = sum(max(0.0, min(end, last_end) - max(start, last_start)) for start, end in zip(spans.start, spans.end))
    return slots * (last_end - last_start) - busy


def run(spec: SweepSpec, reuse_actors: bool = True) -> dict[str, float]:
    started = time.perf_counter()
    with timed_hooks() as sink_seconds:
        outcome = launch(spec, reuse_actors=reuse_actors)
    wall = time.perf_counter() - started
    reports = pd.read_parquet(f"{outcome.folder}/reports")
    trials = pd.read_parquet(f"{outcome.folder}/trials.parquet")
    trial_seconds = reports.groupby("trial_id").wall_time_s.max().sum()
    slots = spec.max_concurrent
    return {
        "iterations": float(trials.iterations.sum()),
        "best_miou": float(trials.best_value.max()),
        "wall_s": wall,
        "overhead": 1 - (trial_seconds / slots) / wall,
        "tail": tail_idle_seconds(reports, slots) / (slots * wall),
        "sink": sum(sink_seconds.values()) / wall,
        "stopped": float((trials.status == "stopped").sum()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="search_spaces/quickstart.yaml")
    parser.add_argument("--samples", type=int, help="trials per sweep (default: the space's num_samples)")
    args = parser.parse_args()

    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    import ray

    base = SweepSpec.from_yaml(args.space)
    samples = args.samples or base.num_samples
    ray.init(address="local", include_dashboard=False, configure_logging=False, log_to_driver=False)
    try:
        with tempfile.TemporaryDirectory(prefix="sweep-efficiency-") as storage:
            values = base.model_dump(mode="json") | {"storage": storage, "num_samples": samples}
            asha = SweepSpec.model_validate(values | {"name": "asha_tpe"})
            plain = SweepSpec.model_validate(values | {
                "name": "random_fifo",
                "scheduler": {"type": "fifo"},
                "searcher": {"sampler": "random", "seed": base.searcher.seed,
                             "points_to_evaluate": [dict(p) for p in base.searcher.points_to_evaluate]},
            })
            fresh = SweepSpec.model_validate(values | {"name": "asha_tpe_fresh_workers"})
            prepare_warmup(asha, build_domain_data(asha.data))  # trained once, outside the timed sweeps
            results = {"ASHA + TPE": run(asha), "random, no stopping": run(plain),
                       "ASHA + TPE, no reuse": run(fresh, reuse_actors=False)}
    finally:
        ray.shutdown()

    a, b = results["ASHA + TPE"], results["random, no stopping"]
    print(f"\n{samples} trials each, space {args.space}")
    print(f"{'':<22}{'iterations':>12}{'best mIoU':>11}{'stopped':>9}{'wall s':>9}{'overhead':>10}{'of it tail':>12}{'of it sink':>12}")
    for name, r in results.items():
        print(f"{name:<22}{r['iterations']:>12.0f}{r['best_miou']:>11.2f}{r['stopped']:>9.0f}{r['wall_s']:>9.0f}"
              f"{r['overhead']:>10.1%}{r['tail']:>12.1%}{r['sink']:>12.2%}")
    print(f"ASHA+TPE / random: iterations {a['iterations'] / b['iterations']:.2f}x, "
          f"best mIoU {a['best_miou'] / b['best_miou']:.2f}x, wall time {a['wall_s'] / b['wall_s']:.2f}x")
    c = results["ASHA + TPE, no reuse"]
    print(f"time outside trials, ASHA+TPE with worker reuse {a['overhead']:.1%} against {c['overhead']:.1%} with a new worker "
          f"per trial; wall time {a['wall_s'] / c['wall_s']:.2f}x")
    print(f"less the tail (no trial left to start): {a['overhead'] - a['tail']:.1%} with reuse, "
          f"{c['overhead'] - c['tail']:.1%} without, {b['overhead'] - b['tail']:.1%} random FIFO")


if __name__ == "__main__":
    main()
