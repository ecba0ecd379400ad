"""TrainConfig: defaults that depend on the backbone, and settings that cannot be combined."""

import pytest
from pydantic import ValidationError

from advent_sweep.advent.config import TrainConfig
from advent_sweep.errors import ConfigError
from advent_sweep.validation import validate


@pytest.mark.parametrize(
    ("backbone", "expected"),
    [("resnet101", "official"), ("resnet101_torchvision", "unique"), ("vgg16", "unique"),
     ("resnet18", "unique"), ("mobilenet_v3", "unique")],
)
def test_param_repeats_default_is_official_only_for_the_official_resnet101(backbone, expected):
    assert TrainConfig(backbone=backbone).param_repeats == expected


def test_explicit_param_repeats_wins_and_survives_a_round_trip():
    config = TrainConfig(backbone="resnet101", param_repeats="unique")
    assert config.param_repeats == "unique"
    assert TrainConfig(backbone="vgg16", param_repeats="official").param_repeats == "official"
    assert TrainConfig.model_validate(config.model_dump(mode="json")) == config
    assert TrainConfig().param_repeats == "official"


def test_fp16_with_official_repeats_is_rejected_naming_both_and_the_alternatives():
    with pytest.raises(ValidationError, match=r"amp: fp16 .* param_repeats: official.*amp: bf16.*param_repeats: unique"):
        TrainConfig(backbone="resnet101", amp="fp16")
    assert TrainConfig(backbone="resnet101", amp="bf16").param_repeats == "official"
    assert TrainConfig(backbone="resnet101", amp="fp16", param_repeats="unique").amp == "fp16"


def test_threads_and_deterministic_default_to_all_cores_and_off():
    config = TrainConfig()
    assert (config.threads, config.deterministic) == (None, False)
    given = TrainConfig(threads=1, deterministic=True)
    assert TrainConfig.model_validate(given.model_dump(mode="json")) == given


@pytest.mark.parametrize("threads", [0, -1, "two"])
def test_threads_below_one_or_not_a_number_is_rejected_naming_the_field(threads):
    with pytest.raises(ConfigError, match=r"invalid TrainConfig:\n  threads: Input should be"):
        validate(TrainConfig, {"threads": threads}, "run.yaml")
