"""Saving what a model predicts on target images: what ``advent-sweep evaluate --save-predictions DIR`` writes.

Per image, named after it (a Cityscapes image ``aachen_000000_000019_leftImg8bit.png`` as
``aachen_000000_000019``, a synthetic one by its index):

- ``DIR/color/<name>.png``: the prediction in the Cityscapes palette (data/palette.py);
- ``DIR/entropy/<name>.png``: the normalised entropy Σ_c −p_c log p_c / log C per pixel, black 0 to white 1;
- ``DIR/labelIds/<name>_labelIds.png`` (Cityscapes targets): the prediction's train ids mapped back to
  Cityscapes label ids, at the label's full resolution, as cityscapesScripts' evalPixelLevelSemanticLabeling
  reads them (``CITYSCAPES_RESULTS=DIR/labelIds``). In a folder of its own: that evaluator refuses a folder
  holding two PNGs of one image.

For an ensemble, the prediction and entropy are those of the weighted logits. PNG encoding runs in a thread
pool beside inference (zlib releases the GIL).
"""

from __future__ import annotations

import math
import os
import tempfile
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from advent_sweep.data.labels import CITYSCAPES_IDS, PROTOCOL_TRAIN_IDS
from advent_sweep.data.palette import colorize, palette_for
from advent_sweep.errors import InputError

FOLDERS = ("color", "entropy", "labelIds")
WRITER_THREADS = 2


def check_predictions_folder(folder: Path, flag: str = "--save-predictions") -> None:
    """``folder`` must be a folder this process can write into (made if missing), before any inference."""
    blocking = next((p for p in (folder, *folder.parents) if p.exists()), None)
    if blocking is not None and not blocking.is_dir():
        raise InputError(f"{flag} {folder}: {blocking} is a file; allowed: a folder, or a path where one can be created")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise InputError(f"{flag} {folder}: cannot write there ({error.strerror}); allowed: a folder this user can write to") from None


def cityscapes_label_ids(dataset: Any) -> np.ndarray | None:
    """Class index → Cityscapes label id for a Cityscapes dataset (its protocol's train ids mapped back); else None."""
    if getattr(dataset, "table", None) is not CITYSCAPES_IDS:
        return None
    label_of_train_id = {train_id: label_id for label_id, train_id in CITYSCAPES_IDS.to_train_id.items()}
    return np.array([label_of_train_id[t] for t in PROTOCOL_TRAIN_IDS[dataset.protocol]], dtype=np.uint8)


def image_names(dataset: Any, count: int) -> list[str]:
    """The first ``count`` images' output names: a file's stem less ``_leftImg8bit``, else the index."""
    if hasattr(dataset, "image_path"):
        return [Path(dataset.image_path(i)).stem.removesuffix("_leftImg8bit") for i in range(count)]
    return [f"{i:05d}" for i in range(count)]


class PredictionWriter:
    """Called with each batch's logits (B×C×H×W, dataset order), it writes each image's PNGs; ``close`` waits for them."""

    def __init__(self, folder: Path, dataset: Any, count: int, class_names: tuple[str, ...]) -> None:
        self.folder = folder
        self.names = image_names(dataset, count)
        self.palette = palette_for(class_names)
        self.label_ids = cityscapes_label_ids(dataset)
        self.written = 0
        self.pending: list[Future] = []
        self.pool = ThreadPoolExecutor(WRITER_THREADS, thread_name_prefix="predictions")
        for name in FOLDERS[:2] + (FOLDERS[2:] if self.label_ids is not None else ()):
            (folder / name).mkdir(parents=True, exist_ok=True)

    def __call__(self, logits: Tensor) -> None:
        probabilities = torch.softmax(logits.float(), dim=1)
        entropy = torch.special.entr(probabilities).sum(dim=1) / math.log(logits.shape[1])
        classes = logits.argmax(dim=1).to(torch.uint8).cpu().numpy()
        entropy = (entropy.clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
        for predicted, uncertain in zip(classes, entropy):
            self.pending.append(self.pool.submit(self._write, self.names[self.written], predicted, uncertain))
            self.written += 1

    def _write(self, name: str, predicted: np.ndarray, uncertain: np.ndarray) -> None:
        Image.fromarray(colorize(predicted, self.palette), "RGB").save(self.folder / "color" / f"{name}.png")
        Image.fromarray(uncertain, "L").save(self.folder / "entropy" / f"{name}.png")
        if self.label_ids is not None:
            Image.fromarray(self.label_ids[predicted], "L").save(self.folder / "labelIds" / f"{name}_labelIds.png")

    def close(self) -> int:
        """Wait for every write (re-raising the first error); the number of images written."""
        try:
            for future in self.pending:
                future.result()
        finally:
            self.pool.shutdown(wait=True, cancel_futures=True)
        return self.written


def describe(folder: Path) -> dict[str, str]:
    """Where each kind of PNG went, for scores.json."""
    return {kind: os.fspath(folder / kind) for kind in FOLDERS if (folder / kind).is_dir()}
