"""Launch or resume a sweep: validated spec → data → Ray → Tuner (Optuna + ASHA) → Parquet.

Everything a user can get wrong (the spec, the data folders, an existing or missing sweep
folder) is checked before Ray starts, so bad input leaves nothing behind. Without an
address the sweep runs on an embedded single-node Ray bound to 127.0.0.1: a laptop sweep
opens no port to the network.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

import pyarrow.fs as pafs

from advent_sweep.advent.warmup import INHERITED, load_or_train_warmup
from advent_sweep.data import DomainData, build_domain_data
from advent_sweep.data.labels import scores_miou_13
from advent_sweep.errors import ConfigError
from advent_sweep.selection import VALIDATORS
from advent_sweep.storage import filesystem_and_path
from advent_sweep.sweep.spec import SweepSpec
from advent_sweep.sweep.study_journal import JOURNAL_FILE

# Read by Ray once, when ``ray`` is first imported: "0" keeps an embedded Ray on 127.0.0.1.
LOOPBACK_ONLY = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
# What Tuner.restore needs (Ray's tuner.pkl), and what the sink, the searcher and launch write into a sweep folder.
TUNER_STATE = "tuner.pkl"
SWEEP_FILES = (TUNER_STATE, "sweep.json", "trials.parquet", "reports", JOURNAL_FILE)


@dataclass(frozen=True)
class SweepOutcome:
    """Where the results are and what the best trial reached."""

    folder: str
    trials: int
    statuses: dict[str, int]
    best_trial: str | None
    best_value: float | None
    best_iteration: int | None
    best_params: dict[str, Any]

    @property
    def interrupted(self) -> bool:
        """Trials left running: the sweep was stopped (Ctrl-C, SIGUSR1) and can be resumed.

        Trials marked ``lost`` (seen starting before a driver crash, unknown to Ray's saved
        state) do not count: a resume cannot bring them back.
        """
        return self.statuses.get("running", 0) > 0


def check_sweep_folder(spec: SweepSpec, resume: bool) -> None:
    """A new sweep must not mix into another's folder; a resumed one must exist and keep its spec.

    Read with pyarrow, not Ray: importing Ray here would fix its network settings before
    :func:`launch` chooses them.
    """
    filesystem, root = filesystem_and_path(spec.folder)
    found = [name for name in SWEEP_FILES if filesystem.get_file_info(f"{root}/{name}").type != pafs.FileType.NotFound]
    if not resume and found:
        raise ConfigError(
            f"{spec.folder}: a sweep named {spec.name!r} exists there ({', '.join(found)}); "
            "pass --resume to continue it, or change name/--storage"
        )
    if resume and TUNER_STATE not in found:
        raise ConfigError(f"--resume: no sweep to resume at {spec.folder} (no {TUNER_STATE}; check name and --storage)")
    if resume:
        _check_same_spec(spec, filesystem, f"{root}/sweep.json")


def _check_same_spec(spec: SweepSpec, filesystem: pafs.FileSystem, path: str) -> None:
    """Ray restores the searcher, scheduler and sink of the saved spec: a resumed sweep must use that spec."""
    try:
        with filesystem.open_input_stream(path) as stream:
            saved = json.loads(stream.read())["spec"]
        saved = json.loads(json.dumps(SweepSpec.model_validate(saved).model_dump(mode="json")))  # settings added since: defaults
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ConfigError(f"--resume: {spec.folder}/sweep.json cannot be read ({error}), so the spec to resume is unknown") from None
    current = json.loads(json.dumps(spec.model_dump(mode="json")))
    differ = [field for field in _changed_fields(saved, current) if field != "storage"]
    if differ:
        raise ConfigError(
            f"--resume: the space.yaml differs from the one sweep {spec.name!r} was started with, in: {', '.join(differ)}; "
            "a resumed sweep continues with its saved searcher and scheduler, so undo these changes, "
            "or start a new sweep under another name"
        )


def _changed_fields(saved: Any, current: Any, prefix: str = "") -> list[str]:
    """The dotted paths at which two JSON values differ."""
    if isinstance(saved, dict) and isinstance(current, dict):
        return [
            field
            for key in sorted(set(saved) | set(current))
            for field in _changed_fields(saved.get(key), current.get(key), f"{prefix}{key}.")
        ]
    return [] if saved == current else [prefix.rstrip(".") or "(whole spec)"]


def reported_metrics(data: DomainData) -> list[str]:
    """The metrics a trial on ``data`` reports, that a sweep may optimise: its class names decide the iou.* ones."""
    names = ["target_miou", *(name for name in VALIDATORS if name != "source_val_miou" or data.source_val is not None)]
    if scores_miou_13(data.class_names):
        names.append("target_miou_13")  # SYNTHIA → Cityscapes: mIoU* on 13 of the 16 classes
    return names + [f"iou.{name}" for name in data.class_names]


def check_metric(spec: SweepSpec, data: DomainData) -> None:
    """The spec's metric must be one the trials on ``data`` report (its class names decide the iou.* ones)."""
    allowed = reported_metrics(data)
    if spec.metric not in allowed:
        raise ConfigError(
            f"metric: {spec.metric!r} is not reported by trials on {spec.data.source} → {spec.data.target} data; "
            f"allowed: {', '.join(allowed)}"
        )


