"""Confirm what a sweep found: its top configurations retrained on fresh training seeds, as one Ray Tune run.

The best trial of a sweep is the maximum of noisy values, so its reported number is
optimistic (the winner's curse); the ADVENT authors' own reruns of one configuration span
43.3–44.1 mIoU. ``confirm`` takes the K best configurations under a rule, trains each on N
seeds it was never trained on, at the full budget, with FIFO scheduling and the sweep's
resources, into ``<sweep>/confirm/`` (a Parquet sink like the sweep's, resumable), and
summarises each configuration: the sweep's reported value, the confirmed mean ± std and 95%
interval over seeds, and the optimism (reported minus confirmed mean).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

import pyarrow.fs as pafs

from advent_sweep.advent.config import TrainConfig
from advent_sweep.analysis.best import select_best
from advent_sweep.analysis.confirmed import ConfirmSummary, summarise_confirm, write_confirm_summary
from advent_sweep.analysis.results import load_results
from advent_sweep.data import build_domain_data
from advent_sweep.errors import ConfigError
from advent_sweep.storage import filesystem_and_path, write_atomically
from advent_sweep.sweep.launch import TUNER_STATE, ray_file_loggers, start_ray, shutdown_started_ray
from advent_sweep.sweep.spec import SweepSpec

CONFIRM = "confirm"
PLAN = "plan.json"


@dataclass(frozen=True)
class ConfirmGrid:
    """The (configuration, seed) grid of a confirm run: a trial's params are indices into it."""

    configs: tuple[TrainConfig, ...]
    seeds: tuple[int, ...]

    def train_config(self, params: dict[str, Any]) -> TrainConfig:
        """The candidate's config with only its training seed changed."""
        return self.configs[params["candidate"]].model_copy(update={"seed": params["seed"]})


def plan_confirm(sweep: str, top: int, seeds: int, rule: str) -> dict[str, Any]:
    """The K best trials under ``rule`` (their configs and reported values) and N fresh seeds, as plain JSON.

    The seeds follow the largest seed the candidates were trained with, so none is reused; every
    configuration gets the same seeds, so configurations are compared on equal draws.
    """
    results = load_results(sweep)
    metric, mode = results.resolve(None, None)
    ranked = select_best(results, metric, mode, rule).head(top)
    listed = results.trials.set_index("trial_id")
    candidates = [{"trial_id": row["trial_id"], "reported": float(row[metric]), "iteration": int(row["iteration"]),
                   "config": json.loads(listed.loc[row["trial_id"], "config_json"])} for row in ranked.to_dict("records")]
    first = max(candidate["config"]["seed"] for candidate in candidates) + 1
    return {"sweep": next(iter(results.sweeps)), "metric": metric, "mode": mode, "rule": rule,
            "seeds": list(range(first, first + seeds)), "candidates": candidates}


def confirm(sweep: str, top: int = 3, seeds: int = 3, rule: str = "best", address: str | None = None,
            resume: bool = False, verbose: bool = False, quiet: bool = False) -> ConfirmSummary:
    """Run (or resume) the confirm run of the sweep folder ``sweep`` and write its summary; return the summary.

    ``verbose``: Ray's own console output instead of a line per trial event, as for ``launch``; ``quiet``: neither.
    """
    sweep = sweep.rstrip("/") if "://" in sweep else os.path.abspath(sweep)  # Ray's storage_path: a URI or absolute
    folder = f"{sweep}/{CONFIRM}"
    filesystem, root = filesystem_and_path(folder)
    has_state = filesystem.get_file_info(f"{root}/{TUNER_STATE}").type == pafs.FileType.File
    has_plan = filesystem.get_file_info(f"{root}/{PLAN}").type == pafs.FileType.File
    if has_plan and not resume:
        raise ConfigError(f"{folder}: a confirm run exists there; pass --resume to continue it, or remove the folder")
    if resume and not has_state:
        raise ConfigError(f"--resume: no confirm run to resume at {folder} (no {TUNER_STATE})")
    spec = _sweep_spec(sweep)
    if resume:
        with filesystem.open_input_stream(f"{root}/{PLAN}") as stream:
            plan = json.loads(stream.read())
    else:
        plan = plan_confirm(sweep, top, seeds, rule)
    grid = ConfirmGrid(tuple(TrainConfig.model_validate(c["config"]) for c in plan["candidates"]), tuple(plan["seeds"]))
    data = build_domain_data(spec.data, cache_dir=spec.cache_dir)
    if not resume:
        filesystem.create_dir(root, recursive=True)
        write_atomically(f"{root}/{PLAN}", json.dumps(plan, indent=1).encode(), filesystem)
    started = start_ray(address, verbose)
    try:
        from advent_sweep.sweep.console import tune_console

        with tune_console(verbose):
            _tuner(spec, plan, grid, data, sweep, resume, verbose, quiet).fit()
    finally:
        shutdown_started_ray(started)
    summary = summarise_confirm(load_results(folder), plan)
    write_confirm_summary(summary, folder)
    return summary


