"""SYNTHIA-RAND-CITYSCAPES: ``root/RGB/*.png`` with ``root/GT/LABELS/*.png`` of the same name.

The label files are 16-bit PNGs with the SYNTHIA class id in the FIRST channel (the
second holds instance ids). Pillow cannot read them: it keeps only the high byte of
each 16-bit sample, which is 0 for every class id, and torchvision's decoders are
deprecated. OpenCV keeps all 16 bits (its channels come in BGR(A) order). The official
ADVENT code has no SYNTHIA loader; the authors' DADA code reads labels the same way
(first channel) and maps them with the table in ``labels.py``.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from advent_sweep.data.config import Size
from advent_sweep.data.files import LabelledImages, find_pairs, require_folder
from advent_sweep.data.labels import SYNTHIA_IDS
from advent_sweep.errors import DataError


def read_synthia_label_ids(path: Path) -> np.ndarray:
    """The class ids in a SYNTHIA label PNG: its first channel, all 16 bits kept."""
    pixels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if pixels is None:
        raise DataError(f"{path}: cannot read label (not a readable PNG)")
    return pixels if pixels.ndim == 2 else pixels[..., 2]  # BGR(A): the file's first channel, R, is index 2


def synthia_dataset(root: str | Path, list_file: str | None, protocol: int, size: Size) -> LabelledImages:
    """The SYNTHIA source set, image and label resized to ``size`` (width, height)."""
    root = Path(root).resolve()  # absolute: Ray workers may run in another directory
    require_folder(root, "SYNTHIA root")
    image_dir, label_dir = root / "RGB", root / "GT" / "LABELS"
    require_folder(image_dir, "SYNTHIA images")
    require_folder(label_dir, "SYNTHIA labels")
    pairs = find_pairs(image_dir, label_dir, "*.png", "*.png", lambda name: name, list_file)
    return LabelledImages("synthia", root, image_dir, label_dir, pairs, SYNTHIA_IDS, protocol,
                          read_synthia_label_ids, image_size=size, label_size=size)  # fmt: skip
