"""Before Ray starts: the sweep folder (new, resumed, same spec), the metric against the data, loopback Ray."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from advent_sweep.data.labels import protocol_class_names
from advent_sweep.errors import ConfigError
from advent_sweep.sweep.launch import check_metric, check_sweep_folder
from advent_sweep.sweep.parquet_sink import write_sweep_metadata
from advent_sweep.sweep.spec import SweepSpec

TINY = {
    "name": "folder", "data": {"synthetic": {"seed": 0, "size": [32, 32], "num_train": 8, "num_val": 4}},
    "trainer": {"backbone": "resnet18", "multi_level": False, "iterations": 6, "poly_horizon": 6, "eval_interval": 2},
    "space": {"lr": {"type": "float", "low": 1e-3, "high": 1e-2}},
    "searcher": {"sampler": "random", "seed": 0}, "scheduler": {"type": "fifo"},
    "num_samples": 2, "max_concurrent": 1, "resources": {"cpu": 1},
}


def tiny_spec(storage: Path, **changes) -> SweepSpec:
    return SweepSpec.model_validate({**TINY, "storage": str(storage), **changes})


def started(spec: SweepSpec, saved: SweepSpec | None = None) -> Path:
    """A sweep folder as launch leaves it once Ray has saved its state: sweep.json and tuner.pkl."""
    saved = saved or spec
    write_sweep_metadata(spec.folder, saved.name, saved.metric, saved.mode, saved.model_dump(mode="json"))
    (Path(spec.folder) / "tuner.pkl").touch()
    return Path(spec.folder)


def test_embedded_ray_is_loopback_only_when_launch_first_imports_it(tmp_path):
    """Through launch() (folder check, data, metric) up to ``import ray``, in a fresh interpreter; Ray is not started."""
    program = """
import importlib
import sys

from advent_sweep.sweep.launch import launch
from advent_sweep.sweep.spec import SweepSpec

class RayImported(Exception):
    pass

class StopAtRay:
    def find_spec(self, name, path=None, target=None):
        if name == "ray":
            sys.meta_path.remove(self)
            constants = importlib.import_module("ray._private.ray_constants")
            print("ENABLE_RAY_CLUSTER", constants.ENABLE_RAY_CLUSTER)
            raise RayImported
        return None

assert "ray" not in sys.modules
sys.meta_path.insert(0, StopAtRay())
spec = SweepSpec.model_validate_json(sys.argv[1])
try:
    launch(spec)
except RayImported:
    print("stopped at import ray")
"""
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")}
    spec = json.dumps({**TINY, "storage": str(tmp_path)})
    done = subprocess.run([sys.executable, "-c", program, spec], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split("\n")[-3:-1] == ["ENABLE_RAY_CLUSTER False", "stopped at import ray"]


@pytest.mark.parametrize("left", ["reports", "trials.parquet", "sweep.json", "tuner.pkl"])
def test_a_new_sweep_refuses_a_folder_holding_any_sweep_file(tmp_path, left):
    spec = tiny_spec(tmp_path)
    folder = Path(spec.folder)
    folder.mkdir()
    (folder / left).mkdir() if left == "reports" else (folder / left).write_text("")
    with pytest.raises(ConfigError, match=rf"a sweep named 'folder' exists there \({left}\); pass --resume"):
        check_sweep_folder(spec, resume=False)
    assert sorted(p.name for p in folder.iterdir()) == [left]


def test_resume_needs_ray_state(tmp_path):
    spec = tiny_spec(tmp_path)
    Path(spec.folder).mkdir()
    (Path(spec.folder) / "trials.parquet").write_text("")
    with pytest.raises(ConfigError, match="--resume: no sweep to resume at .* \\(no tuner.pkl"):
        check_sweep_folder(spec, resume=True)


def test_resume_with_the_same_spec_is_accepted_wherever_the_storage_now_is(tmp_path):
    spec = tiny_spec(tmp_path)
    folder = started(spec, saved=tiny_spec(tmp_path / "where it was first"))
    saved = (folder / "sweep.json").read_text()
    assert json.loads(saved)["spec"]["storage"] != spec.storage
    check_sweep_folder(spec, resume=True)
    assert (folder / "sweep.json").read_text() == saved and sorted(p.name for p in folder.iterdir()) == ["sweep.json", "tuner.pkl"]
    with pytest.raises(ConfigError, match="in: num_samples;"):  # the same folder, one other field changed
        check_sweep_folder(tiny_spec(tmp_path, num_samples=3), resume=True)


def test_a_sweep_saved_before_a_setting_existed_resumes_with_its_default(tmp_path):
    spec = tiny_spec(tmp_path)
    started(spec)
    saved = json.loads((Path(spec.folder) / "sweep.json").read_text())
    del saved["spec"]["checkpoints"]  # as written before the checkpoints section was added
    (Path(spec.folder) / "sweep.json").write_text(json.dumps(saved))
    check_sweep_folder(spec, resume=True)
    assert "checkpoints" not in json.loads((Path(spec.folder) / "sweep.json").read_text())["spec"]
    with pytest.raises(ConfigError, match="in: checkpoints.keep_stopped;"):  # a value other than the default is a change
        check_sweep_folder(tiny_spec(tmp_path, checkpoints={"keep_stopped": True}), resume=True)


def test_resume_with_an_edited_spec_names_every_changed_field(tmp_path):
    started(tiny_spec(tmp_path))
    edited = tiny_spec(tmp_path, max_concurrent=2, searcher={"sampler": "random", "seed": 7},
                       space={"lr": {"type": "float", "low": 1e-3, "high": 5e-2}})
    with pytest.raises(ConfigError) as error:
        check_sweep_folder(edited, resume=True)
    assert "in: max_concurrent, searcher.seed, space.lr.high;" in str(error.value)


def test_the_metric_must_be_one_the_data_reports():
    synthetic = SimpleNamespace(class_names=("road", "sky", "car"), source_val=None)
    check_metric(tiny_spec(Path("/tmp"), metric="iou.sky"), synthetic)
    check_metric(tiny_spec(Path("/tmp"), metric="target_snd"), synthetic)
    with pytest.raises(ConfigError) as error:
        check_metric(tiny_spec(Path("/tmp"), metric="iou.bus"), synthetic)
    assert str(error.value) == (
        "metric: 'iou.bus' is not reported by trials on synthetic → synthetic data; "
        "allowed: target_miou, target_entropy, target_im, target_bnm, target_snd, iou.road, iou.sky, iou.car"
    )
    with pytest.raises(ConfigError, match="'source_val_miou' is not reported"):  # no held-out source split
        check_metric(tiny_spec(Path("/tmp"), metric="source_val_miou"), synthetic)
    check_metric(tiny_spec(Path("/tmp"), metric="source_val_miou"), SimpleNamespace(**{**vars(synthetic), "source_val": []}))
    with pytest.raises(ConfigError, match="'target_miou_13' is not reported"):
        check_metric(tiny_spec(Path("/tmp"), metric="target_miou_13"), synthetic)
    synthia = SimpleNamespace(class_names=protocol_class_names(16), source_val=None)
    check_metric(tiny_spec(Path("/tmp"), metric="target_miou_13"), synthia)
