"""The synthetic benchmark: deterministic, fast, a real colour gap over shared scene geometry."""

import pickle
from dataclasses import fields, replace

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from advent_sweep.data import DataConfig, SyntheticConfig, build_domain_data
from advent_sweep.data.config import TargetStyle
from advent_sweep.data.synthetic import DOMAINS, SPLITS, STYLES, SYNTHETIC_CLASS_NAMES, Style, domain_style, synthetic_split

SMALL = SyntheticConfig(seed=3, num_train=40, num_val=10)


def every_split(config):
    return {(domain, split): synthetic_split(config, domain, split) for domain in DOMAINS for split in SPLITS}


def class_mean_colours(scenes):
    pixels = scenes.images.permute(0, 2, 3, 1).reshape(-1, 3).double()
    labels = scenes.labels.reshape(-1)
    return torch.stack([pixels[labels == index].mean(0) for index in range(len(SYNTHETIC_CLASS_NAMES))])


def class_frequencies(scenes):
    return np.bincount(scenes.labels.numpy().ravel(), minlength=len(SYNTHETIC_CLASS_NAMES)) / scenes.labels.numel()


def test_same_seed_gives_identical_bytes():
    first, second = every_split(SMALL), every_split(SMALL)
    for key in first:
        assert first[key].images.numpy().tobytes() == second[key].images.numpy().tobytes()
        assert first[key].labels.numpy().tobytes() == second[key].labels.numpy().tobytes()


def test_another_seed_gives_other_scenes():
    first = synthetic_split(SMALL, "source", "train")
    other = synthetic_split(SMALL.model_copy(update={"seed": 4}), "source", "train")
    assert not torch.equal(first.labels, other.labels) and not torch.equal(first.images, other.images)


def test_splits_and_domains_are_different_scenes():
    scenes = every_split(SMALL)
    assert not torch.equal(scenes["source", "train"].labels[:10], scenes["source", "val"].labels)
    assert not torch.equal(scenes["source", "train"].labels, scenes["target", "train"].labels)


def test_every_class_appears_in_every_split():
    for scenes in every_split(SMALL).values():
        assert (class_frequencies(scenes) > 0.005).all(), scenes.name


def test_target_style_shifts_every_class_colour():
    scenes = every_split(SyntheticConfig(seed=0))
    source, target = class_mean_colours(scenes["source", "train"]), class_mean_colours(scenes["target", "train"])
    distance = (source - target).norm(dim=1)
    assert (distance > 15).all(), dict(zip(SYNTHETIC_CLASS_NAMES, distance.tolist()))  # 0–255 RGB units
    assert distance.mean() > 40


def test_both_domains_share_the_scene_geometry():
    scenes = every_split(SyntheticConfig(seed=0))
    gap = np.abs(class_frequencies(scenes["source", "train"]) - class_frequencies(scenes["target", "train"]))
    assert gap.max() < 0.03


def test_default_benchmark_is_small_and_well_formed():
    data = build_domain_data(DataConfig())
    assert data.class_names == SYNTHETIC_CLASS_NAMES and data.num_classes == 7
    assert (len(data.source), len(data.target), len(data.target_val), len(data.source_val)) == (200, 200, 50, 50)
    assert abs(sum(data.class_prior) - 1) < 1e-12
    image, label = data.target_val[0]
    assert image.shape == (3, 64, 64) and image.dtype == torch.float32 and 0 <= image.min() and image.max() <= 1
    assert label.shape == (64, 64) and label.dtype == torch.int64 and label.max() < 7
    assert data.source.images.dtype == torch.uint8
    assert len(pickle.dumps(data)) < 500 * 4 * 64 * 64 + 100_000  # 500 scenes, uint8 image and label, no copies


def test_size_is_width_by_height():
    scenes = synthetic_split(SyntheticConfig(size=(48, 32), num_train=2, num_val=1), "target", "val")
    image, label = scenes[0]
    assert image.shape == (3, 32, 48) and label.shape == (32, 48)


def test_source_val_is_reproducible_held_out_source_scenes():
    first, second = build_domain_data(DataConfig(synthetic=SMALL)), build_domain_data(DataConfig(synthetic=SMALL))
    assert len(first.source_val) == SMALL.num_val == 10
    assert first.source_val.images.numpy().tobytes() == second.source_val.images.numpy().tobytes()
    assert first.source_val.labels.numpy().tobytes() == second.source_val.labels.numpy().tobytes()
    assert not torch.equal(first.source_val.labels, first.source.labels[: SMALL.num_val])
    assert not torch.equal(first.source_val.labels, first.target_val.labels)


def test_source_val_list_is_refused_for_synthetic_data():
    with pytest.raises(ValidationError, match="source_val_list applies to real datasets only"):
        DataConfig(source_val_list="held_out.txt")


def test_target_style_overrides_the_target_rendering_only_and_reproducibly():
    flat = SyntheticConfig(seed=3, num_train=40, num_val=10, target_style={"noise": 0.0})
    dark = flat.model_copy(update={"target_style": TargetStyle(noise=0.0, brightness=0.4)})
    plain, flat_splits, dark_splits = every_split(SMALL), every_split(flat), every_split(dark)
    for split in SPLITS:
        assert plain["source", split].images.numpy().tobytes() == dark_splits["source", split].images.numpy().tobytes()
        assert torch.equal(plain["target", split].labels, dark_splits["target", split].labels)
    assert dark_splits["target", "train"].images.numpy().tobytes() == every_split(dark)["target", "train"].images.numpy().tobytes()
    # Brightness 0.4 instead of the built-in 0.8, no noise: every pixel halves (contrast keeps the mean; rounding aside).
    ratio = dark_splits["target", "train"].images.double().mean() / flat_splits["target", "train"].images.double().mean()
    assert ratio.item() == pytest.approx(0.5, abs=0.005)


def test_target_style_keeps_every_builtin_value_it_does_not_name():
    config = SyntheticConfig(target_style={"blur": 0.0, "tint": [1, 1, 1]})
    assert domain_style(config, "target") == replace(STYLES["target"], blur=0.0, tint=(1.0, 1.0, 1.0))
    assert domain_style(config, "source") is STYLES["source"] and domain_style(SyntheticConfig(), "target") is STYLES["target"]
    assert set(TargetStyle.model_fields) == {field.name for field in fields(Style)}


@pytest.mark.parametrize("style, named", [
    ({"fog": 0.5}, "fog"),
    ({"palette": [[0, 0, 0]] * 6}, "palette"),  # one colour per class: 7
    ({"tint": [1.0, 0.0, 1.0]}, "tint.1"),
    ({"noise": 300}, "noise"),
])
def test_bad_target_style_names_the_field(style, named):
    with pytest.raises(ValidationError, match=rf"target_style\.{named}"):
        DataConfig.model_validate({"synthetic": {"target_style": style}})
