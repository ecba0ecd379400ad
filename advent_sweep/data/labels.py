"""Label tables (dataset ids → Cityscapes train ids), the 19/16-class protocols and mIoU*.

Two kinds of "outside the table" are kept apart on purpose:

- an id the dataset defines but the protocol does not score (Cityscapes id 0
  "unlabeled", SYNTHIA's terrain under the 16-class protocol, ...) maps to
  :data:`IGNORE_LABEL`, as in the official code;
- an id the dataset does not define at all (id 40 in a Cityscapes ``labelIds``
  file) means the file is not what it claims to be — a colour label, the wrong
  dataset — and is a :class:`~advent_sweep.errors.DataError`.

Protocols keep the 19-class Cityscapes order and drop classes, re-indexing the rest
from 0, as the official SYNTHIA code of the ADVENT authors does (DADA's
``synthia.py``): 16 classes drop terrain, truck and train. So under protocol 16, sky
is class 9 and bicycle class 15. There is no 13-class training protocol: as in the
paper, SYNTHIA → Cityscapes trains ONE 16-class model and scores its predictions on
the 16 classes (mIoU) and on 13 of them (mIoU*: the 16 less wall, fence and pole).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from advent_sweep.errors import DataError

IGNORE_LABEL = 255

CITYSCAPES_CLASS_NAMES = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light",
    "traffic sign", "vegetation", "terrain", "sky", "person", "rider", "car",
    "truck", "bus", "train", "motorcycle", "bicycle",
)  # fmt: skip

# The Cityscapes train ids (indices into CITYSCAPES_CLASS_NAMES) each protocol scores, in order.
PROTOCOL_TRAIN_IDS: dict[int, tuple[int, ...]] = {
    19: tuple(range(19)),
    16: tuple(i for i in range(19) if i not in (9, 14, 16)),
}

# SYNTHIA's mIoU* (the paper's 13-class score): the 16-class protocol's train ids less wall, fence, pole.
MIOU_13_TRAIN_IDS: tuple[int, ...] = tuple(i for i in PROTOCOL_TRAIN_IDS[16] if i not in (3, 4, 5))
MIOU_13_CLASS_NAMES: tuple[str, ...] = tuple(CITYSCAPES_CLASS_NAMES[i] for i in MIOU_13_TRAIN_IDS)


def protocol_class_names(protocol: int) -> tuple[str, ...]:
    """The names of the classes a protocol scores, in class-index order."""
    return tuple(CITYSCAPES_CLASS_NAMES[i] for i in PROTOCOL_TRAIN_IDS[protocol])


def scores_miou_13(class_names: Sequence[str]) -> bool:
    """Data with the 16-class SYNTHIA protocol's classes is also scored as mIoU* (``target_miou_13``)."""
    return tuple(class_names) == protocol_class_names(16)


@dataclass(frozen=True)
class LabelTable:
    """The ids a dataset's label files may hold, and which Cityscapes train id each one is."""

    name: str
    known_ids: frozenset[int]
    to_train_id: Mapping[int, int]

    def lookup(self, protocol: int) -> np.ndarray:
        """A uint8 array indexed by any 16-bit id: the protocol's class index, or 255."""
        class_of_train_id = {train_id: index for index, train_id in enumerate(PROTOCOL_TRAIN_IDS[protocol])}
        table = np.full(1 << 16, IGNORE_LABEL, dtype=np.uint8)
        for label_id, train_id in self.to_train_id.items():
            if train_id in class_of_train_id:
                table[label_id] = class_of_train_id[train_id]
        return table

    def check_known(self, label_ids: np.ndarray, path: object) -> None:
        """Raise DataError naming ``path`` if ``label_ids`` holds an id this table does not define."""
        present = np.flatnonzero(np.bincount(label_ids.ravel()))
        unknown = sorted(set(present.tolist()) - self.known_ids)
        if unknown:
            shown = ", ".join(map(str, unknown[:10])) + (", ..." if len(unknown) > 10 else "")
            raise DataError(f"{path}: label ids {shown} are not {self.name} (expected {self.describe_known()})")

    def describe_known(self) -> str:
        """The known ids as runs, e.g. ``0..33, 255``."""
        runs: list[list[int]] = []
        for label_id in sorted(self.known_ids):
            if runs and label_id == runs[-1][1] + 1:
                runs[-1][1] = label_id
            else:
                runs.append([label_id, label_id])
        return ", ".join(str(first) if first == last else f"{first}..{last}" for first, last in runs)


# Cityscapes labelIds; GTA5's label files use the same ids. 255 is accepted as already-ignored.
CITYSCAPES_IDS = LabelTable(
    name="Cityscapes label ids",
    known_ids=frozenset(range(34)) | {IGNORE_LABEL},
    to_train_id={
        7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9,
        23: 10, 24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18,
    },
)  # fmt: skip

# SYNTHIA-RAND-CITYSCAPES class ids (first channel of GT/LABELS/*.png): 0 void .. 22 lane marking.
SYNTHIA_IDS = LabelTable(
    name="SYNTHIA class ids",
    known_ids=frozenset(range(23)),
    to_train_id={
        3: 0, 4: 1, 2: 2, 21: 3, 5: 4, 7: 5, 15: 6, 9: 7, 6: 8, 1: 10,
        10: 11, 17: 12, 8: 13, 19: 15, 12: 17, 11: 18,
    },
)  # fmt: skip