def prepare(spec: SweepSpec, resume: bool) -> DomainData:
    """Check the sweep folder, build (validate) the data and check the metric against it, before Ray starts."""
    check_sweep_folder(spec, resume)
    data = build_domain_data(spec.data, cache_dir=spec.cache_dir)
    check_metric(spec, data)
    return data


def prepare_warmup(spec: SweepSpec, data: DomainData) -> None:
    """Train (or read back) the source warm-up that every trial starts from, once, before Ray starts.

    When the space searches a setting the warm-up inherits (the backbone, say), trials need
    different warm-ups: each trains and caches its own on first use.
    """
    config = spec.train_config({})
    if config.source_warmup is None or set(spec.space) & set(INHERITED):
        return
    print(f"source warm-up: {config.source_warmup.iterations} source-only iterations, cached in {spec.cache_dir}", flush=True)
    record = load_or_train_warmup(config, data, spec.cache_dir)
    done = "read back" if record["reused"] else f"trained in {record['seconds']:.0f} s"
    print(f"source warm-up: {done}", flush=True)


def start_ray(address: str | None, verbose: bool = False) -> bool:
    """Connect to ``address`` (or RAY_ADDRESS), else start a loopback-only local Ray; True if we started it.

    Worker logs (a "Checkpoint successfully created" line per report, among others) reach the console only
    when ``verbose``; a failed trial's traceback is in its error file and the driver's log either way.
    """
    address = address or os.environ.get("RAY_ADDRESS")
    if address is None:
        os.environ.setdefault(LOOPBACK_ONLY, "0")
    import ray

    if ray.is_initialized():
        return False
    if address is None:
        ray.init(address="local", include_dashboard=False, configure_logging=False, log_to_driver=verbose)
    else:
        ray.init(address=address, log_to_driver=verbose)
    return True


def shutdown_started_ray(started: bool) -> None:
    """Shut down the Ray that ``start_ray`` started; one we connected to keeps running."""
    if started:
        import ray

        ray.shutdown()


