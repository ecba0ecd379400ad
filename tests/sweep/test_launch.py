"""Real Ray Tune sweeps on tiny synthetic data: Parquet rows, ASHA, divergence, GPU packing, retries.

One embedded Ray (loopback only, 4 logical CPUs and 1 logical GPU) serves the module.
"""

import os
import sys
from pathlib import Path

import cloudpickle
import pandas as pd
import pytest

from advent_sweep.data import build_domain_data
from advent_sweep.sweep.launch import launch
from advent_sweep.sweep.spec import SweepSpec

pytestmark = pytest.mark.slow

TINY_DATA = {"synthetic": {"seed": 0, "size": [32, 32], "num_train": 8, "num_val": 4}}
TINY_TRAINER = {
    "backbone": "resnet18", "multi_level": False, "param_repeats": "unique", "iterations": 6, "poly_horizon": 6,
    "eval_interval": 2, "batch_size_source": 2, "batch_size_target": 2, "eval_batch_size": 4, "device": "auto",
}


def tiny_spec(storage: Path, name: str, **overrides) -> SweepSpec:
    values = {
        "name": name, "storage": str(storage), "data": TINY_DATA, "trainer": TINY_TRAINER,
        "space": {"lr": {"type": "categorical", "choices": [1e-9, 1.5e-2, 2e-2, 1e20]}},
        "searcher": {"sampler": "random", "seed": 0},
        "scheduler": {"type": "fifo"}, "num_samples": 4, "max_concurrent": 2,
        "resources": {"cpu": 1, "gpu": 0}, "max_failures": 1,
    }
    values.update(overrides)
    return SweepSpec.model_validate(values)


@pytest.fixture(scope="module")
def local_ray():
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    import ray

    ray.init(address="local", num_cpus=4, num_gpus=1, include_dashboard=False, configure_logging=False)
    yield
    ray.shutdown()


def read_sweep(folder: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    return pd.read_parquet(Path(folder) / "reports"), pd.read_parquet(Path(folder) / "trials.parquet")


@pytest.fixture(scope="module")
def asha_sweep(local_ray, tmp_path_factory):
    spec = tiny_spec(
        tmp_path_factory.mktemp("asha"), "asha",
        scheduler={"type": "asha", "grace_period": 2, "reduction_factor": 2, "max_t": 6},
        searcher={"sampler": "random", "seed": 0, "points_to_evaluate": [
            {"lr": 2e-2}, {"lr": 1.5e-2}, {"lr": 1e20}, {"lr": 1e-9}, {"lr": 1e-9}, {"lr": 1e-9}]},
        num_samples=6, resources={"cpu": 1, "gpu": 0.5},
    )
    # A new worker per trial: with reuse, trials this short can all run in the first worker (Tune hands each next
    # trial the cached worker and drops the one still starting), and then no two of them ever run at once.
    # The first two trials start together and neither diverges at once; a later trial waits for its worker to start
    # (seconds on 2 cores, longer than a trial), so the first pair is the one sure to overlap.
    return launch(spec, reuse_actors=False)


def test_asha_sweep_rows_statuses_divergence_and_gpu_packing(asha_sweep):
    reports, trials = read_sweep(asha_sweep.folder)

    assert len(trials) == 6 and trials.trial_id.is_unique
    assert not reports.duplicated(["trial_id", "iteration"]).any()
    assert len(reports) == trials.num_reports.sum()
    statuses = trials.set_index("trial_id").status
    diverged = trials[trials["config.lr"] == 1e20]
    assert set(diverged.status) == {"diverged"}
    assert "stopped" in set(statuses), "ASHA should stop a trial that does not learn"
    finished = trials[trials.status.isin(["completed", "stopped"])]
    assert len(finished) == 5, "the sweep goes on after a divergence"
    assert (trials[trials.status == "completed"].iterations == 6).all()
    assert (trials[trials.status == "stopped"].iterations < 6).all()
    for trial in finished.itertuples():
        assert sorted(reports[reports.trial_id == trial.trial_id].iteration) == list(range(2, trial.iterations + 1, 2))
    diverged_rows = reports[reports.trial_id.isin(diverged.trial_id)]
    assert len(diverged_rows) == 1 and diverged_rows.target_miou.isna().all(), "a diverged model reports no mIoU"
    assert reports.drop(diverged_rows.index).target_miou.between(0, 100).all()
    assert {"iou.road", "config.lr", "config.method", "data.source", "node"} <= set(reports.columns)
    assert (trials.resources_gpu == 0.5).all()

    # two trials at gpu: 0.5 ran at the same time on the one logical GPU
    reports["start"] = reports.timestamp - pd.to_timedelta(reports.wall_time_s, unit="s")
    spans = reports.groupby("trial_id").agg(start=("start", "min"), end=("timestamp", "max")).sort_values("start")
    overlaps = [a.end > b.start for a, b in zip(spans.itertuples(), spans.iloc[1:].itertuples())]
    assert any(overlaps)


class FailOnceDataset:
    """Raises on one item access, once per marker file: a crash in the middle of a trial."""

    def __init__(self, dataset, fail_at_access: int, marker: str) -> None:
        self.dataset, self.fail_at_access, self.marker, self.accesses = dataset, fail_at_access, marker, 0

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index):
        self.accesses += 1
        if self.accesses == self.fail_at_access and not os.path.exists(self.marker):
            Path(self.marker).touch()
            raise RuntimeError("injected failure")
        return self.dataset[index]


