"""Worker reuse: a sweep's trials share worker processes, and no trial's numbers depend on the one before it."""

import json
import random

import numpy as np
import pandas as pd
import pytest
import torch

from advent_sweep.sweep.launch import launch
from advent_sweep.sweep.trainable import process_state_restored
from tests.sweep.test_launch import read_sweep, tiny_spec

X, Y = 2e-2, 1.5e-2
ORDER = [X, X, Y, Y, X, X]  # the two Y trials start where X trials ran, and the last X trials where Y trials ran


def test_a_trial_leaves_the_process_as_it_found_it():
    torch.set_num_threads(1)
    torch.manual_seed(5), np.random.seed(5), random.seed(5)

    with pytest.raises(SystemExit), process_state_restored():  # Tune stops a trial by a SystemExit in tune.report
        torch.set_num_threads(2)
        torch.manual_seed(0), np.random.seed(0), random.seed(0)
        torch.backends.cudnn.deterministic = True
        torch.use_deterministic_algorithms(True, warn_only=True)
        raise SystemExit(0)

    threads, draws = torch.get_num_threads(), (torch.rand(3), np.random.rand(3), random.random())
    torch.manual_seed(5), np.random.seed(5), random.seed(5)
    assert threads == 1
    assert torch.equal(draws[0], torch.rand(3)) and np.array_equal(draws[1], np.random.rand(3)) and draws[2] == random.random()
    assert not torch.backends.cudnn.deterministic and not torch.are_deterministic_algorithms_enabled()


@pytest.mark.slow
def test_six_trials_run_in_two_workers_and_equal_configs_report_equal_numbers(tmp_path, monkeypatch):
    monkeypatch.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    import ray

    ray.init(address="local", num_cpus=4, include_dashboard=False, configure_logging=False)
    try:
        spec = tiny_spec(tmp_path, "reuse", num_samples=6, searcher={
            "sampler": "random", "seed": 0, "points_to_evaluate": [{"lr": lr} for lr in ORDER]})
        outcome = launch(spec)
    finally:
        ray.shutdown()
    reports, trials = read_sweep(outcome.folder)
    assert (trials.status == "completed").all() and len(trials) == 6

    pids = {}
    for result_file in (tmp_path / "reuse").glob("*/result.json"):
        for line in result_file.read_text().splitlines():
            result = json.loads(line)
            pids[result["trial_id"]] = result["pid"]
    assert len(pids) == 6 and len(set(pids.values())) <= 2, pids

    reports["start"] = reports.timestamp - pd.to_timedelta(reports.wall_time_s, unit="s")
    runs = reports.groupby("trial_id").agg(start=("start", "min"), lr=("config.lr", "first")).sort_values("start")
    runs["pid"] = runs.index.map(pids)
    after_the_other = [trial for _, worker in runs.groupby("pid") for (_, before), (trial, now) in
                       zip(worker.iloc[:-1].iterrows(), worker.iloc[1:].iterrows()) if before.lr != now.lr]
    assert after_the_other, "some trial ran in a worker where the other configuration ran before it"

    curves = reports.pivot(index="trial_id", columns="iteration", values="target_miou")
    for lr in (X, Y):
        same = curves.loc[runs.index[runs.lr == lr]]
        assert (same.nunique() == 1).all(), f"lr {lr}: the trials' target_miou differ at some iteration\n{same}"
