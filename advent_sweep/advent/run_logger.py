"""What a run shows while it trains: scalars and image panels at trainer iterations, through a logger it is given.

The Trainer calls a :class:`RunLogger` (``scalars``, ``images``) and never knows where the values go:
TensorBoard event files (:class:`TensorBoardLogger`, for ``advent-sweep train`` and each sweep trial),
an experiment tracker (advent/trackers.py), several at once (:class:`FanOutLogger`), or nowhere
(``Trainer.logger = None``, the default: no panel is even drawn). ``step`` is always the trainer
iteration, so runs with different evaluation intervals overlay on one axis.

Tags (TensorBoard groups them by the part before the first ``/``):

- ``loss/<name>``: every loss of the step (``seg_src_main``, ``ent_trg_aux``, ``adv_trg_main``, ``d_main``,
  ``class_prior``, ...), every ``log_interval`` iterations;
- ``lr/segmenter``, ``lr/segmenter_heads``, ``lr/discriminator``: the learning rates that step used;
- ``discriminator/source_<level>``, ``discriminator/target_<level>``: D's mean sigmoid output (its
  probability of "target") on the source and target maps it was trained on;
- ``eval/<metric>`` and ``iou/<class>``: each evaluation, at its iteration;
- images ``train/source_image`` ... ``train/target_entropy`` every ``viz_interval`` iterations, and
  ``val/<k>/image``, ``val/<k>/label``, ``val/<k>/prediction``, ``val/<k>/entropy`` for the first target-val
  images at each evaluation.
"""

from __future__ import annotations

import os
import posixpath
import tempfile
from collections.abc import Mapping, Sequence
from typing import Protocol

import numpy as np
import pyarrow.fs as pafs
from torch import Tensor

from advent_sweep.data.palette import colorize
from advent_sweep.storage import filesystem_and_path, write_atomically


class RunLogger(Protocol):
    """Where a Trainer's scalars and panels go; ``step`` is the trainer iteration."""

    def scalars(self, step: int, values: Mapping[str, float]) -> None:
        """Record one value per tag at ``step``."""

    def images(self, step: int, images: Mapping[str, np.ndarray]) -> None:
        """Record H×W×3 uint8 RGB images, one per tag, at ``step``."""

    def flush(self) -> None:
        """Make everything recorded so far visible in storage (called at each checkpoint)."""

    def close(self) -> None:
        """Flush and release files; the logger is not used afterwards."""


class FanOutLogger:
    """Hands every call to each of ``loggers`` (TensorBoard and a tracker, say)."""

    def __init__(self, loggers: Sequence[RunLogger]) -> None:
        self.loggers = list(loggers)

    def scalars(self, step: int, values: Mapping[str, float]) -> None:
        for logger in self.loggers:
            logger.scalars(step, values)

    def images(self, step: int, images: Mapping[str, np.ndarray]) -> None:
        for logger in self.loggers:
            logger.images(step, images)

    def flush(self) -> None:
        for logger in self.loggers:
            logger.flush()

    def close(self) -> None:
        for logger in self.loggers:
            logger.close()


class TensorBoardLogger:
    """TensorBoard event files in ``destination``: a local folder, or a URI (s3://, gs://) that pyarrow opens.

    TensorBoard's writer appends to a local file, which object stores cannot do, so for a URI it writes
    into a local staging folder and ``flush`` uploads each event file whole (atomically) into the
    destination: a sweep trial flushes at every report, so storage lags by at most one evaluation interval.

    ``purge_step``: the first step this writer will write after a resume (the restored iteration + 1);
    TensorBoard's readers then drop whatever an earlier, interrupted writer logged at that step or later,
    so every (tag, step) is shown once and steps increase.
    """

    def __init__(self, destination: str | os.PathLike[str], purge_step: int | None = None,
                 filesystem: pafs.FileSystem | None = None) -> None:
        from torch.utils.tensorboard import SummaryWriter  # needs the tensorboard package, a dependency

        if filesystem is None:
            filesystem, destination = filesystem_and_path(destination)
        self.filesystem, self.destination = filesystem, str(destination)
        self.staging = None if isinstance(filesystem, pafs.LocalFileSystem) else tempfile.TemporaryDirectory(prefix="tensorboard-")
        log_dir = self.destination if self.staging is None else self.staging.name
        self.writer = SummaryWriter(log_dir=log_dir, purge_step=purge_step, flush_secs=30)

    def scalars(self, step: int, values: Mapping[str, float]) -> None:
        for tag, value in values.items():
            self.writer.add_scalar(tag, value, step)

    def images(self, step: int, images: Mapping[str, np.ndarray]) -> None:
        for tag, image in images.items():
            self.writer.add_image(tag, image, step, dataformats="HWC")

    def flush(self) -> None:
        self.writer.flush()
        if self.staging is not None:
            self.filesystem.create_dir(self.destination, recursive=True)
            for name in sorted(os.listdir(self.staging.name)):
                with open(os.path.join(self.staging.name, name), "rb") as stream:
                    write_atomically(posixpath.join(self.destination, name), stream.read(), self.filesystem)

    def close(self) -> None:
        self.flush()
        self.writer.close()
        if self.staging is not None:
            self.staging.cleanup()


def label_panel(label_map: Tensor, palette: np.ndarray) -> np.ndarray:
    """An H×W class-index tensor (255 = ignore) in the dataset's colours."""
    return colorize(label_map.detach().cpu().numpy(), palette)


def image_panel(image: Tensor) -> np.ndarray:
    """A 3×H×W RGB image in [0, 1] (the datasets' items) as H×W×3 uint8."""
    return (image.detach().float().clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()


def entropy_panel(entropy: Tensor) -> np.ndarray:
    """An H×W normalised entropy map in [0, 1] (the paper's Σ_c I_c) as a grey H×W×3 uint8 image: white = uncertain."""
    grey = (entropy.detach().float().clamp(0, 1) * 255).round().byte().cpu().numpy()
    return np.repeat(grey[:, :, None], 3, axis=2)
