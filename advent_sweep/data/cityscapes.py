"""Cityscapes: ``root/leftImg8bit/{split}/{city}/*_leftImg8bit.png`` with
``root/gtFine/{split}/{city}/*_gtFine_labelIds.png``.

As in the official ``cityscapes.py``: the label name is the image name with
"leftImg8bit" replaced by "gtFine_labelIds"; list files (``cityscapes_list/train.txt``,
``val.txt``) name images relative to ``leftImg8bit/{split}/``; ids map through the
Cityscapes table. Training resizes image and label to the target size; evaluation
resizes the image to the eval size and keeps the label at full resolution (the
official test sets the label size to 2048×1024, the files' own size).
"""

from __future__ import annotations

from pathlib import Path

from advent_sweep.data.config import Size
from advent_sweep.data.files import LabelledImages, find_pairs, read_8bit_label_ids, require_folder
from advent_sweep.data.labels import CITYSCAPES_IDS


def cityscapes_label_name(image_name: str) -> str:
    """The ``*_gtFine_labelIds.png`` name of a ``*_leftImg8bit.png`` image, as the official code forms it."""
    return image_name.replace("leftImg8bit", "gtFine_labelIds")


def cityscapes_dataset(
    root: str | Path, split: str, list_file: str | None, protocol: int, image_size: Size, label_size: Size | None
) -> LabelledImages:
    """One Cityscapes split; ``label_size`` None keeps labels at full resolution (evaluation)."""
    root = Path(root).resolve()  # absolute: Ray workers may run in another directory
    require_folder(root, "Cityscapes root")
    image_dir, label_dir = root / "leftImg8bit" / split, root / "gtFine" / split
    require_folder(image_dir, f"Cityscapes images of split {split!r}")
    require_folder(label_dir, f"Cityscapes labels of split {split!r}")
    pairs = find_pairs(image_dir, label_dir, "*/*_leftImg8bit.png", "*/*_gtFine_labelIds.png",
                       cityscapes_label_name, list_file)  # fmt: skip
    return LabelledImages(f"cityscapes/{split}", root, image_dir, label_dir, pairs, CITYSCAPES_IDS, protocol,
                          read_8bit_label_ids, image_size=image_size, label_size=label_size)  # fmt: skip
