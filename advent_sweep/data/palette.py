"""Label colours for prediction and ground-truth images: the Cityscapes official colours, by class name.

The colours are cityscapesScripts' (helpers/labels.py), the ones valeoai/ADVENT's ``colorize_mask``
draws. A palette is looked up by class name, so the 19- and 16-class protocols and the synthetic
benchmark (whose classes are Cityscapes names: road, sidewalk, building, ...) colour one class
alike everywhere; a name Cityscapes lacks gets a fixed colour of its own. Ignored pixels (255) are black.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from advent_sweep.data.labels import CITYSCAPES_CLASS_NAMES, IGNORE_LABEL

CITYSCAPES_COLOURS: dict[str, tuple[int, int, int]] = dict(zip(CITYSCAPES_CLASS_NAMES, (
    (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153), (153, 153, 153),
    (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152), (70, 130, 180), (220, 20, 60),
    (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100), (0, 80, 100), (0, 0, 230), (119, 11, 32),
)))  # fmt: skip
IGNORE_COLOUR = (0, 0, 0)


def _fallback_colour(index: int) -> tuple[int, int, int]:
    """The PASCAL VOC bit-spreading colour of ``index + 1``: distinct, fixed, never black."""
    label, colour = index + 1, [0, 0, 0]
    for shift in range(7, -1, -1):
        for channel in range(3):
            colour[channel] |= ((label >> channel) & 1) << shift
        label >>= 3
    return colour[0], colour[1], colour[2]


def palette_for(class_names: Sequence[str]) -> np.ndarray:
    """A 256×3 uint8 table: row c is class c's colour (Cityscapes' for its names), row 255 black, unused rows black."""
    if len(class_names) > IGNORE_LABEL:
        raise ValueError(f"{len(class_names)} classes: a palette holds at most {IGNORE_LABEL} (255 is the ignore label)")
    palette = np.zeros((256, 3), dtype=np.uint8)
    for index, name in enumerate(class_names):
        palette[index] = CITYSCAPES_COLOURS.get(name) or _fallback_colour(index)
    palette[IGNORE_LABEL] = IGNORE_COLOUR
    return palette


def colorize(label_map: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """An H×W map of class indices (255 = ignore) as an H×W×3 uint8 RGB image."""
    return palette[np.asarray(label_map, dtype=np.uint8)]
