"""Tiny dataset trees in the real layouts, written as real PNG files, for the data tests."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from advent_sweep.data.config import DataConfig


def write_rgb(path: Path, size: tuple[int, int], seed: int = 0) -> None:
    """A random 8-bit RGB image of ``size`` (width, height)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels, "RGB").save(path)


def write_ids(path: Path, ids: np.ndarray, palette: bool = False) -> None:
    """An 8-bit single-channel label file: mode L (Cityscapes labelIds) or P (GTA5)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(ids.astype(np.uint8), "L")
    if palette:
        image = image.convert("P")
        image.putpalette(list(np.random.default_rng(0).integers(0, 256, 768, dtype=np.uint8)))
    image.save(path)


def write_png16(path: Path, pixels: np.ndarray) -> None:
    """A 16-bit PNG (H×W×3 → RGB), written by hand: Pillow cannot write 16-bit colour PNGs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width, _ = pixels.shape
    raw = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in pixels)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)  # bit depth 16, colour type 2 (RGB)
    chunks = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunks)


def gta5_tree(root: Path, labels: list[np.ndarray]) -> list[str]:
    """root/images/NNNNN.png and root/labels/NNNNN.png (palette labels); returns the names."""
    names = [f"{index + 1:05d}.png" for index in range(len(labels))]
    for index, (name, ids) in enumerate(zip(names, labels)):
        write_rgb(root / "images" / name, (ids.shape[1], ids.shape[0]), seed=index)
        write_ids(root / "labels" / name, ids, palette=True)
    return names


def cityscapes_tree(root: Path, split: str, labels: list[np.ndarray], city: str = "aachen") -> list[str]:
    """leftImg8bit/{split}/{city}/*_leftImg8bit.png + gtFine/.../*_gtFine_labelIds.png; returns image names."""
    names = []
    for index, ids in enumerate(labels):
        stem = f"{city}/{city}_{index:06d}_000019"
        write_rgb(root / "leftImg8bit" / split / f"{stem}_leftImg8bit.png", (ids.shape[1], ids.shape[0]), seed=index)
        write_ids(root / "gtFine" / split / f"{stem}_gtFine_labelIds.png", ids)
        names.append(f"{stem}_leftImg8bit.png")
    return names


def synthia_tree(root: Path, class_ids: list[np.ndarray]) -> list[str]:
    """RGB/NNNNNNN.png + GT/LABELS/NNNNNNN.png: 16-bit, class id in channel 0, instance id 300+ in channel 1."""
    names = [f"{index:07d}.png" for index in range(len(class_ids))]
    for index, (name, ids) in enumerate(zip(names, class_ids)):
        write_rgb(root / "RGB" / name, (ids.shape[1], ids.shape[0]), seed=index)
        instances = np.full_like(ids, 300 + index)
        write_png16(root / "GT" / "LABELS" / name, np.stack([ids, instances, np.zeros_like(ids)], axis=-1))
    return names


def street_ids(seed: int, size: tuple[int, int] = (16, 8)) -> np.ndarray:
    """A label map of Cityscapes ids drawn from a few ids, road (7) and car (26) included."""
    return np.random.default_rng(seed).choice([0, 7, 8, 11, 21, 23, 26], size=(size[1], size[0]))


def gta5_cityscapes(tmp_path: Path, **overrides: object) -> DataConfig:
    """A GTA5 → Cityscapes tree (3 + 2 train + 2 val images, 16×8) and its DataConfig."""
    gta5_tree(tmp_path / "gta5", [street_ids(seed) for seed in range(3)])
    cityscapes_tree(tmp_path / "cityscapes", "train", [street_ids(seed) for seed in range(10, 12)])
    cityscapes_tree(tmp_path / "cityscapes", "val", [street_ids(seed) for seed in range(20, 22)], city="lindau")
    values = dict(source="gta5", target="cityscapes", source_root=str(tmp_path / "gta5"),
                  target_root=str(tmp_path / "cityscapes"), source_size=(8, 4), target_size=(8, 4),
                  eval_size=(8, 4))  # fmt: skip
    return DataConfig(**{**values, **overrides})
