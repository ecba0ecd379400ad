"""Launch or resume a sweep: validated spec → data → Ray → Tuner (Optuna + ASHA) → Parquet.

Everything a user can get wrong (the spec, the data folders, an existing or missing sweep
folder) is checked before Ray starts, so bad input leaves nothing behind. Without an
address the sweep runs on an embedded single-node Ray bound to 127.0.0.1: a laptop sweep
opens no port to the network.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from advent_sweep.data import DomainData, build_domain_data
from advent_sweep.errors import ConfigError
from advent_sweep.storage import filesystem_and_path
from advent_sweep.sweep.spec import SweepSpec

LOOPBACK_ONLY = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


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
        """Trials left running: the sweep was stopped (Ctrl-C, SIGUSR1) and can be resumed."""
        return self.statuses.get("running", 0) > 0


def _cache_dir(spec: SweepSpec) -> str:
    """p_s is cached beside the sweeps, in the storage they share (a folder or a URI)."""
    return f"{spec.storage.rstrip('/')}/.cache"


def check_sweep_folder(spec: SweepSpec, resume: bool) -> None:
    """A new sweep must not overwrite another; a resumed one must exist."""
    from ray import tune

    exists = tune.Tuner.can_restore(spec.folder)
    if resume and not exists:
        raise ConfigError(f"--resume: no sweep to resume at {spec.folder} (check name and --storage)")
    if not resume and exists:
        raise ConfigError(f"{spec.folder}: a sweep named {spec.name!r} exists there; pass --resume to continue it, or change name/--storage")


def prepare(spec: SweepSpec, resume: bool) -> DomainData:
    """Check the sweep folder and build (validate) the data, before Ray starts."""
    check_sweep_folder(spec, resume)
    return build_domain_data(spec.data, cache_dir=_cache_dir(spec))


def _start_ray(address: str | None) -> bool:
    """Connect to ``address`` (or RAY_ADDRESS), else start a loopback-only local Ray; True if we started it."""
    address = address or os.environ.get("RAY_ADDRESS")
    if address is None:
        os.environ.setdefault(LOOPBACK_ONLY, "0")
    import ray

    if ray.is_initialized():
        return False
    if address is None:
        ray.init(address="local", include_dashboard=False, configure_logging=False)
    else:
        ray.init(address=address)
    return True


def _tuner(spec: SweepSpec, data: DomainData, resume: bool) -> Any:
    from ray import tune

    from advent_sweep.sweep.parquet_sink import ParquetResultSink, write_sweep_metadata
    from advent_sweep.sweep.searchers import build_scheduler, build_search_alg
    from advent_sweep.sweep.trainable import train_advent_trial

    trainable = tune.with_resources(
        tune.with_parameters(train_advent_trial, spec=spec, data=data),
        {"cpu": spec.resources.cpu, "gpu": spec.resources.gpu},
    )
    if resume:
        return tune.Tuner.restore(spec.folder, trainable, resume_unfinished=True, resume_errored=True)
    write_sweep_metadata(spec.folder, spec.name, spec.metric, spec.mode, spec.model_dump(mode="json"))
    sink = ParquetResultSink(
        spec.folder, spec.name, spec.metric, spec.mode, data.class_names, spec.train_config, spec.base_config.iterations
    )
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=build_search_alg(spec), scheduler=build_scheduler(spec), num_samples=spec.num_samples
        ),
        run_config=tune.RunConfig(
            name=spec.name,
            storage_path=spec.storage,
            failure_config=tune.FailureConfig(max_failures=spec.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
            callbacks=[sink],
        ),
    )


def launch(spec: SweepSpec, address: str | None = None, resume: bool = False, data: DomainData | None = None) -> SweepOutcome:
    """Run (or resume) the sweep to the end and summarise it.

    ``data`` lets a notebook sweep its own dataset objects; by default they are built from ``spec.data``.
    """
    if data is None:
        data = prepare(spec, resume)
    else:
        check_sweep_folder(spec, resume)
    started_ray = _start_ray(address)
    try:
        _tuner(spec, data, resume).fit()
    finally:
        if started_ray:
            import ray

            ray.shutdown()
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