def _sweep_spec(sweep: str) -> SweepSpec:
    """The spec the sweep ran with (its sweep.json), storing beside the sweep where it lies now."""
    filesystem, root = filesystem_and_path(sweep)
    try:
        with filesystem.open_input_stream(f"{root}/sweep.json") as stream:
            saved = json.loads(stream.read())["spec"]
    except (OSError, ValueError, KeyError) as error:
        raise ConfigError(f"{sweep}/sweep.json: cannot be read ({error}); give a sweep folder") from None
    spec = SweepSpec.model_validate(saved)
    return spec.with_storage(sweep.rsplit("/", 1)[0] if "/" in sweep else ".")


def _tuner(spec: SweepSpec, plan: dict[str, Any], grid: ConfirmGrid, data: Any, sweep: str, resume: bool,
           verbose: bool, quiet: bool) -> Any:
    from ray import tune
    from ray.tune.schedulers import FIFOScheduler

    from advent_sweep.sweep.checkpoints import KEPT_WHILE_RUNNING, CheckpointRetention
    from advent_sweep.sweep.console import ConsoleProgress
    from advent_sweep.sweep.parquet_sink import ParquetResultSink, write_sweep_metadata
    from advent_sweep.sweep.trainable import train_advent_trial

    file_loggers = ray_file_loggers()
    trainable = tune.with_resources(
        tune.with_parameters(train_advent_trial, train_config=grid.train_config, data=data, cache_dir=spec.cache_dir,
                             metric=plan["metric"], mode=plan["mode"]),
        {"cpu": spec.resources.cpu, "gpu": spec.resources.gpu},
    )
    if resume:
        return tune.Tuner.restore(f"{sweep}/{CONFIRM}", trainable, resume_unfinished=True, resume_errored=True)
    name = f"{plan['sweep']}/{CONFIRM}"
    write_sweep_metadata(f"{sweep}/{CONFIRM}", name, plan["metric"], plan["mode"], spec.model_dump(mode="json"))
    max_t = spec.base_config.iterations
    sink = ParquetResultSink(f"{sweep}/{CONFIRM}", name, plan["metric"], plan["mode"], data.class_names, grid.train_config, max_t)
    callbacks = [CheckpointRetention(max_t, keep_stopped=True), sink, *file_loggers]  # FIFO stops no trial: each keeps its last checkpoint
    return tune.Tuner(
        trainable,
        param_space={"candidate": tune.grid_search(list(range(len(grid.configs)))), "seed": tune.grid_search(list(grid.seeds))},
        tune_config=tune.TuneConfig(scheduler=FIFOScheduler(), max_concurrent_trials=spec.max_concurrent, reuse_actors=True),
        run_config=tune.RunConfig(
            name=CONFIRM, storage_path=sweep,
            callbacks=callbacks if verbose or quiet else [*callbacks, ConsoleProgress(plan["metric"], max_t)],
            failure_config=tune.FailureConfig(max_failures=spec.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=KEPT_WHILE_RUNNING),
            verbose=None if verbose else 0,
        ),
    )