def test_a_failed_trial_is_retried_from_its_checkpoint(local_ray, tmp_path):
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    spec = tiny_spec(tmp_path, "retry", space={"lr": {"type": "categorical", "choices": [2e-2]}}, num_samples=1)
    data = build_domain_data(spec.data)
    marker = tmp_path / "failed-once"
    # target batches of 2: accesses 7-8 are iteration 4, after the checkpoint at iteration 2
    data = data.__class__(**{**data.__dict__, "target": FailOnceDataset(data.target, 7, str(marker))})
    outcome = launch(spec, data=data)
    reports, trials = read_sweep(outcome.folder)

    assert marker.exists()
    assert trials.status.tolist() == ["completed"]
    assert sorted(reports.iteration) == [2, 4, 6]
    assert reports.set_index("iteration").attempt.to_dict() == {2: 0, 4: 1, 6: 1}


def test_best_export_from_the_real_sink_picks_by_rule_and_retrains(asha_sweep, tmp_path):
    from advent_sweep.advent.config import TrainConfig
    from advent_sweep.analysis import export_best, load_results
    from advent_sweep.cli import main

    reports, trials = read_sweep(asha_sweep.folder)
    results = load_results(asha_sweep.folder)
    scored = reports.dropna(subset=["target_miou"])
    best_row = scored.sort_values(["target_miou", "iteration"], ascending=[False, True]).iloc[0]
    choice = export_best(results, tmp_path / "best.yaml")
    assert (choice.trial_id, choice.iteration) == (best_row.trial_id, best_row.iteration)
    assert choice.value == pytest.approx(best_row.target_miou)

    last_rows = scored.sort_values("iteration").groupby("trial_id").tail(1)
    completed = last_rows[last_rows.iteration >= 6]
    last_choice = export_best(results, tmp_path / "last.yaml", rule="last", min_iterations=6)
    assert last_choice.trial_id == completed.sort_values("target_miou", ascending=False).iloc[0].trial_id
    assert trials.set_index("trial_id").loc[last_choice.trial_id, "status"] == "completed"

    exported = TrainConfig.from_yaml(tmp_path / "best.yaml")
    trial_config = trials.set_index("trial_id").loc[choice.trial_id, "config_json"]
    assert exported == TrainConfig.model_validate_json(trial_config)
    assert main(["train", str(tmp_path / "best.yaml"), "--output-dir", str(tmp_path / "rerun"), "--quiet"]) == 0
    assert (tmp_path / "rerun" / "checkpoint.pt").exists()


def test_a_label_free_sweep_tells_optuna_and_asha_only_its_validator(local_ray, tmp_path, monkeypatch, capsys):
    """metric: target_im. The objects Ray drove are captured: every value the Optuna study and ASHA's rungs hold is
    the trial's reported IM (ASHA: at the rung's iteration) and none is a target mIoU; then best --rule target_im."""
    from advent_sweep.analysis import export_best, load_results
    from advent_sweep.cli import main
    from advent_sweep.sweep import searchers

    built = {}
    for name in ("build_search_alg", "build_scheduler"):
        real = getattr(searchers, name)
        monkeypatch.setattr(searchers, name, lambda spec, real=real, name=name: built.setdefault(name, real(spec)))
    spec = tiny_spec(
        tmp_path, "label-free", metric="target_im", num_samples=4,
        space={"lr": {"type": "float", "low": 1e-9, "high": 2e-2, "log": True}},
        searcher={"sampler": "tpe", "seed": 0, "n_startup_trials": 2},
        scheduler={"type": "asha", "grace_period": 2, "reduction_factor": 2, "max_t": 6},
    )
    assert spec.mode == "max"
    launch(spec)
    reports, trials = read_sweep(spec.folder)
    assert len(trials) == 4 and reports[["target_im", "target_bnm", "target_snd", "source_val_miou"]].notna().all().all()
    im = reports.set_index(["trial_id", "iteration"])["target_im"]
    miou = set(reports["target_miou"].round(9))

    study = built["build_search_alg"].searcher._ot_study
    assert study.direction.name == "MAXIMIZE" and len(study.trials) == 4
    told = {}
    for ot_trial in study.trials:
        ray_id = next(t for t, o in built["build_search_alg"].searcher._ot_trials.items() if o.number == ot_trial.number)
        own = im.loc[ray_id]
        assert ot_trial.value == own.loc[own.index.max()]  # the value at the trial's last report
        assert set(ot_trial.intermediate_values.values()) <= set(own)
        told[ray_id] = [ot_trial.value, *ot_trial.intermediate_values.values()]
    rungs = built["build_scheduler"]._brackets[0]._rungs
    recorded = [(milestone, trial_id, value) for milestone, values in rungs for trial_id, value in values.items()]
    assert recorded and all(value == im.loc[(trial_id, int(milestone))] for milestone, trial_id, value in recorded)
    everything = [round(v, 9) for values in told.values() for v in values] + [round(v, 9) for *_, v in recorded]
    assert not miou & set(everything)

    results = load_results(spec.folder)
    top = reports.sort_values(["target_im", "iteration"], ascending=[False, True]).iloc[0]
    choice = export_best(results, tmp_path / "best.yaml", rule="target_im")
    assert (choice.trial_id, choice.iteration, choice.metric) == (top.trial_id, top.iteration, "target_im")
    assert choice.value == top.target_im
    with pytest.raises(SystemExit) as exit_info:
        main(["best", spec.folder, "--rule", "target_accuracy"])
    assert exit_info.value.code == 2
    assert ("invalid choice: 'target_accuracy' (choose from 'best', 'last', 'target_entropy', 'target_im', 'target_bnm', "
            "'target_snd', 'source_val_miou')") in capsys.readouterr().err


