"""Snapshots worth keeping: one model-only file per report a rule prefers, and `train` + `evaluate` on them."""

import json
from pathlib import Path

import pytest
import torch
import yaml

from advent_sweep.advent.checkpoints import load_state
from advent_sweep.advent.snapshots import INDEX_FILE, SnapshotKeeper, snapshot_name
from advent_sweep.cli import main
from tests.test_cli import TINY_RUN, write_yaml

WEIGHTS = {"w": torch.zeros(2)}


def report(miou: float, im: float, entropy: float) -> dict[str, float]:
    return {"target_miou": miou, "target_im": im, "target_entropy": entropy}


def kept_files(folder: Path) -> list[str]:
    return sorted(p.name for p in (folder / "snapshots").glob("iteration_*.pt"))


def test_each_rule_keeps_its_preferred_report_one_file_per_distinct_report(tmp_path):
    keeper = SnapshotKeeper(str(tmp_path), ["best", "target_im", "target_entropy"])
    # iteration: mIoU, IM (max), entropy (min)
    assert sorted(keeper.keep(2, report(10.0, 0.5, 0.9), {}, WEIGHTS)) == ["best", "target_entropy", "target_im"]
    assert kept_files(tmp_path) == [snapshot_name(2)], "three rules agree: one file"
    assert sorted(keeper.keep(4, report(20.0, 0.4, 0.8), {}, WEIGHTS)) == ["best", "target_entropy"]
    assert kept_files(tmp_path) == [snapshot_name(2), snapshot_name(4)]
    assert keeper.keep(6, report(20.0, 0.3, 0.8), {}, WEIGHTS) == [], "ties keep the earlier report"
    assert keeper.keep(8, report(5.0, 0.6, float("nan")), {}, WEIGHTS) == ["target_im"]
    assert kept_files(tmp_path) == [snapshot_name(4), snapshot_name(8)], "iteration 2's file is preferred by no rule any more"
    index = json.loads((tmp_path / "snapshots" / INDEX_FILE).read_text())
    assert {rule: entry["iteration"] for rule, entry in index.items()} == {"best": 4, "target_im": 8, "target_entropy": 4}
    saved = load_state(tmp_path / "snapshots" / snapshot_name(8))
    assert saved["iteration"] == 8 and saved["metrics"]["target_im"] == 0.6 and set(saved) == {"config", "iteration", "metrics", "segmenter"}


def test_a_resumed_run_forgets_what_it_kept_after_its_checkpoint(tmp_path):
    first = SnapshotKeeper(str(tmp_path), ["best"])
    first.keep(2, report(10.0, 0, 0), {}, WEIGHTS)
    first.keep(4, report(20.0, 0, 0), {}, WEIGHTS)
    resumed = SnapshotKeeper(str(tmp_path), ["best"], iteration=2)  # the checkpoint was at iteration 2
    assert resumed.index == {}
    assert resumed.keep(4, report(15.0, 0, 0), {}, WEIGHTS) == ["best"]
    assert kept_files(tmp_path) == [snapshot_name(4)]
    assert load_state(tmp_path / "snapshots" / snapshot_name(4))["metrics"]["target_miou"] == 15.0


def test_an_unknown_rule_in_a_train_config_exits_2_listing_the_rules(tmp_path, capsys):
    config = write_yaml(tmp_path / "run.yaml", {**TINY_RUN, "keep_snapshots": ["best", "oracle"]})
    assert main(["train", str(config), "--output-dir", str(tmp_path / "run"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "keep_snapshots" in err and "unknown rule 'oracle'; allowed: best, last, target_entropy, target_im" in err
    assert not (tmp_path / "run").exists()


def test_an_unknown_keep_rule_exits_2_listing_the_rules(tmp_path, capsys):
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump({
        "name": "x", "storage": str(tmp_path), "space": {"lr": {"type": "float", "low": 1e-4, "high": 1e-2}},
        "max_concurrent": 1, "num_samples": 1, "checkpoints": {"keep_rules": ["best", "oracle"]}}))
    assert main(["validate", str(space)]) == 2
    err = capsys.readouterr().err
    assert "checkpoints.keep_rules" in err and "unknown rule 'oracle'; allowed: best, last, target_entropy" in err


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("snapshots")
    config = write_yaml(folder / "run.yaml", {**TINY_RUN, "threads": 1, "keep_snapshots": ["best", "target_im", "target_entropy", "last"]})
    assert main(["train", str(config), "--output-dir", str(folder / "run"), "--quiet"]) == 0
    return folder / "run"


@pytest.mark.slow
def test_train_keeps_each_rules_snapshot_and_evaluate_reproduces_its_reported_miou(trained, tmp_path):
    summary = json.loads((trained / "metrics.json").read_text())
    reported = {e["iteration"]: e for e in summary["evaluations"]}
    chosen = {rule: summary["selection"][rule]["iteration"] for rule in ("best", "target_im", "target_entropy", "last")}
    assert {rule: int(Path(path).stem.split("_")[1]) for rule, path in summary["snapshots"].items()} == chosen
    assert kept_files(trained) == sorted({snapshot_name(i) for i in chosen.values()}), "one file per distinct preferred report"
    for rule, path in summary["snapshots"].items():
        scores = tmp_path / f"{rule}.json"
        assert main(["evaluate", path, "--quiet", "-o", str(scores)]) == 0
        evaluated = json.loads(scores.read_text())
        assert evaluated["checkpoints"][0]["iteration"] == chosen[rule]
        assert evaluated["metrics"]["target_miou"] == reported[chosen[rule]]["target_miou"], rule
        assert evaluated["metrics"]["target_im"] == reported[chosen[rule]]["target_im"], rule


@pytest.mark.slow
def test_a_snapshot_is_a_fraction_of_the_resumable_checkpoint(trained):
    snapshot = trained / "snapshots" / kept_files(trained)[0]
    assert snapshot.stat().st_size < 0.6 * (trained / "checkpoint.pt").stat().st_size  # no discriminator, no momentum buffers
    assert set(load_state(snapshot)["segmenter"]) == set(load_state(trained / "checkpoint.pt")["segmenter"])
    assert yaml.safe_load((trained / "config.yaml").read_text())["keep_snapshots"] == ["best", "target_im", "target_entropy", "last"]


def test_a_keeper_writes_through_a_uri(tmp_path):
    keeper = SnapshotKeeper(f"file://{tmp_path}/bucket/trial", ["best"])
    keeper.keep(2, report(10.0, 0, 0), {}, WEIGHTS)
    keeper.keep(4, report(20.0, 0, 0), {}, WEIGHTS)
    assert kept_files(tmp_path / "bucket" / "trial") == [snapshot_name(4)]
    assert keeper.locations() == {"best": str(tmp_path / "bucket" / "trial" / "snapshots" / snapshot_name(4))}
