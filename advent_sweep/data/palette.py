"""Colours of the classes: the Cityscapes palette of the official label table, by class name.

The colours are those of cityscapesScripts' ``helpers/labels.py`` (also the official ADVENT
code's ``colorize_mask``), so a colourised prediction reads like every Cityscapes figure.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from advent_sweep.data.labels import IGNORE_LABEL

CITYSCAPES_COLOURS: dict[str, tuple[int, int, int]] = {
    "road": (128, 64, 128), "sidewalk": (244, 35, 232), "building": (70, 70, 70), "wall": (102, 102, 156),
    "fence": (190, 153, 153), "pole": (153, 153, 153), "traffic light": (250, 170, 30), "traffic sign": (220, 220, 0),
    "vegetation": (107, 142, 35), "terrain": (152, 251, 152), "sky": (70, 130, 180), "person": (220, 20, 60),
    "rider": (255, 0, 0), "car": (0, 0, 142), "truck": (0, 0, 70), "bus": (0, 60, 100), "train": (0, 80, 100),
    "motorcycle": (0, 0, 230), "bicycle": (119, 11, 32),
}  # fmt: skip
IGNORE_COLOUR = (0, 0, 0)  # unlabelled, as Cityscapes' void classes


def class_palette(class_names: Sequence[str]) -> np.ndarray:
    """A 256×3 uint8 table: row k the colour of class ``class_names[k]``, the ignore label (255) black."""
    table = np.zeros((256, 3), dtype=np.uint8)
    for index, name in enumerate(class_names):
        table[index] = CITYSCAPES_COLOURS[name]
    table[IGNORE_LABEL] = IGNORE_COLOUR
    return table


def colorize(label_map: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """An H×W×3 uint8 RGB image of an H×W map of class indices (0..255)."""
    return palette[label_map.astype(np.uint8)]
