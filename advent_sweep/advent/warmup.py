"""The source warm-up: one source-only model that every run of a sweep starts from.

ADVENT papers start every run from the same pretrained segmenter (ImageNet DeepLab
weights); runs that start from scratch spend their first iterations on a loss that jumps
from ln C to 10–20 and differ by seed more than by λ. ``source_warmup`` trains that common
start on the labelled source once (method source_only, poly over its own iterations) and
caches it beside the sweeps, like p_s: it depends on the backbone, the source data and the
warm-up's own settings, never on λ, μ, the method or the run's seed, so every trial of a
sweep loads the same weights and a second launch reads them back instead of training again.
"""

from __future__ import annotations

import hashlib
import io
import posixpath
import time
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs
import torch

from advent_sweep.advent.config import TrainConfig
from advent_sweep.advent.trainer import Trainer, resolve_threads
from advent_sweep.storage import filesystem_and_path, write_atomically

# TrainConfig settings the warm-up inherits from the run: everything that shapes source-only
# training of this segmenter on this data. The rest (method, λ, μ, entropy range, the run's
# lr, seed and schedule, and bn_momentum: a from-scratch warm-up keeps PyTorch's) belongs to the run that
# starts from it.
INHERITED = (
    "backbone", "weights", "multi_level", "param_repeats", "lambda_seg_main", "lambda_seg_aux",
    "momentum", "weight_decay", "poly_power", "batch_size_source", "threads", "deterministic",
    "device", "amp", "channels_last", "compile", "data",
)  # fmt: skip
FORMAT = 1  # bump when what a cached warm-up holds, or how it is trained, changes


def warmup_config(config: TrainConfig) -> TrainConfig:
    """The source-only TrainConfig that trains ``config``'s starting point."""
    if config.source_warmup is None:
        raise ValueError("this run has no source_warmup")
    warmup = config.source_warmup
    inherited = {name: getattr(config, name) for name in INHERITED} | {"threads": resolve_threads(config.threads)}
    return TrainConfig.model_validate({
        **inherited, "method": "source_only", "iterations": warmup.iterations, "poly_horizon": warmup.iterations,
        "eval_interval": warmup.iterations, "lr": warmup.lr, "seed": warmup.seed,
    })  # fmt: skip


def warmup_path(config: TrainConfig, cache_dir: str | Path) -> str:
    """Where the warm-up of ``config`` is cached: a hash of everything that shapes it."""
    key = f"{FORMAT}:{warmup_config(config).model_dump_json()}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:20]
    return f"{str(cache_dir).rstrip('/')}/source_warmup-{config.backbone}-{digest}.pt"


def train_warmup(config: TrainConfig, data: Any) -> dict[str, Any]:
    """Train the warm-up of ``config`` on ``data.source``: the segmenter's weights and the source CE curve."""
    warm = warmup_config(config)
    trainer = Trainer(warm, data.source, data.target, num_classes=data.num_classes, class_names=data.class_names)
    started = time.perf_counter()
    losses = [trainer.step()["loss_seg_src_main"] for _ in range(warm.iterations)]
    return {
        "config": warm.model_dump(mode="json"),
        "segmenter": trainer.segmenter.state_dict(),
        "loss_seg_src_main": losses,
        "seconds": time.perf_counter() - started,
    }


def load_or_train_warmup(config: TrainConfig, data: Any, cache_dir: str | Path | None) -> dict[str, Any]:
    """The warm-up of ``config``: read from ``cache_dir`` (a folder or a URI), else trained and cached there.

    Returns the cached record with ``"reused"`` telling whether it was read back. Without a
    cache_dir it is trained every time.
    """
    if cache_dir is None:
        return {**train_warmup(config, data), "reused": False}
    filesystem, path = filesystem_and_path(warmup_path(config, cache_dir))
    if filesystem.get_file_info(path).type == pafs.FileType.File:
        with filesystem.open_input_stream(path) as stream:
            record = torch.load(io.BytesIO(stream.read()), map_location="cpu", weights_only=True)
        return {**record, "reused": True}
    record = train_warmup(config, data)
    buffer = io.BytesIO()
    torch.save(record, buffer)
    filesystem.create_dir(posixpath.dirname(path), recursive=True)
    write_atomically(path, buffer.getbuffer(), filesystem)  # trials starting together see a whole file or none
    return {**record, "reused": False}
