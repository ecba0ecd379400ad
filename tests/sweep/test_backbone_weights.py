"""trainer.weights by backbone: each trial of a backbone sweep starts from its own backbone's weights."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import yaml

from advent_sweep.advent.config import TrainConfig
from advent_sweep.advent.warmup import warmup_config, warmup_path
from advent_sweep.cli import main
from advent_sweep.errors import ConfigError
from advent_sweep.model.backbones import BACKBONES
from advent_sweep.model.deeplabv2 import build_segmenter
from advent_sweep.sweep.spec import SweepSpec
from advent_sweep.validation import validate

# One tensor of each small backbone, set to a constant no random init gives, to tell the files apart.
MARKED = {"resnet18": ("conv1.weight", 0.125), "mobilenet_v3": ("features.0.0.weight", -0.375)}


@pytest.fixture(scope="module")
def weight_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A state-dict file per small backbone, from a randomly initialised trunk with one marked tensor."""
    folder = tmp_path_factory.mktemp("weights")
    files = {}
    for backbone, (key, value) in MARKED.items():
        torch.manual_seed(0)
        state = BACKBONES[backbone]().state_dict()
        state[key].fill_(value)
        files[backbone] = folder / f"{backbone}.pth"
        torch.save(state, files[backbone])
    return files


def spec_values(weights: object, backbones: list[str] | None = None, storage: str = "~/advent-sweep-results") -> dict:
    """A small valid space.yaml over ``backbones`` (left out: a fixed resnet18) with ``weights``."""
    values = {
        "name": "backbones",
        "storage": storage,
        "trainer": {"weights": copy.deepcopy(weights), "iterations": 300, "poly_horizon": 300, "eval_interval": 50},
        "space": {"method": {"type": "categorical", "choices": ["minent", "advent"]}},
        "num_samples": 4,
        "max_concurrent": 1,
    }
    if backbones is None:
        values["trainer"]["backbone"] = "resnet18"
    else:
        values["space"]["backbone"] = {"type": "categorical", "choices": backbones}
    return values


def problems(values: dict) -> list[str]:
    with pytest.raises(ConfigError) as error:
        validate(SweepSpec, values, "space.yaml")
    return [line.strip() for line in str(error.value).splitlines()[1:]]


def loaded_backbone(config: TrainConfig) -> dict[str, torch.Tensor]:
    """The backbone tensors of the segmenter a trial builds (as the Trainer builds it)."""
    return build_segmenter(config.backbone, 19, config.multi_level, config.weights).backbone.state_dict()


def test_each_backbone_trial_loads_its_own_weights(weight_files):
    mapping = {backbone: str(path) for backbone, path in weight_files.items()}
    spec = SweepSpec.model_validate(spec_values(mapping, ["resnet18", "mobilenet_v3"]))
    for backbone, (key, value) in MARKED.items():
        config = spec.train_config({"backbone": backbone, "method": "advent"})
        assert config.weights == str(weight_files[backbone])
        assert TrainConfig.model_validate(config.model_dump()) == config  # one value: the config reruns as is
        loaded = loaded_backbone(config)
        assert torch.all(loaded[key] == value)
        expected = torch.load(weight_files[backbone], weights_only=True)
        assert all(torch.equal(loaded[name], tensor) for name, tensor in expected.items())


def test_a_mapping_missing_a_backbone_the_space_can_choose_exits_2_naming_it(tmp_path, capsys):
    results = tmp_path / "results"
    values = spec_values({"resnet18": "ResNet18_Weights.IMAGENET1K_V1"}, ["resnet18", "mobilenet_v3"], str(results))
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(values))
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert (
        "trainer.weights: no entry for backbone 'mobilenet_v3' (a choice of space.backbone); entries: resnet18; "
        "allowed: an entry for every backbone a trial can have (resnet18, mobilenet_v3)"
    ) in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["space.yaml"] and not results.exists()


def test_an_unknown_backbone_key_is_refused_naming_it(weight_files):
    mapping = {"resnet18": str(weight_files["resnet18"]), "resnet50": "ResNet50_Weights.IMAGENET1K_V1"}
    assert problems(spec_values(mapping)) == [
        "trainer.weights: unknown backbone 'resnet50'; allowed keys: "
        "mobilenet_v3, resnet101, resnet101_torchvision, resnet18, vgg16"
    ]


def test_a_fixed_backbone_needs_its_entry():
    assert problems(spec_values({"vgg16": "VGG16_Weights.IMAGENET1K_V1"})) == [
        "trainer.weights: no entry for backbone 'resnet18' (trainer.backbone); entries: vgg16; "
        "allowed: an entry for every backbone a trial can have (resnet18)"
    ]


def test_a_conditional_backbone_needs_an_entry_for_the_default_too():
    values = spec_values({"resnet18": None, "mobilenet_v3": None}, ["resnet18", "mobilenet_v3"])
    values["space"]["backbone"]["when"] = {"method": ["advent"]}
    assert problems(values) == [
        "trainer.weights: no entry for backbone 'resnet101' (the default backbone, when space.backbone is not "
        "sampled); entries: resnet18, mobilenet_v3; allowed: an entry for every backbone a trial can have "
        "(resnet18, mobilenet_v3, resnet101)"
    ]


def test_an_entry_must_be_a_name_a_file_or_null():
    assert problems(spec_values({"resnet18": 3})) == [
        "trainer.weights.resnet18: expected a torchvision weights name (e.g. ResNet101_Weights.IMAGENET1K_V1), "
        "a state-dict file, or null (random init) (got 3)"
    ]


