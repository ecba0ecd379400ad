"""A real sweep's TensorBoard tree: one run per trial at trainer iterations, served by `advent-sweep tensorboard`;
its Optuna study and, with the extras installed, its runs on a real `mlflow server` and in W&B offline run folders.

One embedded Ray (loopback only), one MLflow server (127.0.0.1, SQLite in a temporary folder; only when the
mlflow extra is installed) and one two-trial sweep serve the module; the server is stopped by its process id.
"""

import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from advent_sweep.sweep.launch import launch
from advent_sweep.sweep.spec import SweepSpec

pytestmark = pytest.mark.slow

TRAINER = {
    "backbone": "resnet18", "multi_level": False, "param_repeats": "unique", "iterations": 4, "poly_horizon": 4,
    "eval_interval": 2, "batch_size_source": 2, "batch_size_target": 2, "eval_batch_size": 4, "device": "cpu",
    "log_interval": 1, "viz_interval": 2,
}
SPEC = {
    "name": "watched", "data": {"synthetic": {"seed": 0, "size": [32, 32], "num_train": 8, "num_val": 4}},
    "trainer": TRAINER, "space": {"lr": {"type": "categorical", "choices": [1e-3, 2e-2]}},
    "searcher": {"sampler": "random", "seed": 0, "points_to_evaluate": [{"lr": 1e-3}, {"lr": 2e-2}]},
    "scheduler": {"type": "fifo"}, "num_samples": 2, "max_concurrent": 2, "resources": {"cpu": 1, "gpu": 0},
}


HAS_MLFLOW = importlib.util.find_spec("mlflow") is not None
HAS_WANDB = importlib.util.find_spec("wandb") is not None


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    """`mlflow server` on 127.0.0.1 with a SQLite store in a temporary folder; its URI. None without mlflow."""
    if not HAS_MLFLOW:
        yield None
        return
    folder, port = tmp_path_factory.mktemp("mlflow"), free_port()
    command = [str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
               "--backend-store-uri", f"sqlite:///{folder}/mlflow.db", "--artifacts-destination", str(folder / "artifacts"),
               "--workers", "1"]
    process = subprocess.Popen(command, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    uri, deadline = f"http://127.0.0.1:{port}", time.monotonic() + 180
    while time.monotonic() < deadline and process.poll() is None:
        try:
            urllib.request.urlopen(f"{uri}/health", timeout=5)
            break
        except OSError:
            time.sleep(1)
    yield uri
    process.terminate()  # by its process id; the server stops its own worker on SIGTERM
    process.wait(timeout=60)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, mlflow_server):
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    import ray

    trackers = {"mlflow": {"tracking_uri": mlflow_server}} if mlflow_server else {}
    if HAS_WANDB:
        os.environ["WANDB_SILENT"] = "true"
        trackers["wandb"] = {"project": "watched", "mode": "offline"}
    tracking = {"tracking": trackers} if trackers else {}
    ray.init(address="local", num_cpus=2, include_dashboard=False, configure_logging=False)
    try:
        outcome = launch(SweepSpec.model_validate({**SPEC, **tracking, "storage": str(tmp_path_factory.mktemp("storage"))}))
    finally:
        ray.shutdown()
    return Path(outcome.folder)


def trial_folders(sweep: Path) -> list[Path]:
    return sorted(path.parent for path in sweep.glob("*/events.out.tfevents.*"))


