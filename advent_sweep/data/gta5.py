"""GTA5 ("Playing for Data"): ``root/images/*.png`` with ``root/labels/*.png`` of the same name.

Labels are 8-bit palette PNGs whose indices are Cityscapes label ids, mapped to train
ids with the Cityscapes table, as the official ``gta5.py`` does. Its list file
(``gta5_list/all.txt``) names files relative to ``images/`` ("00001.png").
"""

from __future__ import annotations

from pathlib import Path

from advent_sweep.data.config import Size
from advent_sweep.data.files import LabelledImages, find_pairs, read_8bit_label_ids, require_folder
from advent_sweep.data.labels import CITYSCAPES_IDS


def gta5_dataset(root: str | Path, list_file: str | None, protocol: int, size: Size) -> LabelledImages:
    """The GTA5 source set, image and label resized to ``size`` (width, height)."""
    root = Path(root).resolve()  # absolute: Ray workers may run in another directory
    require_folder(root, "GTA5 root")
    image_dir, label_dir = root / "images", root / "labels"
    require_folder(image_dir, "GTA5 images")
    require_folder(label_dir, "GTA5 labels")
    pairs = find_pairs(image_dir, label_dir, "*.png", "*.png", lambda name: name, list_file)
    return LabelledImages("gta5", root, image_dir, label_dir, pairs, CITYSCAPES_IDS, protocol,
                          read_8bit_label_ids, image_size=size, label_size=size)  # fmt: skip
