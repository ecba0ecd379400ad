"""Scoring saved checkpoints alone or as a weighted ensemble: what ``advent-sweep evaluate`` does.

The paper's best GTA5 → Cityscapes row (AdvEnt+MinEnt, 45.5) averages the main-head logits
of two separately trained models (0.5 / 0.5), and the official test script rescores saved
snapshots; this does both for any run's or trial's checkpoint, local or s3:// / gs:// / file://.
"""

from __future__ import annotations

import io
import os
import pickle
import posixpath
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import pyarrow.fs as pafs
import torch
from pydantic import ValidationError
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from advent_sweep.advent.config import TrainConfig
from advent_sweep.advent.evaluation import evaluate_segmenters
from advent_sweep.advent.predictions import PredictionWriter, check_predictions_folder
from advent_sweep.advent.predictions import describe as describe_predictions
from advent_sweep.advent.trainer import resolve_device
from advent_sweep.data import build_domain_data
from advent_sweep.data.config import DataConfig
from advent_sweep.errors import CheckpointError, InputError
from advent_sweep.model.deeplabv2 import DeepLabV2, build_segmenter
from advent_sweep.storage import filesystem_and_path

CHECKPOINT_NAMES = ("checkpoint.pt", "trainer.pt")  # in a run folder (advent-sweep train), in a sweep trial's checkpoint
SPLITS = ("val", "train")  # of the target: val is what the paper scores; train holds labels training never read
# The only non-tensor classes a trainer state holds: numpy's RNG state (np.random.get_state(), a uint32 array).
STATE_GLOBALS = [np._core.multiarray._reconstruct, np.ndarray, np.dtype, type(np.dtype(np.uint32))]


def load_state(source: str | os.PathLike[str] | IO[bytes]) -> Any:
    """``torch.load`` that runs no code from the file: tensors, plain values and numpy's RNG state only.

    A pickle that would import or call anything else raises ``pickle.UnpicklingError`` before it does.
    """
    with torch.serialization.safe_globals(STATE_GLOBALS):
        return torch.load(source, map_location="cpu", weights_only=True)


@dataclass(frozen=True)
class Checkpoint:
    """A trainer checkpoint read back: where it came from, its run's config and iteration, the segmenter weights."""

    location: str
    config: TrainConfig
    iteration: int
    segmenter: dict[str, torch.Tensor]

    @property
    def num_classes(self) -> int:
        return int(self.segmenter["main_head.conv2d_list.0.weight"].shape[0])


def read_checkpoint(location: str) -> Checkpoint:
    """A run folder, a trial's checkpoint folder or a .pt file (a checkpoint or a kept snapshot), local or a URI.

    A CheckpointError names what is wrong.
    """
    filesystem, path = filesystem_and_path(location)
    kind = filesystem.get_file_info(path).type
    if kind == pafs.FileType.NotFound:
        raise CheckpointError(f"{location}: no such file or folder")
    if kind == pafs.FileType.Directory:
        found = [posixpath.join(path, name) for name in CHECKPOINT_NAMES
                 if filesystem.get_file_info(posixpath.join(path, name)).type == pafs.FileType.File]
        if not found:
            raise CheckpointError(f"{location}: a folder without a checkpoint; allowed: a folder holding "
                                  f"{' or '.join(CHECKPOINT_NAMES)}, or the checkpoint file itself")
        path = found[0]
    try:
        with filesystem.open_input_file(path) as stream:
            state = load_state(io.BytesIO(stream.readall()))
    except pickle.UnpicklingError as error:
        raise CheckpointError(f"{location}: refused, its pickle would run code when opened; allowed: a checkpoint "
                              f"of tensors and plain values, as advent-sweep writes ({_first_line(error)})") from None
    except Exception as error:  # a truncated or foreign file: torch raises many kinds
        raise CheckpointError(f"{location}: not a readable checkpoint ({type(error).__name__}: {error})") from None
    if not isinstance(state, dict) or not {"config", "segmenter", "iteration"} <= set(state):
        raise CheckpointError(f"{location}: not an advent-sweep trainer checkpoint (no config, segmenter and iteration)")
    try:
        config = TrainConfig.model_validate(state["config"])
    except ValidationError as error:
        raise CheckpointError(f"{location}: its saved config does not validate ({error.errors()[0]['msg']})") from None
    return Checkpoint(location, config, int(state["iteration"]), state["segmenter"])


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def ensemble_weights(weights: Sequence[float] | None, count: int) -> list[float]:
    """One weight per checkpoint, normalised to sum 1 (equal by default: the paper's 0.5 / 0.5 for two)."""
    if weights is None:
        return [1.0 / count] * count
    if len(weights) != count:
        raise InputError(f"--weights: {len(weights)} weight(s) for {count} checkpoint(s); allowed: one per checkpoint")
    if any(w < 0 for w in weights) or sum(weights) <= 0:
        raise InputError(f"--weights {' '.join(map(str, weights))}: allowed: non-negative numbers with a positive sum")
    return [w / sum(weights) for w in weights]


