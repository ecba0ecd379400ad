"""A sweep whose driver is killed resumes with --resume, reruns no finished trial and proposes no configuration twice."""

import subprocess
import sys
from pathlib import Path

import optuna
import pandas as pd
import pytest
import yaml
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from tests.processes import process_tree, run_process_tree
from tests.ray_results import kill_after_a_report_of_an_unfinished_trial, resumed_at, trial_events, went_back

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


def test_killed_driver_resumes_without_rerunning_finished_trials(tmp_path, monkeypatch):
    """Evidence the Parquet sink cannot hide (it keeps the first row of a trial and iteration): the resumed driver's
    Tune events. A finished trial run again would start again; a trial restarted from scratch would report an
    iteration at or below the one it was resumed at."""
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump({**SPACE, "storage": str(tmp_path / "results")}))
    folder = tmp_path / "results" / "killed"
    monkeypatch.setenv("TUNE_GLOBAL_CHECKPOINT_S", "0")  # Ray saves its state at every step: the kill loses no report
    first_log = tmp_path / "first.log"
    with open(first_log, "w") as log, \
            process_tree([ADVENT_SWEEP, "launch", str(space)], stdout=log, stderr=subprocess.STDOUT) as driver:
        finished_before = kill_after_a_report_of_an_unfinished_trial(first_log, driver, timeout=300)
    # leaving the block stopped the killed driver's Ray
    assert 1 <= len(finished_before) < 4, "the kill came before the sweep's end"

    resumed = run_process_tree([ADVENT_SWEEP, "launch", str(space), "--resume"], timeout=400)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    events = trial_events(resumed.stdout)
    assert not finished_before & set(events), f"a finished trial ran again: {[events[t] for t in finished_before & set(events)]}"
    assert any(at >= 2 for at in resumed_at(resumed.stdout).values()), f"no trial went on from a checkpoint:\n{resumed.stdout}"
    assert not went_back(resumed.stdout), f"restarted from scratch: {went_back(resumed.stdout)}"

    reports = pd.read_parquet(folder / "reports")
    trials = pd.read_parquet(folder / "trials.parquet")
    # A trial that started after Ray last saved its state is unknown to the resume: "lost", its proposal run anew.
    lost = trials[trials.status == "lost"]
    assert (trials.status == "completed").sum() == 4 and set(trials.status) <= {"completed", "lost"}
    reports = reports[~reports.trial_id.isin(lost.trial_id)]
    assert len(reports) == 4 * 3
    assert set(finished_before) <= set(trials.trial_id[trials.status == "completed"])

    # The Optuna study (its journal in the sweep folder) holds each trial once, told once, and no proposal twice
    journal = JournalStorage(JournalFileBackend(str(folder / "optuna-journal.log")))
    study = optuna.load_study(study_name="killed", storage=journal)
    assert [t.number for t in study.trials] == [0, 1, 2, 3]
    assert {t.state for t in study.trials} == {TrialState.COMPLETE}
    assert len({t.params["lr"] for t in study.trials}) == 4, "a resumed sampler proposed a configuration again"
    last = reports.sort_values("iteration").groupby("trial_id").tail(1)
    assert sorted((t.params["lr"], t.value) for t in study.trials) == sorted(zip(last["config.lr"], last.target_miou))
    assert all(sorted(t.intermediate_values) == [2, 4, 6] for t in study.trials)
