"""Snapshots a sweep keeps: each trial's preferred reports as model-only files, stopped trials too; `best` names them."""

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from advent_sweep.advent.checkpoints import load_state
from advent_sweep.advent.config import TrainConfig
from advent_sweep.advent.snapshots import INDEX_FILE, snapshot_location
from advent_sweep.analysis import analyze
from advent_sweep.cli import main
from tests.sweep.test_checkpoint_retention import asha_sweep, local_ray  # noqa: F401 - the module's one Ray
from tests.sweep.test_launch import read_sweep

pytestmark = pytest.mark.slow
RULES = ["best", "target_im"]


@pytest.fixture(scope="module")
def kept_sweep(local_ray, tmp_path_factory):  # noqa: F811
    return asha_sweep(tmp_path_factory.mktemp("kept"), "kept", checkpoints={"keep_rules": RULES})


def test_every_trial_keeps_each_rules_snapshot_and_evaluate_reproduces_the_reported_miou(kept_sweep, tmp_path):
    reports, trials = read_sweep(kept_sweep.folder)
    assert set(trials.status) == {"completed", "stopped"}
    for trial in trials.itertuples():
        own = reports[reports.trial_id == trial.trial_id].set_index("iteration")
        preferred = {"best": own.target_miou.idxmax(), "target_im": own.target_im.idxmax()}  # first of ties, as the rules
        index = json.loads((Path(trial.trial_path) / "snapshots" / INDEX_FILE).read_text())
        assert {rule: entry["iteration"] for rule, entry in index.items()} == preferred, trial.trial_id
        files = sorted((Path(trial.trial_path) / "snapshots").glob("iteration_*.pt"))
        assert [str(f) for f in files] == sorted({snapshot_location(trial.trial_path, i) for i in preferred.values()})
        assert not any("checkpoint_" in str(f) for f in files)
        for rule, iteration in preferred.items():
            scores = tmp_path / f"{trial.trial_id}-{rule}.json"
            assert main(["evaluate", snapshot_location(trial.trial_path, iteration), "--quiet", "-o", str(scores)]) == 0
            evaluated = json.loads(scores.read_text())["metrics"]
            assert evaluated["target_miou"] == own.loc[iteration, "target_miou"], (trial.trial_id, rule)
            assert evaluated["target_im"] == own.loc[iteration, "target_im"], (trial.trial_id, rule)


@pytest.mark.parametrize("rule", RULES)
def test_best_names_the_chosen_reports_snapshot_beside_a_valid_config(kept_sweep, tmp_path, capsys, rule):
    output = tmp_path / "best.yaml"
    assert main(["best", kept_sweep.folder, "--rule", rule, "-o", str(output)]) == 0
    text = output.read_text()
    (line,) = [line for line in text.splitlines() if line.startswith("# snapshot")]
    snapshot = line.split(": ", 1)[1]
    assert Path(snapshot).is_file()
    assert load_state(snapshot)["iteration"] == int(text.split(" at iteration ")[1].split()[0])
    assert TrainConfig.model_validate(yaml.safe_load(text)).keep_snapshots == tuple(RULES)  # the body: the trial's config


def test_the_sweep_end_writes_qualitative_pngs_that_the_report_lays_out_once_each(kept_sweep, tmp_path):
    folder = Path(kept_sweep.folder) / "qualitative"
    manifest = json.loads((folder / "qualitative.json").read_text())
    width, height = manifest["size"]
    assert (width, height) == (32, 32) and len(manifest["images"]) == 4
    assert manifest["models"][0]["label"] == "AdvEnt (best trial)" and manifest["entropy_of"] == "AdvEnt (best trial)"
    assert Path(manifest["models"][0]["snapshot"]).is_file()

    report = analyze(kept_sweep.folder, tmp_path / "analysis", progress=False)
    page = report.read_text()
    shown = re.findall(r"src='(qualitative_[^']+)' width='(\d+)' height='(\d+)'", page)
    assert len(shown) == 4 * 4, "image, ground truth, one model, entropy per image"
    assert len({name for name, _, _ in shown}) == len(shown), "each image referenced once"
    for name, w, h in shown:
        with Image.open(report.parent / name) as image:
            image.verify()
        with Image.open(report.parent / name) as image:
            assert image.format == "PNG" and image.size == (int(w), int(h)) == (width, height)

    table = pd.read_parquet(report.parent / "per_class.parquet")
    reports, _ = read_sweep(kept_sweep.folder)
    for row in table.to_dict("records"):
        report_row = reports[(reports.trial_id == row["trial_id"]) & (reports.iteration == row["iteration"])]
        for column in (c for c in reports.columns if c.startswith("iou.")):
            assert row[column.removeprefix("iou.")] == report_row[column].item() or np.isnan(report_row[column].item())
        assert row["mIoU"] == report_row["target_miou"].item()
