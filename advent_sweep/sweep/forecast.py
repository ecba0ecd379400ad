"""What a sweep will cost before it starts: trainer iterations under its scheduler, wall time, resource-hours.

The arithmetic lives here once (docs/cost.md states it):

- FIFO: every trial trains to the end, ``num_samples × iterations``.
- ASHA (Ray's asynchronous successive halving): a trial reaching a rung continues iff its value is at least
  the ``(1 − 1/η)`` percentile (linear interpolation) of the values recorded at that rung so far, its own
  included. With values arriving in random order, the k-th arrival ranks in the top ``k − ⌈(1 − 1/η)(k − 1)⌉``
  of k with probability that count over k; summed over the arrivals, that is how many continue
  (for η = 3: ``Σ_k ⌈k/3⌉ / k``, more than the synchronous k/3, as early arrivals meet few rivals).
  A rung takes effect at the first report at or after it (reports come every eval_interval).
- Wall time: the iterations spread over ``max_concurrent`` busy slots, never less than one full trial.
- Resource-hours: trial seconds × the resources each trial holds (CPU-hours, GPU-hours).

Seconds per iteration come, in order, from ``--seconds-per-iteration``, a previous sweep in the same storage
with the same trainer and data settings (its trials.parquet: wall time over iterations), or the file that
``advent-sweep probe`` leaves in the storage's cache.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass

import pyarrow.fs as pafs
import pyarrow.parquet as pq

from advent_sweep.errors import ConfigError
from advent_sweep.storage import filesystem_and_path
from advent_sweep.sweep.spec import SweepSpec


def continuing(arrivals: float, reduction_factor: float) -> float:
    """Expected trials that continue past an ASHA rung that ``arrivals`` trials reach (Ray's cutoff rule).

    Fractional ``arrivals`` (an expected count from the rung below) interpolate linearly between integers.
    """
    quantile = 1 - 1 / reduction_factor

    def summed(count: int) -> float:
        return sum((k - math.ceil(quantile * (k - 1) - 1e-9)) / k for k in range(1, count + 1))

    whole = math.floor(arrivals)
    return summed(whole) + (arrivals - whole) * (summed(whole + 1) - summed(whole))


def report_iteration(iteration: float, eval_interval: int, iterations: int) -> int:
    """The trainer iteration of the first report at or after ``iteration`` (a trial reports every
    eval_interval and at its last iteration)."""
    return min(math.ceil(iteration / eval_interval) * eval_interval, iterations)


def expected_rungs(spec: SweepSpec) -> list[tuple[int, float]]:
    """(iteration, expected trials that train to it) for each ASHA rung and the end; FIFO: the end only."""
    base = spec.base_config
    end = spec.scheduler.max_t if spec.scheduler.type == "asha" else base.iterations
    reached: list[tuple[int, float]] = []
    count = float(spec.num_samples)
    for rung in spec.scheduler.rungs():
        stop = report_iteration(rung, base.eval_interval, end)
        if stop >= end:
            break
        reached.append((stop, count))
        count = continuing(count, spec.scheduler.reduction_factor)
    reached.append((end, count))
    return reached


def expected_iterations(rungs: list[tuple[int, float]]) -> float:
    """Trainer iterations summed over trials: those that stop at a rung trained to it, the rest to the end."""
    total = 0.0
    for (iteration, count), (_, going_on) in zip(rungs, [*rungs[1:], (0, 0.0)]):
        total += (count - going_on) * iteration
    return total


@dataclass(frozen=True)
class Forecast:
    """A sweep's expected cost; ``seconds_per_iteration`` None when no timing is known."""

    scheduler: str
    rungs: list[tuple[int, float]]
    iterations: float
    max_concurrent: int
    cpu_per_trial: float
    gpu_per_trial: float
    seconds_per_iteration: float | None
    timing_source: str

    @property
    def trial_seconds(self) -> float | None:
        """Seconds of training summed over trials."""
        return None if self.seconds_per_iteration is None else self.iterations * self.seconds_per_iteration

    @property
    def wall_seconds(self) -> float | None:
        """The iterations over busy slots, at least one trial that trains to the end."""
        if self.seconds_per_iteration is None:
            return None
        return max(self.iterations / self.max_concurrent, self.rungs[-1][0]) * self.seconds_per_iteration

    def resource_hours(self, per_trial: float) -> float | None:
        return None if self.trial_seconds is None else self.trial_seconds * per_trial / 3600

    def describe(self) -> str:
        if self.scheduler == "asha":
            reach = ", ".join(f"{count:.1f} to {iteration}" for iteration, count in self.rungs)
            lines = [f"forecast: {self.iterations:,.0f} trainer iterations (ASHA, expected trials training to each iteration: {reach})"]
        else:
            lines = [f"forecast: {self.iterations:,.0f} trainer iterations (FIFO: {self.rungs[-1][1]:.0f} trials × {self.rungs[-1][0]})"]
        if self.seconds_per_iteration is None:
            lines.append(f"  time and resource-hours: unknown; {self.timing_source}")
            return "\n".join(lines)
        gpu = self.resource_hours(self.gpu_per_trial)
        lines.append(
            f"  at {self.seconds_per_iteration:.3g} s per iteration ({self.timing_source}): "
            f"wall time {_duration(self.wall_seconds)} at {self.max_concurrent} at a time; "
            f"{gpu:,.2f} GPU-hours, {self.resource_hours(self.cpu_per_trial):,.2f} CPU-hours"
        )
        lines.append("  assumes: every trial costs that much per iteration (evaluation included), slots never idle, "
                     "no trial fails or diverges, and under ASHA values arrive at a rung in random order")
        return "\n".join(lines)


def _duration(seconds: float) -> str:
    hours, rest = divmod(round(seconds), 3600)
    return f"{hours} h {rest // 60:02d} min" if hours else f"{rest // 60} min {rest % 60:02d} s"


def forecast(spec: SweepSpec, seconds_per_iteration: float | None = None) -> Forecast:
    """The spec's forecast, timed by ``seconds_per_iteration``, else a previous sweep's Parquet, else a probe file."""
    if seconds_per_iteration is not None and not seconds_per_iteration > 0:
        raise ConfigError(f"seconds_per_iteration: {seconds_per_iteration} is not allowed; allowed: a number > 0")
    if seconds_per_iteration is not None:
        timing, source = seconds_per_iteration, "given by --seconds-per-iteration"
    else:
        timing, source = previous_sweep_timing(spec) or probe_timing(spec) or (
            None, "pass --seconds-per-iteration, or time the space's costliest configuration with: advent-sweep probe SPACE")
    rungs = expected_rungs(spec)
    return Forecast(spec.scheduler.type, rungs, expected_iterations(rungs), spec.max_concurrent,
                    spec.resources.cpu, spec.resources.gpu, timing, source)


def previous_sweep_timing(spec: SweepSpec) -> tuple[float, str] | None:
    """Seconds per iteration of the latest sweep in the same storage with the same trainer and data settings."""
    filesystem, root = filesystem_and_path(spec.storage.rstrip("/"))
    try:
        folders = filesystem.get_file_info(pafs.FileSelector(root))
    except (FileNotFoundError, OSError):
        return None
    dumped = spec.model_dump(mode="json")
    wanted = {"trainer": dumped["trainer"], "data": dumped["data"]}
    found: list[tuple[float, str, float]] = []
    for folder in folders:
        if folder.type != pafs.FileType.Directory:
            continue
        try:
            with filesystem.open_input_stream(f"{folder.path}/sweep.json") as stream:
                saved = SweepSpec.model_validate(json.loads(stream.read())["spec"]).model_dump(mode="json")
            trials = pq.read_table(f"{folder.path}/trials.parquet", columns=["wall_time_s", "iterations"], filesystem=filesystem)
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if {"trainer": saved.get("trainer"), "data": saved.get("data")} != wanted:
            continue
        rows = [row for row in trials.to_pylist() if row["iterations"] and row["wall_time_s"]]
        iterations = sum(row["iterations"] for row in rows)
        if iterations:
            modified = filesystem.get_file_info(f"{folder.path}/trials.parquet").mtime_ns or 0
            found.append((modified, folder.base_name, sum(row["wall_time_s"] for row in rows) / iterations))
    if not found:
        return None
    _, name, timing = max(found)
    return timing, f"measured by sweep {name!r}, same trainer and data settings"


def probe_file(spec: SweepSpec, params: dict, device: str) -> str:
    """Where ``advent-sweep probe`` keeps its timing: the storage's cache, keyed by the probed config and device."""
    config = spec.train_config(params).model_dump_json()
    key = hashlib.sha256(f"{config}|{device}".encode()).hexdigest()[:16]
    return f"{spec.cache_dir}/probe-{key}.json"


def probe_timing(spec: SweepSpec) -> tuple[float, str] | None:
    """The timing a probe of this space's costliest configuration left in the cache, on the device the trials use."""
    from advent_sweep.sweep.probe import costliest_params, probe_device

    params = costliest_params(spec)
    filesystem, path = filesystem_and_path(probe_file(spec, params, probe_device(spec)))
    try:
        with filesystem.open_input_stream(path) as stream:
            record = json.loads(stream.read())
    except (OSError, ValueError):
        return None
    return record["seconds_per_iteration"], f"probed on {record['device']}, {record['what']}"
