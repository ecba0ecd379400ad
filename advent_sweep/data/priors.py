"""The class-ratio prior p_s: how often each class appears in the source labels.

ADVENT's class-ratio prior loss pushes the mean target prediction towards μ·p_s.
p_s is the L1-normalised histogram of source label pixels over the protocol's
classes (255 ignored), counted at each label file's own resolution (the nearest
resize training applies changes it negligibly). Counting GTA5's 24,966 labels takes
minutes, so the cached variant stores it in a small JSON file keyed by what it
depends on, and later runs read it back.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

import numpy as np
import pyarrow.fs as pafs

from advent_sweep.storage import filesystem_and_path, write_atomically
from advent_sweep.data.files import LabelledImages
from advent_sweep.errors import DataError


class HasLabels(Protocol):
    """What the prior needs of a dataset: a name, its length and each label as class indices."""

    name: str

    def __len__(self) -> int: ...

    def load_label(self, index: int) -> np.ndarray: ...


def source_class_prior(dataset: HasLabels, num_classes: int) -> tuple[float, ...]:
    """p_s over classes 0..num_classes-1; every label is read (so every label is checked)."""

    def count(index: int) -> np.ndarray:
        return np.bincount(dataset.load_label(index).ravel(), minlength=256)[:num_classes]

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        histogram = sum(pool.map(count, range(len(dataset))), np.zeros(num_classes, dtype=np.int64))
    total = int(histogram.sum())
    if total == 0:
        where = getattr(dataset, "root", dataset.name)  # real datasets: the folder to look at
        raise DataError(f"{where}: the source labels hold no pixel of the {num_classes} scored classes")
    return tuple(float(n) / total for n in histogram)


def prior_cache_path(dataset: LabelledImages, num_classes: int, cache_dir: str | Path) -> str:
    """Where the prior of this exact file set is cached: a hash of name, protocol, root and files."""
    key = json.dumps(
        [dataset.name, dataset.protocol, num_classes, str(Path(dataset.root).resolve()), dataset.files()]
    )
    digest = hashlib.sha256(key.encode()).hexdigest()[:20]
    return f"{str(cache_dir).rstrip('/')}/class_prior-{dataset.name.replace('/', '-')}-{digest}.json"


def cached_source_class_prior(dataset: LabelledImages, num_classes: int, cache_dir: str | Path) -> tuple[float, ...]:
    """:func:`source_class_prior`, computed once per file set and then read from ``cache_dir``.

    ``cache_dir`` is a local folder or a URI (``s3://…``), so every node of a cluster reads the
    count made once beside the sweeps' shared storage.
    """
    filesystem, path = filesystem_and_path(prior_cache_path(dataset, num_classes, cache_dir))
    if filesystem.get_file_info(path).type == pafs.FileType.File:
        with filesystem.open_input_stream(path) as stream:
            return tuple(json.loads(stream.read())["class_prior"])
    prior = source_class_prior(dataset, num_classes)
    filesystem.create_dir(posixpath.dirname(path), recursive=True)
    record = {"dataset": dataset.name, "protocol": dataset.protocol, "root": str(dataset.root),
              "num_images": len(dataset), "class_prior": list(prior)}  # fmt: skip
    write_atomically(path, json.dumps(record, indent=1).encode(), filesystem)  # a concurrent reader sees no half file
    return prior
