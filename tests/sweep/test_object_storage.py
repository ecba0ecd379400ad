"""A sweep on s3:// end to end, against a real S3 API server (moto's) that this module starts on 127.0.0.1.

The endpoint reaches every process (driver, Ray workers, the commands) the way a user points at MinIO or Ceph:
AWS_ENDPOINT_URL and the credentials in the environment, which pyarrow (ours and Ray's storage) and boto honour.
Launch through Ray, SIGKILL the driver, --resume; then best, analyze, confirm and evaluate read the s3:// sweep;
the Optuna journal's copy and the source warm-up cache are objects in the bucket.
"""

import json
import socket
import subprocess
import sys
import time

import boto3
import optuna
import pyarrow.parquet as pq
import pytest
import yaml

from advent_sweep.advent.config import TrainConfig
from advent_sweep.analysis import analyze
from advent_sweep.cli import main
from advent_sweep.storage import filesystem_and_path
from advent_sweep.sweep.study_journal import journal_storage
from tests.processes import process_tree, run_process_tree
from tests.ray_results import kill_after_a_report_of_an_unfinished_trial, ray_iterations, went_back
from tests.sweep.test_resume import ADVENT_SWEEP
from tests.sweep.test_resume import SPACE as RESUME_SPACE

pytestmark = pytest.mark.slow

BUCKET = "sweeps"
STORAGE = f"s3://{BUCKET}/runs"
SPACE = {  # the killed-driver sweep's, with a source warm-up (cached in the storage), on two learning rates
    **RESUME_SPACE, "name": "on-s3", "storage": STORAGE,
    "trainer": {**RESUME_SPACE["trainer"], "iterations": 4, "poly_horizon": 4, "source_warmup": {"iterations": 2, "lr": 1e-2}},
    "space": {"lr": {"type": "categorical", "choices": [1e-2, 2e-2]}}, "searcher": {"sampler": "grid", "seed": 0},
    "num_samples": 2,
}
FOLDER = f"{STORAGE}/on-s3"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory):
    """moto's S3 server on 127.0.0.1 (its own process, stopped by its id) and the environment that points at it."""
    port = free_port()
    server_command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    with process_tree(server_command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as server, \
            pytest.MonkeyPatch.context() as environment:
        deadline = time.monotonic() + 60
        while not listening(port):
            assert server.poll() is None, "moto's server exited"
            assert time.monotonic() < deadline, "moto's server does not listen"
            time.sleep(0.2)
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
            environment.delenv(name, raising=False)
        environment.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
        environment.setenv("AWS_ACCESS_KEY_ID", "testing")
        environment.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        environment.setenv("AWS_DEFAULT_REGION", "us-east-1")
        environment.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("user-cache")))  # the journal's local file
        environment.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        yield port
    assert not listening(port), "moto's server still listens after the module"


def objects(prefix: str) -> list[str]:
    """Keys in the bucket under ``prefix``."""
    pages = boto3.client("s3").get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return [item["Key"] for page in pages for item in page.get("Contents", [])]


def read_table(uri: str):
    filesystem, path = filesystem_and_path(uri)
    return pq.read_table(path, filesystem=filesystem).to_pandas()


@pytest.fixture(scope="module")
def s3_sweep(s3_server, tmp_path_factory):
    """The sweep launched on s3://, its driver SIGKILLed after the first trial finished, then resumed to the end."""
    folder = tmp_path_factory.mktemp("s3-sweep")
    space = folder / "space.yaml"
    space.write_text(yaml.safe_dump(SPACE))
    first_log = folder / "first.log"
    # Ray's own period for saving its state here: saving at every step (as tests/sweep/test_resume.py does) races
    # with Ray's upload of its driver folder to object storage ("Last sync command failed", Ray 2.60).
    with open(first_log, "w") as log, \
            process_tree([ADVENT_SWEEP, "launch", str(space)], stdout=log, stderr=subprocess.STDOUT) as driver:
        finished_before = kill_after_a_report_of_an_unfinished_trial(first_log, driver, timeout=300)
    resumed = run_process_tree([ADVENT_SWEEP, "launch", str(space), "--resume"], timeout=400)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    return {"finished_before": finished_before, "resumed": resumed.stdout}


