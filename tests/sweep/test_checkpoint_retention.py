"""Checkpoints left after a sweep: one per trial that may resume or be evaluated, none for an ASHA-stopped trial unless kept."""

import json
from pathlib import Path

import pandas as pd
import pytest

from advent_sweep.cli import main
from advent_sweep.sweep.launch import launch
from tests.sweep.test_launch import read_sweep, tiny_spec

pytestmark = pytest.mark.slow

ASHA = {"type": "asha", "grace_period": 2, "reduction_factor": 2, "max_t": 6}
# Two learning trials reach the rung at iteration 2 first; the two that cannot learn are stopped there.
POINTS = [{"lr": 2e-2}, {"lr": 2e-2}, {"lr": 1e-9}, {"lr": 1e-9}]


@pytest.fixture(scope="module")
def local_ray():
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        import ray

        ray.init(address="local", num_cpus=4, include_dashboard=False, configure_logging=False)
        yield
        ray.shutdown()


def asha_sweep(storage: Path, name: str, **overrides):
    spec = tiny_spec(storage, name, scheduler=ASHA, searcher={"sampler": "random", "seed": 0, "points_to_evaluate": POINTS},
                     **overrides)
    return launch(spec)


def checkpoint_folders(sweep: str, trial_id: str) -> list[Path]:
    (trial_folder,) = [path for path in Path(sweep).iterdir() if path.is_dir() and f"_{trial_id}_" in path.name]
    return sorted(trial_folder.glob("checkpoint_*"))


@pytest.fixture(scope="module")
def default_sweep(local_ray, tmp_path_factory):
    return asha_sweep(tmp_path_factory.mktemp("retention"), "retention")


def test_only_the_last_checkpoint_of_each_trial_that_was_not_stopped_is_left(default_sweep, tmp_path):
    reports, trials = read_sweep(default_sweep.folder)
    assert set(trials.status) == {"completed", "stopped"}
    for trial in trials.itertuples():
        folders = checkpoint_folders(default_sweep.folder, trial.trial_id)
        if trial.status == "stopped":
            assert folders == [] and pd.isna(trial.checkpoint_path), "no row names a deleted folder"
        else:
            assert [str(folder) for folder in folders] == [trial.checkpoint_path]
            assert folders[0].name == f"checkpoint_{trial.num_reports - 1:06d}", "the last report's checkpoint"

    best = trials.set_index("trial_id").loc[default_sweep.best_trial]
    assert main(["best", default_sweep.folder, "-o", str(tmp_path / "best.yaml")]) == 0
    assert main(["evaluate", best.checkpoint_path, "--quiet", "-o", str(tmp_path / "scores.json")]) == 0
    # the checkpoint is the last report's; evaluated on the trial's thread count, it scores what the trial reported
    last = reports[(reports.trial_id == default_sweep.best_trial) & (reports.iteration == best.iterations)]
    scores = json.loads((tmp_path / "scores.json").read_text())["metrics"]
    assert len(last) == 1 and scores["target_miou"] == last.target_miou.iloc[0]
    assert scores["target_entropy"] == pytest.approx(last.target_entropy.iloc[0], rel=1e-5)  # a float32 mean


def test_keep_stopped_keeps_the_stopped_trials_last_checkpoint(local_ray, tmp_path):
    outcome = asha_sweep(tmp_path, "kept", checkpoints={"keep_stopped": True})
    _, trials = read_sweep(outcome.folder)
    assert "stopped" in set(trials.status)
    for trial in trials.itertuples():
        assert [str(folder) for folder in checkpoint_folders(outcome.folder, trial.trial_id)] == [trial.checkpoint_path]
