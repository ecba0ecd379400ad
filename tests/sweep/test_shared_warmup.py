"""A sweep's source warm-up: trained once before Ray starts, read back by every trial and by a second launch."""

import pytest

from advent_sweep.advent import warmup
from advent_sweep.data import build_domain_data
from advent_sweep.sweep.launch import prepare_warmup
from advent_sweep.errors import ConfigError
from advent_sweep.sweep.spec import SweepSpec
from advent_sweep.validation import validate

TRAINER = {
    "backbone": "resnet18", "multi_level": False, "param_repeats": "unique", "iterations": 4, "poly_horizon": 4,
    "eval_interval": 2, "batch_size_source": 2, "batch_size_target": 2, "device": "cpu",
    "source_warmup": {"iterations": 2, "lr": 1e-2},
}
DATA = {"synthetic": {"seed": 0, "size": [32, 32], "num_train": 4, "num_val": 2}}


def spec_with(storage, **space) -> SweepSpec:
    trainer = {key: value for key, value in TRAINER.items() if key not in space}
    return SweepSpec.model_validate({
        "name": "warm", "storage": str(storage), "data": DATA, "trainer": trainer, "max_concurrent": 1, "num_samples": 2,
        "space": space or {"lambda_ent_main": {"type": "float", "low": 1e-3, "high": 1.0, "log": True}},
    })


def test_a_second_launch_reads_the_warmup_back_instead_of_training_it(tmp_path, monkeypatch, capsys):
    spec = spec_with(tmp_path)
    data = build_domain_data(spec.data)
    prepare_warmup(spec, data)
    (cached,) = (tmp_path / ".cache").glob("source_warmup-*.pt")
    assert warmup.warmup_path(spec.train_config({"lambda_ent_main": 0.5}), spec.cache_dir) == str(cached)
    written = cached.stat().st_mtime_ns
    assert "trained in" in capsys.readouterr().out

    def no_training(*args):
        raise AssertionError("the cached warm-up was trained again")

    monkeypatch.setattr(warmup, "train_warmup", no_training)
    prepare_warmup(spec, data)
    assert "read back" in capsys.readouterr().out
    assert cached.stat().st_mtime_ns == written


def test_a_space_over_an_inherited_setting_leaves_warmups_to_the_trials(tmp_path):
    spec = spec_with(tmp_path, backbone={"type": "categorical", "choices": ["resnet18", "mobilenet_v3"]})
    prepare_warmup(spec, build_domain_data(spec.data))
    assert not (tmp_path / ".cache").exists()


@pytest.mark.parametrize("warm, named", [({"iterations": 0, "lr": 1e-2}, "trainer.source_warmup.iterations"),
                                         ({"iterations": 2, "lr": 1e-2, "every": 3}, "trainer.source_warmup.every")])
def test_bad_warmup_settings_in_a_space_name_the_field(tmp_path, warm, named):
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        validate(SweepSpec, {"name": "warm", "storage": str(tmp_path), "data": DATA, "max_concurrent": 1, "num_samples": 2,
                                  "trainer": {**TRAINER, "source_warmup": warm},
                                  "space": {"lr": {"type": "float", "low": 1e-3, "high": 1e-2}}}, "space.yaml")
