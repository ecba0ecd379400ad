"""The Ray Tune function trainable: glue between a trial's config and the ADVENT Trainer.

It restores from ``tune.get_checkpoint()`` first, trains, and every eval interval calls
``tune.report`` with the metrics, the trainer iteration (ASHA's time attribute) and a
checkpoint. A diverged trial reports once with ``diverged: True`` and ends without
error, so the sweep goes on and no retry is spent on it.
"""

from __future__ import annotations

import math
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from ray import tune

from advent_sweep.advent.config import TrainConfig
from advent_sweep.advent.run import build_trainer
from advent_sweep.data import DomainData
from advent_sweep.errors import TrainingDiverged

CHECKPOINT_FILE = "trainer.pt"


def train_advent_trial(params: dict[str, Any], *, train_config: Callable[[dict[str, Any]], TrainConfig],
                       data: DomainData, cache_dir: str, metric: str) -> None:
    """Train the config ``train_config(params)`` on the shared ``data`` (warm-ups cached in ``cache_dir``).

    A sweep passes ``SweepSpec.train_config`` (the sampled params over its trainer section), a confirm
    run a grid of (configuration, seed).
    """
    config = train_config(params)
    state = None
    checkpoint = tune.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as folder:
            state = torch.load(Path(folder) / CHECKPOINT_FILE, weights_only=False)
    trainer = build_trainer(config, data, cache_dir, state)

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
        with tempfile.TemporaryDirectory() as folder:
            torch.save(trainer.state_dict(), Path(folder) / CHECKPOINT_FILE)
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))
        loss_sums.clear()
        steps, started = 0, time.perf_counter()