def evaluate_checkpoints(
    locations: Sequence[str],
    weights: Sequence[float] | None = None,
    data: DataConfig | None = None,
    split: str = "val",
    device: str = "auto",
    progress: bool = True,
    save_predictions: Path | None = None,
    limit: int | None = None,
) -> dict[str, Any]:
    """Score the checkpoints' weighted main-head logits on the target ``split`` of their data (or of ``data``).

    The checkpoints must agree on the number of classes, and, without ``data``, on their data. Scoring uses the
    first checkpoint's recorded thread count, so a run's own report is reproduced exactly on CPU.
    ``limit`` scores the split's first images only; ``save_predictions`` writes each scored image's prediction,
    entropy map and (Cityscapes) labelIds PNG there (advent/predictions.py).
    Returns what was scored (checkpoints, iterations, normalised weights, split, data) and the metrics.
    """
    if split not in SPLITS:
        raise InputError(f"--split {split!r}: allowed: {', '.join(SPLITS)}")
    if save_predictions is not None:
        check_predictions_folder(save_predictions)
    checkpoints = [read_checkpoint(location) for location in locations]
    normalised = ensemble_weights(weights, len(checkpoints))
    first = checkpoints[0]
    for other in checkpoints[1:]:
        if other.num_classes != first.num_classes:
            raise InputError(f"{first.location} has {first.num_classes} classes but {other.location} has "
                             f"{other.num_classes}: an ensemble needs one label set")
        if data is None and other.config.data != first.config.data:
            raise InputError(f"{first.location} and {other.location} were trained on different data; "
                             "pass --data CONFIG.yaml to score both on one")
    domain = build_domain_data(data or first.config.data)
    if domain.num_classes != first.num_classes:
        raise InputError(f"{first.location} has {first.num_classes} classes but the data has {domain.num_classes} "
                         f"({', '.join(domain.class_names)})")
    target = resolve_device(device)
    segmenters = [(segmenter_of(checkpoint, target), weight) for checkpoint, weight in zip(checkpoints, normalised)]
    dataset = domain.target_val if split == "val" else domain.target
    scored = dataset if limit is None or limit >= len(dataset) else Subset(dataset, range(limit))
    loader = DataLoader(scored, batch_size=first.config.eval_batch_size, pin_memory=target.type == "cuda")
    batches = tqdm(loader, desc=f"target {split}", unit="batch", disable=not progress, leave=False)
    writer = None if save_predictions is None else PredictionWriter(save_predictions, dataset, len(scored), domain.class_names)
    threads = torch.get_num_threads()
    torch.set_num_threads(first.config.threads or threads)  # the run's count: its float sums, so its reported scores
    try:
        metrics = evaluate_segmenters(segmenters, batches, domain.num_classes, domain.class_names, target, on_logits=writer)
    finally:
        torch.set_num_threads(threads)
        if writer is not None:
            writer.close()
    return {
        "checkpoints": [{"location": c.location, "iteration": c.iteration, "method": c.config.method,
                         "backbone": c.config.backbone, "weight": w} for c, w in zip(checkpoints, normalised)],
        "split": split,
        "images": len(scored),
        **({"predictions": describe_predictions(save_predictions)} if save_predictions is not None else {}),
        "data": (data or first.config.data).model_dump(mode="json"),
        "metrics": metrics,
    }


def segmenter_of(checkpoint: Checkpoint, device: torch.device) -> DeepLabV2:
    """The checkpoint's segmenter on ``device``, in inference mode (BN running statistics, as Trainer.evaluate)."""
    config = checkpoint.config
    segmenter = build_segmenter(config.backbone, checkpoint.num_classes, config.multi_level)
    try:
        segmenter.load_state_dict(checkpoint.segmenter)
    except RuntimeError as error:
        raise CheckpointError(f"{checkpoint.location}: its weights do not fit backbone {config.backbone} ({error})") from None
    return segmenter.to(device).train(False)  # inference mode: BN running statistics, as Trainer.evaluate
