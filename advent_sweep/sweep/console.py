"""One console line per trial event that matters: started, reported, ended (completed, stopped, diverged, failed).

A sweep runs Ray Tune silent (``verbose=0`` under :func:`tune_console`) with worker logs kept off the
driver (``ray.init(log_to_driver=False)``), so this callback is all it prints until the CLI's summary:
no status tables, no line per saved checkpoint. ``--verbose`` gives Ray's own output back instead.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from ray.tune import Callback

from advent_sweep.sweep.checkpoints import stopped_early
from advent_sweep.sweep.parquet_sink import trial_error_line

NEW_OUTPUT = "RAY_AIR_NEW_OUTPUT"  # read by Tune when a run starts


@contextmanager
def tune_console(verbose: bool) -> Iterator[None]:
    """Unless ``verbose``, Tune's legacy console engine: at verbose=0 it prints nothing, while the new one
    (Ray's default) still prints an experiment table and the result paths."""
    saved = os.environ.get(NEW_OUTPUT)
    if not verbose:
        os.environ[NEW_OUTPUT] = "0"
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(NEW_OUTPUT, None)
        else:
            os.environ[NEW_OUTPUT] = saved


def _value(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


class ConsoleProgress(Callback):
    """Prints ``[elapsed] trial <id> ...`` lines to stdout, with the sweep's metric and the trainer iteration."""

    def __init__(self, metric: str, max_t: int) -> None:
        self.metric = metric
        self.max_t = max_t
        self._started = time.monotonic()

    def setup(self, **info: Any) -> None:
        self._started = time.monotonic()

    def _print(self, trial: Any, text: str) -> None:
        elapsed = timedelta(seconds=round(time.monotonic() - self._started))
        print(f"[{elapsed}] trial {trial.trial_id} {text}", flush=True)

    def _reached(self, result: dict) -> str:
        return f"iteration {result.get('iteration', 0)}: {self.metric} {_value(result.get(self.metric))}"

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        params = ", ".join(f"{name}={_value(value)}" for name, value in trial.config.items())
        resumed = trial.last_result.get("iteration")
        self._print(trial, (f"resumed at iteration {resumed}: " if resumed else "started: ") + params)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        self._print(trial, f"diverged at iteration {result['iteration']}" if result.get("diverged") else self._reached(result))

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        result = trial.last_result
        if result.get("diverged"):
            self._print(trial, f"ended: diverged at iteration {result['iteration']}")
        elif stopped_early(result, self.max_t):
            self._print(trial, f"stopped by the scheduler at {self._reached(result)}")
        else:
            self._print(trial, f"completed at {self._reached(result)}")

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        limit = f" of {trial.max_failures}" if trial.max_failures >= 0 else ""
        self._print(trial, f"failed ({trial_error_line(trial) or 'no error message'}); retry {trial.num_failures}{limit}")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._print(trial, f"failed for good ({trial_error_line(trial) or 'no error message'}); traceback in {trial.error_file}")