def test_each_trial_is_one_tensorboard_run_at_trainer_iterations_beside_rays_json_and_csv(sweep):
    trials = trial_folders(sweep)
    assert len(trials) == 2
    assert sorted("lr=0.0010" in t.name or "lr=0.0200" in t.name for t in trials) == [True, True], [t.name for t in trials]
    for trial in trials:
        assert len(list(trial.glob("events.out.tfevents.*"))) == 1, "Ray's own TensorBoard logger is off"
        assert (trial / "result.json").exists() and (trial / "progress.csv").exists()
        events = EventAccumulator(str(trial), size_guidance={"scalars": 0, "images": 0})
        events.Reload()
        scalars = events.Tags()["scalars"]
        assert not [tag for tag in scalars if tag.startswith("ray/")]
        for tag in ("loss/seg_src_main", "loss/adv_trg_main", "loss/d_main", "lr/segmenter", "discriminator/target_main"):
            assert [e.step for e in events.Scalars(tag)] == [1, 2, 3, 4], tag
        reports = [json.loads(line) for line in (trial / "result.json").read_text().splitlines()]
        assert [e.step for e in events.Scalars("eval/target_miou")] == [r["iteration"] for r in reports] == [2, 4]
        assert [e.value for e in events.Scalars("eval/target_miou")] == pytest.approx([r["target_miou"] for r in reports])
        for tag in ("train/target_prediction", "train/target_entropy", "val/0/prediction"):
            assert [(e.step, e.width, e.height) for e in events.Images(tag)] == [(2, 32, 32), (4, 32, 32)], tag


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def test_tensorboard_command_serves_the_trials_as_runs_on_loopback(sweep):
    port = free_port()
    command = [str(Path(sys.executable).parent / "advent-sweep"), "tensorboard", str(sweep), "--port", str(port)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        runs, deadline = [], time.monotonic() + 120
        while len(runs) < 2 and process.poll() is None and time.monotonic() < deadline:
            try:
                runs = get_json(f"http://127.0.0.1:{port}/data/runs")
            except OSError:
                time.sleep(0.5)
        assert sorted(runs) == sorted(t.name for t in trial_folders(sweep))
        query = urllib.parse.urlencode({"run": runs[0], "tag": "loss/seg_src_main"})
        series = get_json(f"http://127.0.0.1:{port}/data/plugin/scalars/scalars?{query}")
        assert [step for _, step, _ in series] == [1, 2, 3, 4]
        with pytest.raises(OSError):  # not on another address of this machine
            address = socket.gethostbyname(socket.gethostname())
            if address.startswith("127."):
                raise OSError("no address other than loopback to try")
            socket.create_connection((address, port), timeout=2)
    finally:
        process.kill()  # by its process id
        output = process.communicate(timeout=30)[0]
    assert f"http://127.0.0.1:{port}/" in output


def test_tensorboard_command_on_a_missing_folder_exits_2_naming_it(tmp_path, capsys):
    from advent_sweep.cli import main

    assert main(["tensorboard", str(tmp_path / "nope"), "--port", str(free_port())]) == 2
    assert "nope: no such folder" in capsys.readouterr().err


def test_optuna_study_names_its_objective_after_the_metric_and_each_trial_its_ray_id_and_folder(sweep):
    import optuna

    from advent_sweep.sweep.study_journal import JOURNAL_FILE, journal_storage

    study = optuna.load_study(study_name="watched", storage=journal_storage(str(sweep / JOURNAL_FILE)))
    assert study.metric_names == ["target_miou"]
    folders = {t.name: t for t in trial_folders(sweep)}
    attrs = [trial.user_attrs for trial in study.get_trials()]
    assert len(attrs) == 2
    for attr in attrs:
        folder = Path(attr["trial_folder"])
        assert folder.parent == sweep and folder.name in folders
        assert attr["ray_trial_id"] in folder.name
        assert json.loads((folder / "result.json").read_text().splitlines()[0])["trial_id"] == attr["ray_trial_id"]


@pytest.mark.skipif(not HAS_MLFLOW, reason="the mlflow extra is not installed")
def test_mlflow_server_holds_one_run_per_trial_with_its_config_and_metrics_at_trainer_iterations(sweep, mlflow_server):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_server)
    experiment = client.get_experiment_by_name("watched")
    runs = client.search_runs([experiment.experiment_id])
    folders = {t.name for t in trial_folders(sweep)}
    assert len(runs) == 2
    for run in runs:
        assert run.info.status == "FINISHED"
        assert any(folder.startswith(run.info.run_name) for folder in folders), run.info.run_name
        assert float(run.data.params["lr"]) in (1e-3, 2e-2) and run.data.params["data.synthetic.seed"] == "0"
        history = client.get_metric_history(run.info.run_id, "loss/seg_src_main")
        assert sorted(m.step for m in history) == [1, 2, 3, 4]
        assert sorted(m.step for m in client.get_metric_history(run.info.run_id, "eval/target_miou")) == [2, 4]


def wandb_history(run_file: Path) -> dict[str, list[int]]:
    """The steps at which each key was logged, from W&B's own dump of an offline run's records."""
    dump = subprocess.run([str(Path(sys.executable).parent / "wandb"), "beta", "leet", "inspect", str(run_file)],
                          capture_output=True, text=True, check=True, timeout=120).stdout
    steps: dict[str, list[int]] = {}
    for record in dump.split("# record ")[1:]:
        if record.split("\n", 1)[0].endswith(": history"):
            step = int(record.split("step:  {")[1].split("num:")[1].split()[0])
            for key in {line.split('"')[1] for line in record.splitlines() if "nested_key:" in line}:
                steps.setdefault(key, []).append(step)
    return steps


@pytest.mark.skipif(not HAS_WANDB, reason="the wandb extra is not installed")
def test_wandb_offline_run_folders_hold_each_trials_metrics_at_trainer_iterations(sweep):
    for trial in trial_folders(sweep):
        trial_id = json.loads((trial / "result.json").read_text().splitlines()[0])["trial_id"]
        run_files = list(trial.glob(f"wandb/offline-run-*-{trial_id}/run-{trial_id}.wandb"))
        assert len(run_files) == 1, list(trial.glob("wandb/*"))
        history = wandb_history(run_files[0])
        assert history["loss/seg_src_main"] == [1, 2, 3, 4]
        assert history["eval/target_miou"] == [2, 4]
        assert history["train/target_prediction"] == [2, 4]


def test_rays_own_readers_still_read_the_sweep_folder(sweep):
    from ray import tune
    from ray.tune import ExperimentAnalysis

    analysis = ExperimentAnalysis(str(sweep))
    assert len(analysis.trials) == 2
    assert sorted(len(frame) for frame in analysis.trial_dataframes.values()) == [2, 2]  # progress.csv: one row per report
    assert tune.Tuner.can_restore(str(sweep))
