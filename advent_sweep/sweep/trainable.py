"""The Ray Tune function trainable: glue between a trial's config and the ADVENT Trainer.

It restores from ``tune.get_checkpoint()`` first, trains, and every eval interval calls
``tune.report`` with the metrics, the trainer iteration (ASHA's time attribute) and a
checkpoint, after keeping the snapshots its rules prefer in the trial folder's snapshots/. A diverged
trial reports once with ``diverged: True`` and ends without error, so the sweep goes on and no retry is
spent on it. The trainer logs its losses and panels (TensorBoard events) into the trial's folder in
storage, flushed before each report, and to the trackers the space's ``tracking:`` section names
(sweep/tracking.py).

Sweeps reuse worker processes (``reuse_actors``): each trial hands the next one in its
worker the process-wide torch, RNG and CUDA settings it found, so that a trial's numbers
do not depend on which trial ran there before.
"""

from __future__ import annotations

import math
import random
from contextlib import ExitStack, closing
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.fs as pafs
import torch
from ray import tune

from advent_sweep.advent.checkpoints import load_state
from advent_sweep.advent.config import TrainConfig
from advent_sweep.advent.run import build_trainer
from advent_sweep.advent.run_logger import FanOutLogger, RunLogger, TensorBoardLogger
from advent_sweep.advent.snapshots import SnapshotKeeper
from advent_sweep.data import DomainData
from advent_sweep.errors import TrainingDiverged
from advent_sweep.sweep.spec_models import TrackingSpec
from advent_sweep.sweep.tracking import trial_trackers

CHECKPOINT_FILE = "trainer.pt"


def train_advent_trial(params: dict[str, Any], *, train_config: Callable[[dict[str, Any]], TrainConfig],
                       data: DomainData, cache_dir: str, metric: str, mode: str = "max",
                       tracking: TrackingSpec | None = None) -> None:
    """Train the config ``train_config(params)`` on the shared ``data`` (warm-ups cached in ``cache_dir``).

    A sweep passes ``SweepSpec.train_config`` (the sampled params over its trainer section), a confirm
    run a grid of (configuration, seed). ``metric`` and ``mode`` define the snapshot rule ``best``;
    ``tracking``: the trackers each trial also logs to.
    """
    with process_state_restored(), ExitStack() as on_exit:
        _train(train_config(params), data, cache_dir, metric, mode, on_exit, tracking or TrackingSpec())


def trial_logger(purge_step: int | None, config: TrainConfig, tracking: TrackingSpec) -> RunLogger:
    """TensorBoard events in this trial's folder in the sweep's storage (Ray's filesystem for it: local, s3://, gs://),
    and the trackers ``tracking`` names."""
    context = tune.get_context()
    storage = context.get_storage()
    tensorboard = TensorBoardLogger(storage.trial_fs_path, purge_step, filesystem=storage.storage_filesystem)
    if tracking.mlflow is None and tracking.wandb is None:
        return tensorboard
    local = isinstance(storage.storage_filesystem, pafs.LocalFileSystem)
    trackers = trial_trackers(tracking, context.get_experiment_name(), f"{storage.storage_fs_path}/{storage.experiment_dir_name}",
                              context.get_trial_name(), context.get_trial_id(), storage.trial_fs_path if local else None,
                              config.model_dump(mode="json"))
    return FanOutLogger([tensorboard, *trackers])


@contextmanager
def process_state_restored() -> Iterator[None]:
    """Put back what the Trainer changes process-wide: torch's thread count, the RNGs (a resumed trial
    loads its saved ones) and the CUDA determinism flags.

    Restored when the trial ends, also when Tune stops it in ``tune.report`` (a SystemExit).
    """
    threads = torch.get_num_threads()
    rngs = torch.get_rng_state(), np.random.get_state(), random.getstate()
    cuda_rngs = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    cudnn = torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic
    deterministic = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.set_rng_state(rngs[0])
        np.random.set_state(rngs[1])
        random.setstate(rngs[2])
        if cuda_rngs is not None:
            torch.cuda.set_rng_state_all(cuda_rngs)
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = cudnn
        torch.use_deterministic_algorithms(deterministic[0], warn_only=deterministic[1])


def _train(config: TrainConfig, data: DomainData, cache_dir: str, metric: str, mode: str, on_exit: ExitStack,
           tracking: TrackingSpec) -> None:
    state = None
    checkpoint = tune.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as folder:
            state = load_state(Path(folder) / CHECKPOINT_FILE)
    trainer = build_trainer(config, data, cache_dir, state)
    storage = tune.get_context().get_storage()  # the trial folder in the sweep's storage (local or a URI)
    snapshots = SnapshotKeeper(storage.trial_fs_path, config.keep_snapshots, metric, mode, storage.storage_filesystem,
                               trainer.iteration)
    # Closed when the trial ends, also when Tune stops it; a resumed trial's writer hides what its lost attempt logged.
    trainer.logger = on_exit.enter_context(closing(trial_logger(trainer.iteration + 1 if state else None, config, tracking)))

    loss_sums: dict[str, float] = defaultdict(float)
    steps, started = 0, time.perf_counter()
    while trainer.iteration < config.iterations:
        try:
            step_losses = trainer.step()
            for name, value in step_losses.items():
                loss_sums[name] += value
            steps += 1
            if trainer.iteration % config.eval_interval and trainer.iteration < config.iterations:
                continue
            metrics = {
                "iteration": trainer.iteration,
                "iterations_per_s": steps / (time.perf_counter() - started),
                **{name: total / steps for name, total in loss_sums.items()},
                **trainer.evaluate(data.target_val, data.source_val),
            }
        except TrainingDiverged as diverged:
            tune.report({"iteration": diverged.iteration, "diverged": True, metric: math.nan, **diverged.losses})
            return
        snapshots.keep(trainer.iteration, metrics, trainer.config.model_dump(mode="json"), trainer.segmenter.state_dict())
        with tempfile.TemporaryDirectory() as folder:
            torch.save(trainer.state_dict(), Path(folder) / CHECKPOINT_FILE)
            trainer.logger.flush()
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))
        loss_sums.clear()
        steps, started = 0, time.perf_counter()
