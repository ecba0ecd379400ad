"""`advent-sweep confirm` on a real small sweep: K × N fresh-seed runs, their summary by hand, resume after SIGKILL."""

import json
import os
import subprocess
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest
import yaml

from advent_sweep.advent.config import TrainConfig
from advent_sweep.analysis import analyze
from advent_sweep.analysis.confirmed import export_confirmed
from advent_sweep.sweep.confirm import confirm
from advent_sweep.sweep.launch import launch
from advent_sweep.sweep.spec import SweepSpec
from tests.sweep.test_resume import SPACE as RESUME_SPACE
from tests.sweep.test_resume import ADVENT_SWEEP, completed_trials, stop_tree

pytestmark = pytest.mark.slow

SPACE = {  # the killed-driver sweep's, shorter, over three fixed learning rates
    **RESUME_SPACE, "name": "small", "trainer": {**RESUME_SPACE["trainer"], "iterations": 4, "poly_horizon": 4},
    "space": {"lr": {"type": "categorical", "choices": [1e-3, 1e-2, 2e-2]}}, "searcher": {"sampler": "grid", "seed": 0},
    "num_samples": 3, "max_concurrent": 2,
}


@pytest.fixture(scope="module")
def small_sweep(tmp_path_factory):
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    storage = tmp_path_factory.mktemp("confirm")
    spec = SweepSpec.model_validate({**SPACE, "storage": str(storage)})
    launch(spec)
    return spec


def test_confirm_retrains_the_top_configurations_on_fresh_seeds(small_sweep, tmp_path):
    summary = confirm(small_sweep.folder, top=2, seeds=2)
    folder = Path(small_sweep.folder) / "confirm"
    plan = json.loads((folder / "plan.json").read_text())
    trials = pd.read_parquet(folder / "trials.parquet")
    reports = pd.read_parquet(folder / "reports")
    sweep_trials = pd.read_parquet(Path(small_sweep.folder) / "trials.parquet").set_index("trial_id")

    assert len(trials) == 2 * 2 and set(trials.status) == {"completed"}
    assert plan["seeds"] == [1, 2]  # the sweep trained on seed 0
    assert not reports.duplicated(["trial_id", "iteration"]).any() and len(reports) == 4 * 2
    for index, candidate in enumerate(plan["candidates"]):
        source = TrainConfig.model_validate_json(sweep_trials.loc[candidate["trial_id"], "config_json"])
        runs = [TrainConfig.model_validate_json(text) for text in trials.config_json]
        mine = [run for run in runs if run.model_copy(update={"seed": source.seed}) == source]
        assert sorted(run.seed for run in mine) == [1, 2], f"candidate {index}: every field equal but the seed"

    # by hand with pandas: each run's best target_miou (rule best), grouped by candidate's lr
    best = reports.groupby("trial_id").target_miou.max().rename("value").to_frame().join(trials.set_index("trial_id")["config.lr"])
    table = summary.configurations.set_index("candidate")
    for index, candidate in enumerate(plan["candidates"]):
        values = best.loc[best["config.lr"] == candidate["config"]["lr"], "value"]
        assert table.loc[index, "mean"] == pytest.approx(values.mean())
        assert table.loc[index, "std"] == pytest.approx(values.std())
        assert table.loc[index, "optimism"] == pytest.approx(candidate["reported"] - values.mean())
        assert table.loc[index, "interval_95"] == pytest.approx(12.706 * values.std() / 2 ** 0.5)
        assert candidate["reported"] == pytest.approx(sweep_trials.loc[candidate["trial_id"], "best_value"])
    assert pd.read_parquet(folder / "summary.parquet")["mean"].tolist() == pytest.approx(table["mean"].tolist())
    rules = summary.rules.set_index("rule")
    assert rules.loc["best", "mean_target_miou"] == pytest.approx(best["value"].mean())
    assert rules.loc["best", "runs"] == 4 and rules.loc["best", "below_oracle"] == 0

    report = analyze(small_sweep.folder, tmp_path / "analysis", progress=False)
    assert "Confirmed on fresh seeds" in report.read_text()
    assert len(pd.read_csv(tmp_path / "analysis" / "confirmed.csv")) == 2
    confirmed_methods = pd.read_csv(tmp_path / "analysis" / "confirmed_methods.csv")
    assert confirmed_methods["trials"].sum() == 4 and confirmed_methods["seeds"].max() == 2

    chosen = export_confirmed(small_sweep.folder, tmp_path / "confirmed.yaml")
    winner = table["mean"].idxmax()
    assert chosen.trial_id == plan["candidates"][winner]["trial_id"] and chosen.value == pytest.approx(table.loc[winner, "mean"])
    text = (tmp_path / "confirmed.yaml").read_text()
    assert "confirmed on 2 fresh seeds" in text and TrainConfig.model_validate(yaml.safe_load(text)).lr == chosen.config["lr"]


def test_a_second_confirm_without_resume_is_refused(small_sweep, capsys):
    from advent_sweep.cli import main

    if not (Path(small_sweep.folder) / "confirm" / "plan.json").exists():
        pytest.skip("runs after the confirm test")
    assert main(["confirm", small_sweep.folder]) == 2
    assert "a confirm run exists there; pass --resume" in capsys.readouterr().err


