"""Loading an image or label file at the size training wants, as the official pipeline does.

The official ADVENT code resizes the whole image (never crops): PIL bicubic for the
image, PIL nearest for the label, no flip, no other augmentation. It then converts
RGB → BGR and subtracts the Caffe mean; here that step belongs to the model (see
DESIGN.md, "Official input pipeline"), so images leave this module as RGB floats in [0, 1].
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from advent_sweep.data.config import Size  # (width, height), as PIL takes it
from advent_sweep.errors import DataError


def load_rgb(path: Path, size: Size | None) -> torch.Tensor:
    """Image file → float32 3×H×W RGB in [0, 1], resized (bicubic) to ``size`` unless None."""
    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
            if size is not None and image.size != tuple(size):
                image = image.resize(tuple(size), Image.BICUBIC)
            pixels = np.array(image)
    except (OSError, ValueError) as error:
        raise DataError(f"{path}: cannot read image ({error})") from None
    return torch.from_numpy(pixels).permute(2, 0, 1).float().div_(255.0)


def resize_label(label: np.ndarray, size: Size | None) -> np.ndarray:
    """Resize a uint8 class-index map with nearest neighbour (ids must never blend)."""
    if size is None or (label.shape[1], label.shape[0]) == tuple(size):
        return label
    return np.array(Image.fromarray(label).resize(tuple(size), Image.NEAREST))


def label_tensor(label: np.ndarray) -> torch.Tensor:
    """uint8 class-index map → int64 tensor, the dtype cross-entropy wants."""
    return torch.from_numpy(label).long()
