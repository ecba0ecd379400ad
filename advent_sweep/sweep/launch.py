"""Launch or resume a sweep: validated spec → data → Ray → Tuner (Optuna + ASHA) → Parquet.

Everything a user can get wrong (the spec, the data folders, an existing or missing sweep
folder) is checked before Ray starts, so bad input leaves nothing behind. Without an
address the sweep runs on an embedded single-node Ray bound to 127.0.0.1: a laptop sweep
opens no port to the network.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs

from advent_sweep.advent.warmup import INHERITED, load_or_train_warmup
from advent_sweep.data import DomainData, build_domain_data
from advent_sweep.data.labels import scores_miou_13
from advent_sweep.errors import ConfigError
from advent_sweep.model.deeplabv2 import check_weights
from advent_sweep.selection import VALIDATORS
from advent_sweep.storage import filesystem_and_path
from advent_sweep.sweep.spec import SweepSpec
from advent_sweep.sweep.study_journal import JOURNAL_FILE

# Read by Ray once, when ``ray`` is first imported: "0" keeps an embedded Ray on 127.0.0.1.
LOOPBACK_ONLY = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
# What Tuner.restore needs (Ray's tuner.pkl), and what the sink, the searcher and launch write into a sweep folder.
TUNER_STATE = "tuner.pkl"
# Read by Tune when a Tuner (also a restored one) fits: "1" adds none of its logger callbacks but those given.
NO_DEFAULT_LOGGERS = "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"
SWEEP_FILES = (TUNER_STATE, "sweep.json", "trials.parquet", "reports", JOURNAL_FILE)
# A torchvision weights name (ResNet101_Weights.IMAGENET1K_V1), as build_segmenter tells it from a file path.
WEIGHT_NAME = re.compile(r"\w+_Weights\.\w+")


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

    @property
    def succeeded(self) -> bool:
        """At least one trial trained to the end or was stopped by the scheduler: the sweep has an answer."""
        return bool(self.statuses.get("completed", 0) or self.statuses.get("stopped", 0))


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


def trial_weights(spec: SweepSpec) -> dict[str, str]:
    """backbone → the weights (file or torchvision name) its trials load; backbones with null weights left out."""
    weights = spec.trainer.get("weights")
    if isinstance(weights, dict):
        return {backbone: entry for backbone, entry in weights.items() if entry is not None}
    if weights is None:
        return {}
    searched = spec.space.get("backbone")
    backbones = [] if searched is None else list(searched.choices)
    if searched is None or searched.when:  # not sampled: the fixed (or default) backbone
        backbones.append(spec.base_config.backbone)
    return dict.fromkeys(backbones, weights)


def weight_files(spec: SweepSpec) -> list[str]:
    """The local weights files a trial may read (torchvision names are downloaded by each node instead)."""
    return sorted({weights for weights in trial_weights(spec).values() if not WEIGHT_NAME.fullmatch(weights)})


def check_weights_on_driver(spec: SweepSpec) -> None:
    """Every weights value a trial can load loads here: a missing file is an error before the data or Ray.

    A relative file path is refused: Ray Tune runs each trial in its own folder, where it would not resolve.
    """
    for weights in weight_files(spec):
        if not Path(weights).expanduser().is_absolute():
            raise ConfigError(
                f"trainer.weights: {weights!r} is a relative path, which trials would not find (Ray Tune runs each "
                f"trial in its own folder); allowed: an absolute path (or ~/...), e.g. {os.path.abspath(weights)}"
            )
    for backbone, weights in trial_weights(spec).items():
        try:
            check_weights(weights, backbone)
        except ConfigError as error:
            raise ConfigError(f"trainer.weights: {error}") from None


def check_weights_on_nodes(spec: SweepSpec) -> list[str]:
    """Each alive Ray node that can hold a trial has every weights file at its path; returns the nodes checked.

    Trials read weights files on their own node; without this a node lacking one would fail every trial
    sent to it. Nodes an autoscaler adds later are not checked here: a trial there fails naming its host.
    """
    files = weight_files(spec)
    if not files:
        return []
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    need = {"CPU": spec.resources.cpu, "GPU": spec.resources.gpu}
    nodes = [
        node for node in ray.nodes()
        if node["Alive"] and all(node["Resources"].get(name, 0.0) >= amount for name, amount in need.items())
    ]  # fmt: skip
    missing_here = ray.remote(num_cpus=0)(_missing_files)
    answers = ray.get([
        missing_here.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)).remote(files)
        for node in nodes
    ])  # fmt: skip
    lacking = [(node["NodeManagerAddress"], host, missing) for node, (host, missing) in zip(nodes, answers) if missing]
    if lacking:
        where = "; ".join(f"node {address} ({host}) lacks {', '.join(missing)}" for address, host, missing in lacking)
        raise ConfigError(
            f"trainer.weights: {where}; every node that runs trials reads the weights at that path: put the file on a "
            f"shared filesystem or into each node's image (checked {len(nodes)} node(s) that can hold a trial)"
        )
    return [node["NodeManagerAddress"] for node in nodes]


def _missing_files(paths: list[str]) -> tuple[str, list[str]]:
    """(this host's name, the ``paths`` that are not files here): run on each node."""
    return socket.gethostname(), [path for path in paths if not Path(path).expanduser().is_file()]


def prepare(spec: SweepSpec, resume: bool) -> DomainData:
    """Check the sweep folder and the weights, build (validate) the data and check the metric against it, before Ray starts."""
    check_sweep_folder(spec, resume)
    check_weights_on_driver(spec)
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
    ``ray.init`` replaces the process's SIGTERM handler (Python's with an exit, its core's with an abort);
    a handler the caller installed (the CLI's graceful stop) is put back.
    """
    address = address or os.environ.get("RAY_ADDRESS")
    if address is None:
        os.environ.setdefault(LOOPBACK_ONLY, "0")
    import ray

    if ray.is_initialized():
        return False
    on_sigterm = signal.getsignal(signal.SIGTERM)
    if address is None:
        ray.init(address="local", include_dashboard=False, configure_logging=False, log_to_driver=verbose)
    else:
        ray.init(address=address, log_to_driver=verbose)
    if callable(on_sigterm) and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_sigterm)
    return True


def shutdown_started_ray(started: bool) -> None:
    """Shut down the Ray that ``start_ray`` started; one we connected to keeps running."""
    if started:
        import ray

        ray.shutdown()


def ray_file_loggers() -> list[Any]:
    """Ray's result.json and progress.csv writers, for a Tuner's callbacks; Ray's own TensorBoard logger is turned off.

    ExperimentAnalysis and Tuner.can_restore read the two files; Ray's TensorBoard logger keys steps by report
    count, and each trial logs its own events at trainer iterations. Tune adds its default loggers when a Tuner
    (also a restored one) fits unless NO_DEFAULT_LOGGERS is set, so it is set in this process; a restored
    Tuner's callbacks, these included, come back with its RunConfig.
    """
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

    os.environ[NO_DEFAULT_LOGGERS] = "1"
    return [JsonLoggerCallback(), CSVLoggerCallback()]


def _tuner(spec: SweepSpec, data: DomainData, resume: bool, verbose: bool, reuse_actors: bool = True,
           quiet: bool = False) -> Any:
    from ray import tune

    from advent_sweep.sweep.checkpoints import KEPT_WHILE_RUNNING, CheckpointRetention
    from advent_sweep.sweep.console import ConsoleProgress
    from advent_sweep.sweep.eta import SweepProgress
    from advent_sweep.sweep.forecast import expected_iterations, expected_rungs
    from advent_sweep.sweep.parquet_sink import ParquetResultSink, write_sweep_metadata
    from advent_sweep.sweep.searchers import TrialFolderInStudy, build_scheduler, build_search_alg
    from advent_sweep.sweep.tracking import MlflowExperimentReady
    from advent_sweep.sweep.trainable import train_advent_trial

    file_loggers = ray_file_loggers()
    trainable = tune.with_resources(
        tune.with_parameters(train_advent_trial, train_config=spec.train_config, data=data, cache_dir=spec.cache_dir,
                             metric=spec.metric, mode=spec.mode, tracking=spec.tracking),
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
    callbacks = [CheckpointRetention(max_t, spec.checkpoints.keep_stopped), sink, progress, *file_loggers, TrialFolderInStudy(spec)]
    if spec.tracking.mlflow is not None:
        callbacks.append(MlflowExperimentReady(spec.tracking.mlflow, spec.name, spec.folder))
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
            callbacks=callbacks if verbose or quiet else [*callbacks, ConsoleProgress(spec.metric, max_t)],
            verbose=None if verbose else 0,
        ),
    )


def launch(spec: SweepSpec, address: str | None = None, resume: bool = False, data: DomainData | None = None,
           verbose: bool = False, reuse_actors: bool = True, quiet: bool = False) -> SweepOutcome:
    """Run (or resume) the sweep to the end and summarise it.

    ``data`` lets a notebook sweep its own dataset objects; by default they are built from ``spec.data``.
    ``reuse_actors=False`` starts a new worker per trial (what benchmarks/sweep_efficiency.py compares against).
    The console gets a line per trial event; ``verbose`` gives Ray's own output (status tables, worker logs)
    instead, ``quiet`` neither. A resumed sweep keeps the Tune output it was launched with (Ray restores its RunConfig).
    """
    if data is None:
        data = prepare(spec, resume)
    else:
        check_sweep_folder(spec, resume)
        check_weights_on_driver(spec)
        check_metric(spec, data)
    prepare_warmup(spec, data)
    started_ray = start_ray(address, verbose)
    try:
        from advent_sweep.sweep.console import tune_console

        if weight_files(spec) and not check_weights_on_nodes(spec) and not quiet:
            print("weights: no node that can hold a trial is up yet (an autoscaler adds them); each trial's node "
                  "must have the weights file, or the trial fails naming its host", flush=True)

        with tune_console(verbose):
            _tuner(spec, data, resume, verbose, reuse_actors, quiet).fit()
    finally:
        shutdown_started_ray(started_ray)
    outcome = _outcome(spec)
    if not outcome.interrupted:
        write_sweep_predictions(spec, data)
    return outcome


def qualitative_models(spec: SweepSpec) -> list[tuple[str, str]]:
    """(label, snapshot) of the sweep's best trial and of each method's best, as kept in their snapshots/ (rule best).

    The best trial comes first and is named so; a method whose best trial kept no snapshot is left out.
    """
    import pyarrow.parquet as pq

    from advent_sweep.advent.snapshots import INDEX_FILE, SNAPSHOTS_DIR
    from advent_sweep.analysis.per_class import method_label

    filesystem, root = filesystem_and_path(spec.folder)
    trials = [t for t in pq.read_table(f"{root}/trials.parquet", filesystem=filesystem).to_pylist()
              if t["best_value"] is not None and t.get("trial_path") and t["status"] in ("completed", "stopped")]
    trials.sort(key=lambda t: t["best_value"], reverse=spec.mode == "max")
    chosen: dict[str, dict] = {}
    for trial in trials:  # best first: the first trial of each method is its best
        chosen.setdefault(trial["config.method"], trial)
    order = [trials[0], *(t for t in chosen.values() if t is not trials[0])] if trials else []
    models = []
    for rank, trial in enumerate(order):
        trial_fs, trial_path = filesystem_and_path(trial["trial_path"])
        try:
            with trial_fs.open_input_stream(f"{trial_path}/{SNAPSHOTS_DIR}/{INDEX_FILE}") as stream:
                index = json.loads(stream.read())
        except FileNotFoundError:
            continue
        entry = index.get("best") or next(iter(index.values()), None)
        if entry is None:
            continue
        label = method_label(trial["config.method"]) + (" (best trial)" if rank == 0 else "")
        models.append((label, f"{trial['trial_path'].rstrip('/')}/{SNAPSHOTS_DIR}/{entry['file']}"))
    return models


def write_sweep_predictions(spec: SweepSpec, data: DomainData) -> None:
    """At the sweep's end: the qualitative PNGs (advent/qualitative.py) of its best trial and each method's best, in
    ``<sweep>/qualitative``; the report lays them out."""
    from advent_sweep.advent.qualitative import write_qualitative

    models = qualitative_models(spec)
    if models:
        write_qualitative(models, data.target_val, data.class_names, f"{spec.folder}/qualitative", entropy_of=models[0][0])


def _read_trials(folder: str) -> list[dict[str, Any]]:
    """The rows of a sweep folder's trials.parquet, as the sink last wrote them."""
    import pyarrow.parquet as pq

    filesystem, root = filesystem_and_path(folder)
    return pq.read_table(f"{root}/trials.parquet", filesystem=filesystem).to_pylist()


def trial_statuses(folder: str) -> dict[str, int]:
    """How many trials of the sweep (or confirm run) in ``folder`` ended in each status; ``running``: interrupted."""
    statuses: dict[str, int] = {}
    for trial in _read_trials(folder):
        statuses[trial["status"]] = statuses.get(trial["status"], 0) + 1
    return statuses


def _outcome(spec: SweepSpec) -> SweepOutcome:
    """Summarise from the Parquet the sink wrote: the same numbers the analysis will show."""
    trials = _read_trials(spec.folder)
    statuses = trial_statuses(spec.folder)
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
