"""A sweep whose driver is killed resumes with --resume, reruns no finished trial and proposes no configuration twice."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest
import yaml
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from tests.processes import process_tree, run_process_tree

pytestmark = pytest.mark.slow

SPACE = {
    "name": "killed",
    "data": {"synthetic": {"seed": 0, "size": [32, 32], "num_train": 8, "num_val": 4}},
    "trainer": {"backbone": "resnet18", "multi_level": False, "param_repeats": "unique", "iterations": 6,
                "poly_horizon": 6, "eval_interval": 2, "batch_size_source": 2, "batch_size_target": 2,
                "eval_batch_size": 4, "device": "cpu"},
    "space": {"lr": {"type": "float", "low": 1e-3, "high": 5e-2, "log": True}},
    "searcher": {"sampler": "tpe", "seed": 0},
    "scheduler": {"type": "fifo"},
    "num_samples": 4, "max_concurrent": 1, "resources": {"cpu": 1},
}
ADVENT_SWEEP = str(Path(sys.executable).parent / "advent-sweep")


def completed_trials(folder: Path) -> pd.DataFrame:
    try:
        trials = pd.read_parquet(folder / "trials.parquet")
    except (FileNotFoundError, OSError):
        return pd.DataFrame({"status": []})
    return trials[trials.status == "completed"]


def ray_iterations(folder: Path, trial_id: str) -> list[int]:
    """The trainer iteration of every report Ray logged for the trial, in order (its result.json, appended per report).

    The Parquet sink keeps the first row of a (trial, iteration); this file keeps them all, so a finished trial run
    again under its id, or a trial restarted from scratch, shows here.
    """
    (trial_folder,) = [path for path in folder.iterdir() if path.is_dir() and f"_{trial_id}_" in path.name]
    lines = (trial_folder / "result.json").read_text().splitlines()
    return [json.loads(line)["iteration"] for line in lines if line.strip()]


def test_killed_driver_resumes_without_rerunning_finished_trials(tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump({**SPACE, "storage": str(tmp_path / "results")}))
    folder = tmp_path / "results" / "killed"
    with open(tmp_path / "first.log", "w") as log, \
            process_tree([ADVENT_SWEEP, "launch", str(space)], stdout=log, stderr=subprocess.STDOUT) as driver:
        deadline = time.monotonic() + 240
        while len(completed_trials(folder)) < 1:
            assert driver.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "no trial completed in time"
            time.sleep(0.5)
        driver.send_signal(signal.SIGKILL)  # no chance to save anything; leaving the block then stops its Ray
    finished_before = set(completed_trials(folder).trial_id)
    assert 1 <= len(finished_before) < 4, "the kill came before the sweep's end"
    logged_before = {trial_id: ray_iterations(folder, trial_id) for trial_id in finished_before}
    assert all(iterations == [2, 4, 6] for iterations in logged_before.values()), logged_before

    resumed = run_process_tree([ADVENT_SWEEP, "launch", str(space), "--resume"], timeout=400)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]

    reports = pd.read_parquet(folder / "reports")
    trials = pd.read_parquet(folder / "trials.parquet")
    # A trial that started after Ray last saved its state is unknown to the resume: "lost", its proposal run anew.
    lost = trials[trials.status == "lost"]
    assert (trials.status == "completed").sum() == 4 and set(trials.status) <= {"completed", "lost"}
    reports = reports[~reports.trial_id.isin(lost.trial_id)]
    assert len(reports) == 4 * 3
    before = reports[reports.trial_id.isin(finished_before)]
    assert len(before) == 3 * len(finished_before)
    for trial_id in finished_before - set(lost.trial_id):  # Ray logged no report of a finished trial again
        assert ray_iterations(folder, trial_id) == [2, 4, 6], f"finished trial {trial_id} was run again"
    for trial_id in set(trials.trial_id) - set(lost.trial_id):  # none went back to iteration 2 after a later one
        iterations = ray_iterations(folder, trial_id)
        assert iterations[-1] == 6 and iterations.count(2) == 1, f"trial {trial_id} restarted from scratch: {iterations}"

    # The Optuna study (its journal in the sweep folder) holds each trial once, told once, and no proposal twice
    journal = JournalStorage(JournalFileBackend(str(folder / "optuna-journal.log")))
    study = optuna.load_study(study_name="killed", storage=journal)
    assert [t.number for t in study.trials] == [0, 1, 2, 3]
    assert {t.state for t in study.trials} == {TrialState.COMPLETE}
    assert len({t.params["lr"] for t in study.trials}) == 4, "a resumed sampler proposed a configuration again"
    last = reports.sort_values("iteration").groupby("trial_id").tail(1)
    assert sorted((t.params["lr"], t.value) for t in study.trials) == sorted(zip(last["config.lr"], last.target_miou))
    assert all(sorted(t.intermediate_values) == [2, 4, 6] for t in study.trials)