def _tuner(spec: SweepSpec, data: DomainData, resume: bool, verbose: bool, reuse_actors: bool = True) -> Any:
    from ray import tune

    from advent_sweep.sweep.checkpoints import KEPT_WHILE_RUNNING, CheckpointRetention
    from advent_sweep.sweep.console import ConsoleProgress
    from advent_sweep.sweep.eta import SweepProgress
    from advent_sweep.sweep.forecast import expected_iterations, expected_rungs
    from advent_sweep.sweep.parquet_sink import ParquetResultSink, write_sweep_metadata
    from advent_sweep.sweep.searchers import build_scheduler, build_search_alg
    from advent_sweep.sweep.trainable import train_advent_trial

    trainable = tune.with_resources(
        tune.with_parameters(train_advent_trial, train_config=spec.train_config, data=data, cache_dir=spec.cache_dir,
                             metric=spec.metric),
        {"cpu": spec.resources.cpu, "gpu": spec.resources.gpu},
    )
    if resume:
        return tune.Tuner.restore(spec.folder, trainable, resume_unfinished=True, resume_errored=True)
    write_sweep_metadata(spec.folder, spec.name, spec.metric, spec.mode, spec.model_dump(mode="json"))
    max_t = spec.scheduler.max_t or spec.base_config.iterations
    sink = ParquetResultSink(spec.folder, spec.name, spec.metric, spec.mode, data.class_names, spec.train_config, max_t)
    # Retention before the sink: the sink's row names the checkpoint that is left.
    progress = SweepProgress(spec.folder, expected_iterations(expected_rungs(spec)), spec.num_samples,
                             spec.resources.cpu, spec.resources.gpu)
    callbacks = [CheckpointRetention(max_t, spec.checkpoints.keep_stopped), sink, progress]
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=build_search_alg(spec), scheduler=build_scheduler(spec), num_samples=spec.num_samples,
            reuse_actors=reuse_actors,  # every trial holds the same resources; the trainable leaves no process state behind
        ),
        run_config=tune.RunConfig(
            name=spec.name,
            storage_path=spec.storage,
            failure_config=tune.FailureConfig(max_failures=spec.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=KEPT_WHILE_RUNNING),
            callbacks=callbacks if verbose else [*callbacks, ConsoleProgress(spec.metric, max_t)],
            verbose=None if verbose else 0,
        ),
    )


def launch(spec: SweepSpec, address: str | None = None, resume: bool = False, data: DomainData | None = None,
           verbose: bool = False, reuse_actors: bool = True) -> SweepOutcome:
    """Run (or resume) the sweep to the end and summarise it.

    ``data`` lets a notebook sweep its own dataset objects; by default they are built from ``spec.data``.
    ``reuse_actors=False`` starts a new worker per trial (what benchmarks/sweep_efficiency.py compares against).
    The console gets a line per trial event; ``verbose`` gives Ray's own output (status tables, worker logs)
    instead. A resumed sweep keeps the Tune output it was launched with (Ray restores its RunConfig).
    """
    if data is None:
        data = prepare(spec, resume)
    else:
        check_sweep_folder(spec, resume)
        check_metric(spec, data)
    prepare_warmup(spec, data)
    started_ray = start_ray(address, verbose)
    try:
        from advent_sweep.sweep.console import tune_console

        with tune_console(verbose):
            _tuner(spec, data, resume, verbose, reuse_actors).fit()
    finally:
        shutdown_started_ray(started_ray)
    return _outcome(spec)


def _outcome(spec: SweepSpec) -> SweepOutcome:
    """Summarise from the Parquet the sink wrote: the same numbers the analysis will show."""
    import pyarrow.parquet as pq

    filesystem, root = filesystem_and_path(spec.folder)
    trials = pq.read_table(f"{root}/trials.parquet", filesystem=filesystem).to_pylist()
    statuses: dict[str, int] = {}
    for trial in trials:
        statuses[trial["status"]] = statuses.get(trial["status"], 0) + 1
    scored = [t for t in trials if t["best_value"] is not None]
    pick = max if spec.mode == "max" else min
    best = pick(scored, key=lambda t: t["best_value"]) if scored else None
    values = {} if best is None else {name: best[f"config.{name}"] for name in spec.space}
    params = {name: value for name, value in values.items() if spec.is_active(name, values)}
    return SweepOutcome(
        folder=spec.folder,
        trials=len(trials),
        statuses=statuses,
        best_trial=best["trial_id"] if best else None,
        best_value=best["best_value"] if best else None,
        best_iteration=best["best_iteration"] if best else None,
        best_params=params,
    )