def test_a_killed_s3_sweep_resumes_with_its_journal_and_warmup_in_the_bucket(s3_sweep, tmp_path):
    assert len(s3_sweep["finished_before"]) == 1, "the kill came before the sweep's end"
    assert not went_back(s3_sweep["resumed"]), "a trial resumed from its checkpoint in the bucket started over"
    trials = read_table(f"{FOLDER}/trials.parquet")
    reports = read_table(f"{FOLDER}/reports")
    # A trial that started just before the kill, after Ray last saved its state, is "lost" (a resume cannot know it);
    # the resumed searcher then runs the configuration again under a new trial.
    completed = trials[trials.status == "completed"]
    assert set(trials.status) <= {"completed", "lost"} and sorted(completed["config.lr"]) == [1e-2, 2e-2]
    assert len(reports[reports.trial_id.isin(completed.trial_id)]) == 2 * 2
    for trial_id in completed.trial_id:  # Ray's own log in the bucket, read through pyarrow's S3 filesystem
        assert ray_iterations(FOLDER, trial_id)[-1] == 4, trial_id

    keys = objects("runs/")
    assert "runs/on-s3/optuna-journal.log" in keys and "runs/on-s3/tuner.pkl" in keys
    assert any(key.startswith("runs/.cache/") for key in keys), "the source warm-up is cached in the bucket"
    assert not [key for key in keys if key.endswith(".tmp")], "no temporary of an atomic write is left"

    copy = tmp_path / "optuna-journal.log"
    copy.write_bytes(boto3.client("s3").get_object(Bucket=BUCKET, Key="runs/on-s3/optuna-journal.log")["Body"].read())
    study = optuna.load_study(study_name="on-s3", storage=journal_storage(str(copy)))
    assert sorted(t.params["lr"] for t in study.trials) == [1e-2, 2e-2]
    assert {t.state for t in study.trials} == {optuna.trial.TrialState.COMPLETE}
    last = reports[reports.trial_id.isin(completed.trial_id)].sort_values("iteration").groupby("trial_id").tail(1)
    assert sorted((t.params["lr"], t.value) for t in study.trials) == sorted(zip(last["config.lr"], last.target_miou))


def test_best_analyze_confirm_and_evaluate_read_the_s3_sweep(s3_sweep, tmp_path, capsys):
    trials = read_table(f"{FOLDER}/trials.parquet").set_index("trial_id")
    reports = read_table(f"{FOLDER}/reports")

    assert main(["best", FOLDER, "-o", str(tmp_path / "best.yaml")]) == 0
    top = reports.sort_values(["target_miou", "iteration"], ascending=[False, True]).iloc[0]
    exported = TrainConfig.from_yaml(tmp_path / "best.yaml")
    assert exported == TrainConfig.model_validate_json(trials.loc[top.trial_id, "config_json"])

    report = analyze(FOLDER, tmp_path / "analysis", progress=False)
    assert "on-s3" in report.read_text()

    # the kept checkpoint of the best trial, read from the bucket, scores what the trial reported at its iteration
    checkpoint = trials.loc[top.trial_id, "checkpoint_path"]
    assert checkpoint.startswith(f"{FOLDER}/") or checkpoint.startswith(f"{BUCKET}/runs/on-s3/"), checkpoint
    checkpoint = checkpoint if "://" in checkpoint else f"s3://{checkpoint}"
    assert main(["evaluate", checkpoint, "--quiet", "-o", str(tmp_path / "scores.json")]) == 0
    at = reports[(reports.trial_id == top.trial_id) & (reports.iteration == trials.loc[top.trial_id, "iterations"])]
    assert json.loads((tmp_path / "scores.json").read_text())["metrics"]["target_miou"] == at.target_miou.iloc[0]
    capsys.readouterr()

    confirmed = run_process_tree([ADVENT_SWEEP, "confirm", FOLDER, "--top", "1", "--seeds", "2"], timeout=400)
    assert confirmed.returncode == 0, confirmed.stdout[-3000:] + confirmed.stderr[-3000:]
    confirm_trials = read_table(f"{FOLDER}/confirm/trials.parquet")
    assert sorted(confirm_trials.status) == ["completed"] * 2
    assert {json.loads(text)["lr"] for text in confirm_trials.config_json} == {top["config.lr"]}
    assert "runs/on-s3/confirm/plan.json" in objects("runs/on-s3/confirm/")
    assert main(["best", FOLDER, "--confirmed", "-o", str(tmp_path / "confirmed.yaml")]) == 0
    assert TrainConfig.from_yaml(tmp_path / "confirmed.yaml").lr == top["config.lr"]