def test_each_node_that_can_hold_a_trial_is_checked_for_the_weights_file(local_ray, tmp_path):
    import socket

    import torch

    from advent_sweep.errors import ConfigError
    from advent_sweep.model.backbones import BACKBONES
    from advent_sweep.sweep.launch import check_weights_on_nodes

    present, absent = tmp_path / "resnet18.pth", tmp_path / "absent.pth"
    torch.save(BACKBONES["resnet18"]().state_dict(), present)
    # (one machine: every node sees the same files, so "absent" stands for a file a node lacks)
    spec = tiny_spec(tmp_path, "weights", trainer={**TINY_TRAINER, "weights": str(absent)})
    with pytest.raises(ConfigError) as error:
        check_weights_on_nodes(spec)
    assert str(error.value) == (
        f"trainer.weights: node 127.0.0.1 ({socket.gethostname()}) lacks {absent}; every node that runs trials reads "
        "the weights at that path: put the file on a shared filesystem or into each node's image "
        "(checked 1 node(s) that can hold a trial)"
    )
    assert check_weights_on_nodes(tiny_spec(tmp_path, "w", trainer={**TINY_TRAINER, "weights": str(present)})) == ["127.0.0.1"]
    too_big = {"cpu": 1, "gpu": 2}  # the module's Ray has 1 GPU: no node can hold such a trial, none is checked
    assert check_weights_on_nodes(tiny_spec(tmp_path, "w", trainer={**TINY_TRAINER, "weights": str(absent)}, resources=too_big)) == []
    torchvision_name = {**TINY_TRAINER, "weights": "ResNet18_Weights.IMAGENET1K_V1"}  # downloaded by each node: no file to check
    assert check_weights_on_nodes(tiny_spec(tmp_path, "w", trainer=torchvision_name)) == []


def test_launch_stops_before_the_tuner_when_a_node_lacks_the_weights(local_ray, tmp_path, monkeypatch):
    import advent_sweep.sweep.launch as launching
    from advent_sweep.errors import ConfigError

    monkeypatch.setattr(launching, "check_weights_on_driver", lambda spec: None)  # the driver has it, a node does not
    absent = tmp_path / "absent.pth"
    spec = tiny_spec(tmp_path / "results", "node_lacks", trainer={**TINY_TRAINER, "weights": str(absent)})
    with pytest.raises(ConfigError, match=rf"^trainer.weights: node 127.0.0.1 \(.*\) lacks {absent};"):
        launch(spec)
    assert not Path(spec.folder).exists()  # nothing written: the Tuner never started


def test_launch_says_when_no_node_that_can_hold_a_trial_is_up(local_ray, tmp_path, monkeypatch, capsys):
    from types import SimpleNamespace

    import torch

    import advent_sweep.sweep.launch as launching
    from advent_sweep.model.backbones import BACKBONES

    monkeypatch.setattr(launching, "_tuner", lambda *args, **kwargs: SimpleNamespace(fit=lambda: None))
    monkeypatch.setattr(launching, "_outcome", lambda spec: None)
    present = tmp_path / "resnet18.pth"
    torch.save(BACKBONES["resnet18"]().state_dict(), present)
    trainer = {**TINY_TRAINER, "weights": str(present)}
    launch(tiny_spec(tmp_path / "results", "fits", trainer=trainer))
    assert "no node that can hold a trial" not in capsys.readouterr().out  # the module's node holds one and has the file
    launch(tiny_spec(tmp_path / "results", "waits", trainer=trainer, resources={"cpu": 1, "gpu": 2}))  # 1 GPU here
    assert "weights: no node that can hold a trial is up yet (an autoscaler adds them)" in capsys.readouterr().out
