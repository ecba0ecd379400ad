"""What some models predict on the same few target-val images, as PNGs a report lays out (torch side).

For the first ``count`` images of target val (the same in every report of a sweep): the image, its ground
truth and each model's colourised prediction, and the entropy map of one model (the sweep's best), each
downscaled to at most ``MAX_WIDTH`` pixels wide. ``qualitative.json`` beside them lists the files, the models
(label, snapshot, iteration) and the size, so analysis lays them out without torch.
"""

from __future__ import annotations

import io
import json
import math
import posixpath
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image

from advent_sweep.advent.checkpoints import read_checkpoint, segmenter_of
from advent_sweep.data.palette import colorize, palette_for
from advent_sweep.storage import filesystem_and_path, write_atomically

MANIFEST = "qualitative.json"
QUALITATIVE_IMAGES = 4
MAX_WIDTH = 512


def _png(array: np.ndarray, size: tuple[int, int], resample: Image.Resampling) -> bytes:
    image = Image.fromarray(array)
    if image.size != size:
        image = image.resize(size, resample)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


@torch.no_grad()
def write_qualitative(models: Sequence[tuple[str, str]], dataset: Any, class_names: Sequence[str], folder: str,
                      entropy_of: str, count: int = QUALITATIVE_IMAGES) -> dict[str, Any]:
    """Write the PNGs and qualitative.json of ``models`` ((label, snapshot location), in column order) into ``folder``
    (local or a URI); ``entropy_of`` names the model whose entropy map is drawn. Returns the manifest."""
    filesystem, root = filesystem_and_path(folder)
    filesystem.create_dir(root, recursive=True)
    palette = palette_for(class_names)
    count = min(count, len(dataset))
    items = [dataset[index] for index in range(count)]
    label_h, label_w = items[0][1].shape
    size = (min(label_w, MAX_WIDTH), round(label_h * min(label_w, MAX_WIDTH) / label_w))
    files: dict[str, bytes] = {}
    rows = [{"name": f"{index:03d}", "image": f"image_{index:03d}.png", "truth": f"truth_{index:03d}.png", "predictions": {}}
            for index in range(count)]
    for row, (image, label) in zip(rows, items):
        files[row["image"]] = _png((image.permute(1, 2, 0).clamp(0, 1) * 255).round().byte().numpy(), size, Image.Resampling.BILINEAR)
        files[row["truth"]] = _png(colorize(label.numpy().astype(np.uint8), palette), size, Image.Resampling.NEAREST)
    described = []
    for column, (label, location) in enumerate(models):
        checkpoint = read_checkpoint(location)
        segmenter = segmenter_of(checkpoint, torch.device("cpu"))
        described.append({"label": label, "snapshot": location, "iteration": checkpoint.iteration})
        for row, (image, truth) in zip(rows, items):
            logits = torch.nn.functional.interpolate(segmenter(image[None])[1].float(), size=truth.shape, mode="bilinear",
                                                     align_corners=True)
            predicted = logits.argmax(dim=1)[0].byte().numpy()
            name = f"model{column}_{row['name']}.png"
            files[name] = _png(colorize(predicted, palette), size, Image.Resampling.NEAREST)
            row["predictions"][label] = name
            if label == entropy_of:
                probabilities = torch.softmax(logits, dim=1)
                entropy = torch.special.entr(probabilities).sum(dim=1)[0] / math.log(logits.shape[1])
                row["entropy"] = f"entropy_{row['name']}.png"
                files[row["entropy"]] = _png((entropy.clamp(0, 1) * 255).round().byte().numpy(), size, Image.Resampling.BILINEAR)
    for name, data in files.items():
        write_atomically(posixpath.join(root, name), data, filesystem)
    manifest = {"size": list(size), "models": described, "entropy_of": entropy_of, "images": rows}
    write_atomically(posixpath.join(root, MANIFEST), json.dumps(manifest, indent=1).encode(), filesystem)
    return manifest
