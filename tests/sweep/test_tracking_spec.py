"""The space.yaml tracking: section and train's tracker flags: bad input exits 2 naming the field, and writes nothing."""

import importlib.util

import pytest
import yaml

from advent_sweep.cli import main

SPACE = {
    "name": "tracked", "data": {"synthetic": {"seed": 0, "size": [32, 32], "num_train": 8, "num_val": 4}},
    "trainer": {"backbone": "resnet18", "iterations": 4, "poly_horizon": 4, "eval_interval": 2, "device": "cpu"},
    "space": {"lr": {"type": "categorical", "choices": [1e-3, 2e-2]}},
    "scheduler": {"type": "fifo"}, "num_samples": 2, "max_concurrent": 1,
}


@pytest.fixture
def trackers_missing(monkeypatch):
    """As if neither extra were installed."""
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in ("mlflow", "wandb") else real(name, *a))


def launch_dry(tmp_path, capsys, tracking, storage=None) -> tuple[int, str]:
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump({**SPACE, "storage": storage or str(tmp_path / "storage"), "tracking": tracking}))
    code = main(["launch", str(space), "--dry-run"])
    return code, capsys.readouterr().err


@pytest.mark.parametrize(("tracking", "named"), [
    ({"neptune": {}}, "tracking.neptune"),
    ({"mlflow": {"tracking_uri": "ftp://host/x"}}, "tracking.mlflow.tracking_uri"),
    ({"mlflow": {"tracking_uri": "/a/folder"}}, "tracking.mlflow.tracking_uri"),
    ({"wandb": {"mode": "sometimes"}}, "tracking.wandb.mode"),
])
def test_a_bad_tracking_section_exits_2_naming_the_field_and_writes_nothing(tmp_path, capsys, tracking, named):
    code, error = launch_dry(tmp_path, capsys, tracking)
    assert code == 2 and named in error
    assert not (tmp_path / "storage").exists()


@pytest.mark.parametrize("tracker", ["mlflow", "wandb"])
def test_a_tracker_not_installed_exits_2_naming_the_extra(tmp_path, capsys, trackers_missing, tracker):
    code, error = launch_dry(tmp_path, capsys, {tracker: {}})
    assert code == 2 and f"tracking.{tracker}" in error and f"advent-sweep[{tracker}]" in error
    assert not (tmp_path / "storage").exists()


def test_mlflow_on_a_sweep_in_an_object_store_needs_a_tracking_uri(tmp_path, capsys):
    pytest.importorskip("mlflow")
    code, error = launch_dry(tmp_path, capsys, {"mlflow": {}}, storage="s3://bucket/sweeps")
    assert code == 2 and "tracking.mlflow.tracking_uri" in error


@pytest.mark.parametrize(("flags", "named"), [
    (["--mlflow", "ftp://host/x"], "--mlflow"),
    (["--mlflow", "sqlite:///"], "--mlflow"),
])
def test_train_with_a_bad_tracker_flag_exits_2_and_writes_nothing(tmp_path, capsys, flags, named):
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"backbone": "resnet18", "iterations": 2, "poly_horizon": 2, "device": "cpu"}))
    assert main(["train", str(config), "--output-dir", str(tmp_path / "run"), "--quiet", *flags]) == 2
    assert named in capsys.readouterr().err
    assert not (tmp_path / "run").exists() and not (tmp_path / ".advent-sweep-cache").exists()


@pytest.mark.parametrize("flags", [["--mlflow", "sqlite:////tmp/x.db"], ["--wandb", "offline"]])
def test_train_with_a_tracker_not_installed_exits_2_naming_the_extra(tmp_path, capsys, trackers_missing, flags):
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"backbone": "resnet18", "iterations": 2, "poly_horizon": 2, "device": "cpu"}))
    assert main(["train", str(config), "--output-dir", str(tmp_path / "run"), "--quiet", *flags]) == 2
    error = capsys.readouterr().err
    assert flags[0] in error and "advent-sweep[" in error
    assert not (tmp_path / "run").exists()
