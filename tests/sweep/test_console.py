"""The console of `advent-sweep launch`: a line per trial event; --verbose gives Ray's own output back.

Each test runs the CLI, which starts (and shuts down) its own loopback-only Ray.
"""

import re

import pandas as pd
import pytest
import yaml

from advent_sweep.cli import main
from tests.sweep.test_launch import tiny_spec

pytestmark = pytest.mark.slow

LINE = re.compile(r"^\[\d+:\d\d:\d\d\] trial (\S+) (.*)$")
RAY_TABLE = re.compile(r"[╭╰│]|^\+-+\+|Trial status")


@pytest.fixture(autouse=True)
def loopback_ray(monkeypatch):
    monkeypatch.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # what launch sets for its own Ray, undone after


def space_file(tmp_path, name: str, **overrides) -> str:
    spec = tiny_spec(tmp_path / "results", name, **overrides)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec.model_dump(mode="json")))
    return str(path)


def test_a_sweep_prints_one_line_per_trial_start_report_and_end(tmp_path, capfd):
    space = space_file(
        tmp_path, "console", scheduler={"type": "asha", "grace_period": 2, "reduction_factor": 2, "max_t": 6},
        searcher={"sampler": "random", "seed": 0, "points_to_evaluate": [{"lr": 2e-2}, {"lr": 2e-2}, {"lr": 1e-9}, {"lr": 1e-9}]},
    )
    assert main(["launch", space]) == 0
    out, err = capfd.readouterr()
    trials = pd.read_parquet(tmp_path / "results" / "console" / "trials.parquet").set_index("trial_id")

    events = [LINE.match(line).groups() for line in out.splitlines() if LINE.match(line)]
    for trial in trials.itertuples():
        texts = [text for trial_id, text in events if trial_id == trial.Index]
        assert sum(text.startswith("started: lr=") for text in texts) == 1
        assert sum(text.startswith("iteration ") and ": target_miou " in text for text in texts) == trial.num_reports
        end = "completed at" if trial.status == "completed" else "stopped by the scheduler at"
        assert [text for text in texts if " at iteration " in text] == [f"{end} iteration {trial.iterations}: target_miou "
                                                                        f"{trial.last_value:.4g}"]
        assert len(texts) == trial.num_reports + 2
    assert len(events) == len(trials) * 2 + trials.num_reports.sum()
    assert "stopped" in set(trials.status), "ASHA stops a trial that does not learn"
    assert "Checkpoint successfully created" not in out + err
    assert not [line for line in (out + err).splitlines() if RAY_TABLE.search(line)]
    assert "sweep 'console': 4 trials (" in out and "best trial " in out, "the CLI's summary stays"


def test_verbose_gives_rays_own_output_back(tmp_path, capfd):
    space = space_file(tmp_path, "loud", num_samples=2, space={"lr": {"type": "categorical", "choices": [2e-2, 1.5e-2]}})
    assert main(["launch", space, "--verbose"]) == 0
    out, err = capfd.readouterr()

    assert "Checkpoint successfully created" in out + err
    assert [line for line in (out + err).splitlines() if RAY_TABLE.search(line)]
    assert not [line for line in out.splitlines() if LINE.match(line)]
    assert "sweep 'loud': 2 trials (2 completed)" in out