def test_weights_must_be_one_value_or_a_mapping():
    assert problems(spec_values(["a.pth"])) == [
        "trainer.weights: expected a torchvision weights name (e.g. ResNet101_Weights.IMAGENET1K_V1), "
        "a state-dict file, or null (random init); or a mapping backbone → one of these (got ['a.pth'])"
    ]


def test_weights_cannot_be_searched():
    values = spec_values(None)
    del values["trainer"]["weights"]
    values["space"]["weights"] = {"type": "categorical", "choices": [None, "ResNet18_Weights.IMAGENET1K_V1"]}
    assert problems(values) == [
        "space.weights: cannot be searched: the weights follow the backbone: set trainer.weights, "
        "to one value or to a mapping backbone → weights"
    ]


def test_a_trial_backbone_without_an_entry_is_refused():
    spec = SweepSpec.model_validate(spec_values({"resnet18": None}, ["resnet18"]))
    with pytest.raises(ConfigError, match=r"trainer.weights has no entry for the trial's backbone 'vgg16'; allowed: resnet18$"):
        spec.train_config({"backbone": "vgg16"})


def test_a_plain_string_keeps_working(weight_files):
    spec = SweepSpec.model_validate(spec_values(str(weight_files["resnet18"])))
    assert spec.trainer["weights"] == str(weight_files["resnet18"])
    config = spec.train_config({"method": "minent"})
    assert config.weights == str(weight_files["resnet18"])
    key, value = MARKED["resnet18"]
    assert torch.all(loaded_backbone(config)[key] == value)


def test_each_backbone_warms_up_from_its_own_weights(weight_files):
    mapping = {backbone: str(path) for backbone, path in weight_files.items()}
    values = spec_values(mapping, ["resnet18", "mobilenet_v3"])
    values["trainer"]["source_warmup"] = {"iterations": 10, "lr": 1e-3}
    spec = SweepSpec.model_validate(values)
    configs = {backbone: spec.train_config({"backbone": backbone}) for backbone in MARKED}
    assert {b: warmup_config(c).weights for b, c in configs.items()} == mapping
    assert warmup_path(configs["resnet18"], "cache") != warmup_path(configs["mobilenet_v3"], "cache")
    # launch.prepare_warmup builds the sweep's base (no trial backbone) before it sees that backbone is searched
    assert spec.train_config({}).weights is None and spec.base_config.backbone == "resnet101"


# -- weights files are checked on the driver before the data is built or Ray starts ------------


def launch_dry_run(tmp_path: Path, weights: object, capsys: pytest.CaptureFixture) -> tuple[int, str]:
    """``advent-sweep launch --dry-run`` on a small space with ``weights``: (exit code, stderr)."""
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(spec_values(weights, storage=str(tmp_path / "results"))))
    code = main(["launch", str(path), "--dry-run", "--quiet"])
    return code, capsys.readouterr().err


def test_a_missing_weights_file_exits_2_on_the_driver_naming_it(tmp_path, capsys, monkeypatch):
    built = []
    monkeypatch.setattr("advent_sweep.sweep.launch.build_domain_data", lambda *a, **k: built.append(a))
    code, err = launch_dry_run(tmp_path, str(tmp_path / "absent.pth"), capsys)
    assert code == 2
    assert f"trainer.weights: weights '{tmp_path / 'absent.pth'}': no such file, and not a torchvision weight name" in err
    assert built == [] and sorted(p.name for p in tmp_path.iterdir()) == ["space.yaml"]


def test_a_relative_weights_path_is_refused(tmp_path, capsys, monkeypatch, weight_files):
    monkeypatch.chdir(weight_files["resnet18"].parent)
    code, err = launch_dry_run(tmp_path, "resnet18.pth", capsys)
    assert code == 2
    assert "trainer.weights: 'resnet18.pth' is a relative path" in err
    assert f"e.g. {weight_files['resnet18']}" in err


def test_a_weights_file_of_another_backbone_is_refused_on_the_driver(tmp_path, capsys, weight_files):
    mapping = {"resnet18": str(weight_files["mobilenet_v3"]), "mobilenet_v3": str(weight_files["mobilenet_v3"])}
    code, err = launch_dry_run(tmp_path, mapping, capsys)
    assert code == 2
    assert f"trainer.weights: weights {weight_files['mobilenet_v3']}: do not fit backbone 'resnet18'" in err


def test_the_weights_each_backbone_loads_and_the_files_among_them(weight_files):
    from advent_sweep.sweep.launch import trial_weights
    from advent_sweep.sweep.launch import weight_files as files_of

    mapping = {"resnet18": str(weight_files["resnet18"]), "mobilenet_v3": "MobileNet_V3_Large_Weights.IMAGENET1K_V1"}
    spec = SweepSpec.model_validate(spec_values(mapping, ["resnet18", "mobilenet_v3"]))
    assert trial_weights(spec) == mapping
    assert files_of(spec) == [str(weight_files["resnet18"])]
    searched = SweepSpec.model_validate(spec_values(str(weight_files["resnet18"]), ["resnet18"]))
    assert trial_weights(searched) == {"resnet18": str(weight_files["resnet18"])}
    assert trial_weights(SweepSpec.model_validate(spec_values({"resnet18": None}))) == {}