def test_a_killed_confirm_resumes_without_rerunning_finished_seeds(tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump({**SPACE, "name": "killed", "storage": str(tmp_path), "max_concurrent": 1}))
    assert subprocess.run([ADVENT_SWEEP, "launch", str(space)], capture_output=True).returncode == 0
    sweep = tmp_path / "killed"
    log = open(tmp_path / "confirm.log", "w")
    driver = subprocess.Popen([ADVENT_SWEEP, "confirm", str(sweep), "--top", "2", "--seeds", "2"],
                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    family: list[psutil.Process] = []
    try:
        deadline = time.time() + 300
        while time.time() < deadline and len(completed_trials(sweep / "confirm")) < 1:
            family += [p for p in psutil.Process(driver.pid).children(recursive=True) if p not in family]
            time.sleep(0.5)
        assert len(completed_trials(sweep / "confirm")) >= 1, (tmp_path / "confirm.log").read_text()[-3000:]
    finally:
        stop_tree(driver, family)
    finished = completed_trials(sweep / "confirm")
    before = pd.read_parquet(sweep / "confirm" / "reports")
    before = before[before.trial_id.isin(finished.trial_id)].set_index(["trial_id", "iteration"])["timestamp"]

    resumed = subprocess.run([ADVENT_SWEEP, "confirm", str(sweep), "--resume"], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    trials = pd.read_parquet(sweep / "confirm" / "trials.parquet")
    reports = pd.read_parquet(sweep / "confirm" / "reports")
    assert len(trials) == 4 and set(trials.status) == {"completed"}
    assert not reports.duplicated(["trial_id", "iteration"]).any() and len(reports) == 4 * 2
    after = reports.set_index(["trial_id", "iteration"])["timestamp"]
    assert after.loc[before.index].equals(before), "a finished seed was trained again"
    assert "confirmed target_miou" in resumed.stdout



def test_the_plan_reads_a_sweep_through_a_file_uri_as_from_its_folder(tmp_path):
    """confirm reads the sweep where it lies: the top-K and their configs are the same through file://."""
    from advent_sweep.sweep.confirm import plan_confirm
    from tests.analysis.conftest import fake_trials, write_sweep

    folder = write_sweep(tmp_path, "fake", fake_trials())
    local = plan_confirm(str(folder), top=3, seeds=2, rule="target_im")
    assert plan_confirm(folder.as_uri(), top=3, seeds=2, rule="target_im") == local
    reports = pd.read_parquet(folder / "reports")
    by_im = reports.groupby("trial_id")["target_im"].max().sort_values(ascending=False, kind="stable")
    assert [c["trial_id"] for c in local["candidates"]] == list(by_im.index[:3])
    assert len(local["candidates"]) == 3 and local["seeds"] == [2, 3]  # the fake trials ran seeds 0 and 1


def test_the_summary_shows_what_each_candidate_searched_not_the_default_of_an_unsampled_lambda(tmp_path):
    """An AdvEnt candidate never sampled λ_ent: its cell is empty, not the 1e-3 default it trained with."""
    from advent_sweep.analysis import load_results
    from advent_sweep.analysis.confirmed import summarise_confirm
    from advent_sweep.sweep.confirm import plan_confirm
    from tests.analysis.conftest import FakeTrial, fake_trials, write_sweep

    space = {
        "method": {"type": "categorical", "choices": ["source_only", "minent", "advent", "advent_minent"]},
        "lambda_ent_main": {"type": "float", "low": 1e-5, "high": 1e-2, "log": True, "when": {"method": ["minent", "advent_minent"]}},
        "lambda_adv_main": {"type": "float", "low": 1e-5, "high": 1e-2, "log": True, "when": {"method": ["advent", "advent_minent"]}},
    }

    def with_space(folder: Path) -> Path:  # as launch and confirm write sweep.json: the sweep's spec, its space included
        spec = json.loads((folder / "sweep.json").read_text())
        (folder / "sweep.json").write_text(json.dumps({**spec, "spec": {**spec["spec"], "space": space}}))
        return folder

    folder = with_space(write_sweep(tmp_path, "fake", fake_trials()))
    plan = json.loads(json.dumps(plan_confirm(str(folder), top=17, seeds=1, rule="best")))  # as plan.json holds it
    assert plan["seeds"] == [2] and len(plan["candidates"]) == 17

    runs = [FakeTrial(f"c{i:02d}", TrainConfig.model_validate({**c["config"], "seed": 2}), (50.0 + i,), (0.3,))
            for i, c in enumerate(plan["candidates"])]
    confirm_folder = with_space(write_sweep(tmp_path / "confirm", "fake", runs))
    table = summarise_confirm(load_results(confirm_folder), plan).configurations.set_index("candidate")
    assert [c for c in table.columns if c.startswith("config.")] == ["config.method", "config.lambda_ent_main", "config.lambda_adv_main"]
    for index, candidate in enumerate(plan["candidates"]):
        config = candidate["config"]
        ent, adv = config["method"] in ("minent", "advent_minent"), config["method"] in ("advent", "advent_minent")
        expected = {"method": config["method"], "lambda_ent_main": config["lambda_ent_main"] if ent else None,
                    "lambda_adv_main": config["lambda_adv_main"] if adv else None}
        assert table.loc[index, "mean"] == 50.0 + index
        for name, value in expected.items():
            shown = table.loc[index, f"config.{name}"]
            assert (pd.isna(shown) and value is None) or shown == value, (index, name)
