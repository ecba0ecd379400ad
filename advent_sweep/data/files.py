"""The image/label file pairs of a real dataset: finding them, checking them, loading them.

GTA5, SYNTHIA and Cityscapes differ only in folder layout, label file format and id
table; each of their modules describes those and hands the rest to this one. A
missing folder, list file or counterpart, or an unreadable file, is a DataError
naming the path — found here, before any training starts.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from advent_sweep.data.labels import LabelTable
from advent_sweep.data.config import Size
from advent_sweep.data.transforms import label_tensor, load_rgb, resize_label
from advent_sweep.errors import DataError

LabelReader = Callable[[Path], np.ndarray]  # label file → its raw dataset ids, H×W


def require_folder(path: Path, what: str) -> None:
    """DataError unless ``path`` is a folder; ``what`` says which part of the layout it is."""
    if not path.is_dir():
        raise DataError(f"{path}: no such folder ({what})")


def read_list_file(path: str | Path) -> list[str]:
    """The names in a list file (one relative name per line, blank lines skipped)."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        raise DataError(f"{path}: list file not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: cannot read list file ({error})") from None
    names = [line.strip() for line in lines if line.strip()]
    if not names:
        raise DataError(f"{path}: list file names no images")
    return names


def find_pairs(
    image_dir: Path,
    label_dir: Path,
    image_pattern: str,
    label_pattern: str,
    label_name: Callable[[str], str],
    list_file: str | None,
) -> tuple[tuple[str, str], ...]:
    """(image name, label name) pairs, relative to their folders, in list-file or sorted order.

    With a list file exactly the listed images are used, each of which must exist with
    its label. Without one every image matching ``image_pattern`` is used, each must
    have its label, and a label matching ``label_pattern`` with no image is an error too.
    """
    if list_file is not None:
        image_names = read_list_file(list_file)
        for line, name in enumerate(image_names, start=1):
            if not (image_dir / name).is_file():
                raise DataError(f"{list_file}: line {line}: {image_dir / name} not found")
    else:
        image_names = sorted(path.relative_to(image_dir).as_posix() for path in image_dir.glob(image_pattern))
        if not image_names:
            raise DataError(f"{image_dir}: no images matching {image_pattern!r}")
    pairs = tuple((name, label_name(name)) for name in image_names)
    for image, label in pairs:
        if not (label_dir / label).is_file():
            raise DataError(f"{label_dir / label}: label not found for image {image_dir / image}")
    if list_file is None:
        expected = {label for _, label in pairs}
        for path in sorted(label_dir.glob(label_pattern)):
            if path.relative_to(label_dir).as_posix() not in expected:
                raise DataError(f"{path}: label has no image in {image_dir}")
    return pairs


def read_8bit_label_ids(path: Path) -> np.ndarray:
    """A single-channel 8-bit label file (Cityscapes ``labelIds``, GTA5 palette labels) → ids."""
    try:
        with Image.open(path) as image:
            if image.mode not in ("L", "P"):
                raise DataError(
                    f"{path}: label image has mode {image.mode}; expected one channel of label ids (mode L or P), "
                    "not a colour label"
                )
            return np.asarray(image)
    except OSError as error:
        raise DataError(f"{path}: cannot read label ({error})") from None


@dataclass(eq=False)
class LabelledImages(Dataset):
    """A real dataset: item = (image float32 3×H×W RGB in [0, 1], label int64 H×W, 255 = ignore).

    ``image_size`` / ``label_size`` are (width, height); None keeps the file's size
    (evaluation keeps full-resolution labels). Holds names, not pixels, so it
    pickles small.
    """

    name: str
    root: Path
    image_dir: Path
    label_dir: Path
    pairs: tuple[tuple[str, str], ...]
    table: LabelTable
    protocol: int
    read_label_ids: LabelReader
    image_size: Size | None
    label_size: Size | None
    _lookup: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._lookup = self.table.lookup(self.protocol)

    def __len__(self) -> int:
        return len(self.pairs)

    def image_path(self, index: int) -> Path:
        """The image file of item ``index``."""
        return self.image_dir / self.pairs[index][0]

    def label_path(self, index: int) -> Path:
        """The label file of item ``index``."""
        return self.label_dir / self.pairs[index][1]

    def load_label(self, index: int) -> np.ndarray:
        """The label file as uint8 class indices of the protocol (255 = ignore), at file resolution."""
        path = self.label_path(index)
        label_ids = self.read_label_ids(path)
        self.table.check_known(label_ids, path)
        return self._lookup[label_ids]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = load_rgb(self.image_path(index), self.image_size)
        return image, label_tensor(resize_label(self.load_label(index), self.label_size))

    def files(self) -> list[str]:
        """Every image and label file, relative to the root: what a cache key must cover."""
        return sorted(
            path.relative_to(self.root).as_posix()
            for index in range(len(self))
            for path in (self.image_path(index), self.label_path(index))
        )


def _verify(path: Path) -> None:
    try:
        with Image.open(path) as image:
            image.verify()  # PNG: every chunk's CRC, without decoding the pixels
    except (OSError, SyntaxError, ValueError) as error:
        raise DataError(f"{path}: unreadable or corrupt image file ({error})") from None


def check_files_open(datasets: Iterable[LabelledImages]) -> None:
    """DataError naming the first image or label file that does not open as an intact image."""
    paths = [
        path
        for dataset in datasets
        for index in range(len(dataset))
        for path in (dataset.image_path(index), dataset.label_path(index))
    ]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        for _ in pool.map(_verify, paths):
            pass


def check_label_sample(dataset: LabelledImages, count: int) -> None:
    """Read ``count`` evenly spaced labels in full: wrong format or unknown ids fail here, early."""
    for index in np.linspace(0, len(dataset) - 1, num=min(count, len(dataset))).round().astype(int):
        dataset.load_label(int(index))
