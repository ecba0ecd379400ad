"""Everything a run needs of its data, built and checked in one call before any training starts.

For real data the checks are: every folder, list file and image/label counterpart
exists (while the file lists are built); a held-out source list shares no image with
the training source; every image and label file opens as an intact PNG (header and
chunk CRCs, no pixel decoding; threads); a few evenly spaced target and held-out
source labels are decoded in full (format and ids); every source label is decoded
to count p_s, which checks its ids too — that last pass is cached when a
``cache_dir`` is given. Each failure is a DataError that names the path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from torch.utils.data import Dataset

from advent_sweep.data.cityscapes import cityscapes_dataset
from advent_sweep.data.config import DataConfig
from advent_sweep.data.files import LabelledImages, check_files_open, check_label_sample
from advent_sweep.data.gta5 import gta5_dataset
from advent_sweep.data.labels import protocol_class_names
from advent_sweep.data.priors import cached_source_class_prior, source_class_prior
from advent_sweep.data.synthetic import SYNTHETIC_CLASS_NAMES, synthetic_split
from advent_sweep.data.synthia import synthia_dataset
from advent_sweep.errors import DataError

TARGET_LABELS_DECODED = 8  # per target and held-out source split, at validation; the rest are checked when read


@dataclass(frozen=True)
class DomainData:
    """The datasets of one source → target pair; picklable, so Ray shares one copy among trials."""

    source: Dataset  # train, labelled
    target: Dataset  # train; holds labels, which training never uses
    target_val: Dataset  # labelled; for real data, labels at full resolution
    class_names: tuple[str, ...]
    num_classes: int
    class_prior: tuple[float, ...]  # p_s: L1-normalised source label histogram
    # labelled held-out source images, never trained on, for source-val mIoU (label-free model
    # selection); None without them. Last, with a default, so positional construction still works.
    source_val: Dataset | None = None


def build_domain_data(config: DataConfig, cache_dir: str | Path | None = None) -> DomainData:
    """Build and validate the data of ``config``; ``cache_dir`` keeps p_s of real data between runs."""
    if config.source == "synthetic":
        source = synthetic_split(config.synthetic, "source", "train")
        return DomainData(
            source=source,
            target=synthetic_split(config.synthetic, "target", "train"),
            target_val=synthetic_split(config.synthetic, "target", "val"),
            class_names=SYNTHETIC_CLASS_NAMES,
            num_classes=len(SYNTHETIC_CLASS_NAMES),
            class_prior=source_class_prior(source, len(SYNTHETIC_CLASS_NAMES)),
            source_val=synthetic_split(config.synthetic, "source", "val"),
        )
    protocol = config.resolved_protocol
    source = _real_source(config, protocol, config.source_list)
    target = cityscapes_dataset(
        config.target_root, config.target_split, config.target_list, protocol, config.target_size, config.target_size
    )
    target_val = cityscapes_dataset(
        config.target_root, config.target_val_split, config.target_val_list, protocol, config.eval_size, None
    )
    source_val = None
    if config.source_val_list is not None:
        source_val = _real_source(config, protocol, config.source_val_list)
        _check_held_out(source, source_val, config)
    sampled = [dataset for dataset in (target, target_val, source_val) if dataset is not None]
    check_files_open([source, *sampled])
    for dataset in sampled:
        check_label_sample(dataset, TARGET_LABELS_DECODED)
    if cache_dir is None:
        class_prior = source_class_prior(source, protocol)
    else:
        class_prior = cached_source_class_prior(source, protocol, cache_dir)
    return DomainData(source, target, target_val, protocol_class_names(protocol), protocol, class_prior, source_val)


def _real_source(config: DataConfig, protocol: int, list_file: str | None) -> LabelledImages:
    builder = {"gta5": gta5_dataset, "synthia": synthia_dataset}[config.source]
    return builder(config.source_root, list_file, protocol, config.source_size)


def _check_held_out(source: LabelledImages, source_val: LabelledImages, config: DataConfig) -> None:
    """A source-val image that is also trained on would flatter source-val mIoU: refuse it."""
    trained = {source.image_path(index) for index in range(len(source))}
    overlap = [index for index in range(len(source_val)) if source_val.image_path(index) in trained]
    if not overlap:
        return
    if config.source_list is not None:
        training_set = f"source_list {config.source_list}"
    else:
        training_set = f"the training source (every image under {source.image_dir}, as no source_list is given)"
    raise DataError(
        f"{config.source_val_list}: {len(overlap)} of its {len(source_val)} held-out images are also in "
        f"{training_set}, e.g. {source_val.pairs[overlap[0]][0]}; give a source_list without them"
    )
