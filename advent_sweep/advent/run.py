"""One training run to the end: what ``advent-sweep train CONFIG.yaml`` does.

The output folder holds ``config.yaml`` (the run's full TrainConfig, with the thread count
it used), ``checkpoint.pt`` (the trainer's state at the last evaluation), ``metrics.json``
(every evaluation and the snapshot each selection rule picks), ``snapshots/`` (the model of the
report each of ``keep_snapshots``' rules prefers; advent/snapshots.py) and TensorBoard event files
(advent/run_logger.py: losses and panels at trainer iterations). Files are replaced atomically,
so a crash leaves the previous complete version, and ``resume=True`` continues exactly.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import time
from pathlib import Path
from typing import Any

import torch
import yaml
from tqdm import tqdm

from advent_sweep.advent.checkpoints import load_state
from advent_sweep.advent.config import TrainConfig
from advent_sweep.advent.run_logger import FanOutLogger, RunLogger, TensorBoardLogger
from advent_sweep.advent.snapshots import SnapshotKeeper
from advent_sweep.advent.trackers import MlflowLogger, WandbLogger
from advent_sweep.advent.trainer import Trainer, resolve_threads
from advent_sweep.advent.warmup import load_or_train_warmup
from advent_sweep.data import DomainData
from advent_sweep.errors import ConfigError
from advent_sweep.selection import VALIDATORS
from advent_sweep.storage import write_atomically

CHECKPOINT, METRICS, CONFIG = "checkpoint.pt", "metrics.json", "config.yaml"
TRACKER_EXPERIMENT = "advent-sweep-train"  # the MLflow experiment / W&B group of `train` runs


def build_trainer(config: TrainConfig, data: DomainData, cache_dir: str | Path | None = None,
                  state: dict[str, Any] | None = None) -> Trainer:
    """A Trainer on a built domain pair (p_s passed only when μ uses it), resumed from ``state`` if given.

    Otherwise, with a ``source_warmup``, its segmenter starts from that source-only model, read
    from ``cache_dir`` or trained (and cached there) first, before the Trainer seeds torch: a run
    is the same whether its warm-up was cached or not. A resumed run needs no warm-up.
    """
    fresh_with_warmup = state is None and config.source_warmup is not None
    warm_start = load_or_train_warmup(config, data, cache_dir)["segmenter"] if fresh_with_warmup else None
    trainer = Trainer(
        config,
        data.source,
        data.target,
        num_classes=data.num_classes,
        class_names=data.class_names,
        class_prior=data.class_prior if config.class_prior_mu > 0 else None,
    )
    if state is not None:
        trainer.load_state_dict(state)
    elif warm_start is not None:
        trainer.segmenter.load_state_dict(warm_start)
    return trainer


def selection_summary(evaluations: list[dict[str, float]]) -> dict[str, dict[str, float] | None]:
    """The snapshot each rule picks: best target mIoU (on labels, as the official eval), last, and each label-free validator's.

    A validator the evaluations lack (source_val_miou without a held-out source split) picks nothing.
    """
    chosen: dict[str, dict[str, float] | None] = {
        "best": max(evaluations, key=lambda e: e["target_miou"]) if evaluations else None,
        "last": evaluations[-1] if evaluations else None,
    }
    for name, validator in VALIDATORS.items():
        scored = [e for e in evaluations if e.get(name) is not None and math.isfinite(e[name])]
        pick = max if validator.mode == "max" else min
        chosen[name] = pick(scored, key=lambda e: e[name]) if scored else None
    return chosen


def prepare_output(output: Path, config: TrainConfig, resume: bool) -> TrainConfig:
    """Refuse to overwrite another run's checkpoint unless resuming; write config.yaml and return the config it holds.

    That config has ``threads`` resolved, so a rerun of the file uses the same count. A resumed run whose
    config leaves ``threads`` out keeps the count it started with (and so continues bit for bit, on any
    machine); a different explicit count is another config.
    """
    if (output / CHECKPOINT).exists() and not resume:
        raise ConfigError(f"{output}: holds a checkpoint already; pass --resume to continue it or choose another --output")
    if resume and (output / CONFIG).exists():
        saved = TrainConfig.model_validate(yaml.safe_load((output / CONFIG).read_text()))
        if config.threads is None:
            config = config.model_copy(update={"threads": saved.threads})
        if saved != config:
            raise ConfigError(f"{output / CONFIG}: the run being resumed has another config; resume with that file")
    config = config.model_copy(update={"threads": resolve_threads(config.threads)})
    output.mkdir(parents=True, exist_ok=True)
    write_atomically(output / CONFIG, yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False).encode())
    return config


def run_trackers(config: TrainConfig, output: Path, mlflow_uri: str | None, wandb_mode: str | None) -> list[RunLogger]:
    """The tracker runs of a `train` run: named after its folder, its config as parameters, in TRACKER_EXPERIMENT.

    The W&B run id comes from the folder's absolute path, so a resumed run continues its W&B run; MLflow finds
    its run by name.
    """
    params = config.model_dump(mode="json")
    trackers: list[RunLogger] = []
    if mlflow_uri is not None:
        trackers.append(MlflowLogger(mlflow_uri, TRACKER_EXPERIMENT, output.name, params))
    if wandb_mode is not None:
        run_id = hashlib.sha256(str(output.resolve()).encode()).hexdigest()[:16]
        trackers.append(WandbLogger("advent-sweep", None, wandb_mode, TRACKER_EXPERIMENT, output.name, run_id, params,
                                    str(output)))
    return trackers


def train_to_end(config: TrainConfig, data: DomainData, output: Path, resume: bool = False, progress: bool = True,
                 cache_dir: str | Path | None = None, mlflow_uri: str | None = None,
                 wandb_mode: str | None = None) -> dict[str, Any]:
    """Train for ``config.iterations``, evaluating and checkpointing every ``eval_interval``; a source warm-up is cached in ``cache_dir``.

    Losses and panels go to TensorBoard events in ``output`` and, when given, to MLflow (``mlflow_uri``) and W&B.
    """
    config = prepare_output(output, config, resume)
    resuming = resume and (output / CHECKPOINT).exists()
    state = load_state(output / CHECKPOINT) if resuming else None
    trainer = build_trainer(config, data, cache_dir, state)
    snapshots = SnapshotKeeper(str(output), config.keep_snapshots, iteration=trainer.iteration)
    evaluations: list[dict[str, float]] = []
    if resuming:
        if (output / METRICS).exists():
            saved = json.loads((output / METRICS).read_text())["evaluations"]
            evaluations = [e for e in saved if e["iteration"] <= trainer.iteration]

    # A resumed run's writer hides what the interrupted one logged after the checkpoint.
    # (An interrupted run loses only what it logged after its last checkpoint, which a resume hides anyway.)
    tensorboard = TensorBoardLogger(output, purge_step=trainer.iteration + 1 if resuming else None)
    trackers = run_trackers(trainer.config, output, mlflow_uri, wandb_mode)
    trainer.logger = FanOutLogger([tensorboard, *trackers]) if trackers else tensorboard
    bar = tqdm(total=config.iterations, initial=trainer.iteration, disable=not progress, unit="it", dynamic_ncols=True)
    started = time.perf_counter()
    while trainer.iteration < config.iterations:
        step_losses = trainer.step()
        bar.update(1)
        bar.set_postfix({k.removeprefix("loss_"): f"{v:.3f}" for k, v in step_losses.items()}, refresh=False)
        if trainer.iteration % config.eval_interval == 0 or trainer.iteration == config.iterations:
            metrics = {"iteration": trainer.iteration, "wall_time_s": time.perf_counter() - started, **trainer.evaluate(data.target_val, data.source_val)}
            evaluations.append(metrics)
            bar.write(f"iteration {trainer.iteration}: target mIoU {metrics['target_miou']:.2f}, target entropy {metrics['target_entropy']:.4f}")
            snapshots.keep(trainer.iteration, metrics, trainer.config.model_dump(mode="json"), trainer.segmenter.state_dict())
            checkpoint = io.BytesIO()
            torch.save(trainer.state_dict(), checkpoint)
            write_atomically(output / CHECKPOINT, checkpoint.getbuffer())
            summary = {"evaluations": evaluations, "selection": selection_summary(evaluations), "snapshots": snapshots.locations()}
            write_atomically(output / METRICS, json.dumps(summary, indent=1).encode())
            trainer.logger.flush()
    bar.close()
    trainer.logger.close()
    return {"evaluations": evaluations, "selection": selection_summary(evaluations), "snapshots": snapshots.locations()}
