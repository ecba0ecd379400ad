"""How far a running sweep is: one console line every PROGRESS_EVERY_S, and ``<sweep>/status.json``.

Both give the trainer iterations done against the forecast (``forecast.py``), the resource-hours spent
(each trial's time so far × the resources it holds) and an ETA: the iterations left at this session's
rate. status.json is rewritten atomically at the same interval and at the end, so a person (or a script)
can read it while the sweep runs; the Parquet files stay untouched by it (their flushes stay cheap).
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone
from typing import Any

from ray.tune import Callback

from advent_sweep.storage import filesystem_and_path, write_atomically

PROGRESS_EVERY_S = 30.0
STATUS_FILE = "status.json"


def progress_status(trials: list, forecast_iterations: float, num_samples: int, cpu: float, gpu: float,
                    elapsed_s: float, done_at_start: int) -> dict[str, Any]:
    """The figures of a progress line from Tune's trials (their last results), for ``elapsed_s`` of this session."""
    done = sum(int(trial.last_result.get("iteration") or 0) for trial in trials)
    trial_seconds = sum(float(trial.last_result.get("time_total_s") or 0.0) for trial in trials)
    finished = sum(trial.status in ("TERMINATED", "ERROR") for trial in trials)
    rate = (done - done_at_start) / elapsed_s if elapsed_s > 0 else 0.0
    left = max(forecast_iterations - done, 0.0)
    return {
        "updated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "elapsed_s": round(elapsed_s, 1),
        "iterations_done": done,
        "iterations_forecast": round(forecast_iterations),
        "trials_started": len(trials),
        "trials_finished": finished,
        "num_samples": num_samples,
        "cpu_hours": trial_seconds * cpu / 3600,
        "gpu_hours": trial_seconds * gpu / 3600,
        "eta_s": round(left / rate) if rate > 0 else None,
    }


def progress_line(status: dict[str, Any]) -> str:
    share = status["iterations_done"] / status["iterations_forecast"] if status["iterations_forecast"] else 0.0
    eta = "unknown" if status["eta_s"] is None else str(timedelta(seconds=status["eta_s"]))
    return (f"[{timedelta(seconds=round(status['elapsed_s']))}] progress: {status['iterations_done']:,} of ~"
            f"{status['iterations_forecast']:,} forecast iterations ({share:.0%}), trials {status['trials_finished']} "
            f"finished / {status['trials_started']} started / {status['num_samples']}; "
            f"{status['gpu_hours']:.2f} GPU-hours, {status['cpu_hours']:.2f} CPU-hours spent; ETA {eta}")


class SweepProgress(Callback):
    """Prints a progress line and rewrites status.json every PROGRESS_EVERY_S, and once at the end."""

    def __init__(self, sweep_uri: str, forecast_iterations: float, num_samples: int, cpu: float, gpu: float) -> None:
        self.sweep_uri = sweep_uri.rstrip("/")
        self.forecast_iterations = forecast_iterations
        self.num_samples, self.cpu, self.gpu = num_samples, cpu, gpu

    def setup(self, **info: Any) -> None:
        self._started = self._shown = time.monotonic()
        self._done_at_start: int | None = None

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        if self._done_at_start is None:
            self._done_at_start = sum(int(trial.last_result.get("iteration") or 0) for trial in trials)
        if time.monotonic() - self._shown >= PROGRESS_EVERY_S:
            self._show(trials, finished=False)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self._show(trials, finished=True)

    def _show(self, trials: list, finished: bool) -> None:
        self._shown = time.monotonic()
        status = progress_status(trials, self.forecast_iterations, self.num_samples, self.cpu, self.gpu,
                                 self._shown - self._started, self._done_at_start or 0)
        status["finished"] = finished
        if finished:
            status["eta_s"] = 0
        print(progress_line(status), flush=True)
        filesystem, root = filesystem_and_path(self.sweep_uri)
        write_atomically(f"{root}/{STATUS_FILE}", json.dumps(status, indent=1).encode(), filesystem)
