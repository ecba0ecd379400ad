"""`advent-sweep evaluate`: checkpoints alone and as the paper's weighted ensemble, on hand-set logits."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from advent_sweep.advent.config import TrainConfig
from advent_sweep.advent.run import build_trainer
from advent_sweep.advent.trainer import Trainer
from advent_sweep.cli import main
from advent_sweep.data import build_domain_data
from advent_sweep.data.synthetic import SYNTHETIC_CLASS_NAMES

DATA = {"synthetic": {"seed": 0, "size": [32, 32], "num_train": 4, "num_val": 6}}
ROAD, SKY = SYNTHETIC_CLASS_NAMES.index("road"), SYNTHETIC_CLASS_NAMES.index("sky")


def tiny_config(**changes) -> TrainConfig:
    return TrainConfig.model_validate({
        "backbone": "resnet18", "multi_level": False, "param_repeats": "unique", "iterations": 2, "poly_horizon": 2,
        "eval_batch_size": 4, "device": "cpu", "data": DATA, **changes})


def constant_logits_checkpoint(path: Path, logits: dict[int, float], num_classes: int | None = None, **changes) -> Path:
    """A real trainer checkpoint whose main head outputs ``logits`` (class → value, others 0) at every pixel."""
    config = tiny_config(**changes)
    data = build_domain_data(config.data)
    if num_classes is None:
        trainer = build_trainer(config, data)
    else:
        trainer = Trainer(config, data.source, data.target, num_classes=num_classes)
    with torch.no_grad():
        for conv in trainer.segmenter.main_head.conv2d_list:
            conv.weight.zero_()
            conv.bias.zero_()
        for label, value in logits.items():
            trainer.segmenter.main_head.conv2d_list[0].bias[label] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(trainer.state_dict(), path)
    return path


def miou_predicting(label: int) -> float:
    """By hand: predicting ``label`` everywhere gives it IoU = its labelled pixels / all labelled pixels, the
    other classes in the labels IoU 0; mIoU is the mean over the classes in the labels or the prediction."""
    data = build_domain_data(tiny_config().data)
    labels = np.stack([data.target_val.load_label(i) for i in range(len(data.target_val))])
    labelled = labels[labels != 255]
    present = set(np.unique(labelled).tolist()) | {label}
    return 100 * float((labelled == label).sum()) / labelled.size / len(present)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    folder = tmp_path_factory.mktemp("checkpoints")
    return {
        "road": constant_logits_checkpoint(folder / "road" / "checkpoint.pt", {ROAD: 1.0}),  # a run folder's
        "sky": constant_logits_checkpoint(folder / "sky" / "checkpoint_000003" / "trainer.pt", {SKY: 3.0}),  # a trial's
        "five": constant_logits_checkpoint(folder / "five.pt", {0: 1.0}, num_classes=5),
    }


def run(args: list[str], capsys) -> tuple[int, str]:
    code = main(["evaluate", *args, "--quiet"])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_a_checkpoint_alone_and_the_paper_ensemble_by_hand(checkpoints, tmp_path, capsys):
    code, _ = run([str(checkpoints["road"].parent), "-o", str(tmp_path / "road.json")], capsys)
    assert code == 0
    alone = json.loads((tmp_path / "road.json").read_text())
    assert alone["metrics"]["target_miou"] == pytest.approx(miou_predicting(ROAD))
    assert alone["images"] == 6 and alone["checkpoints"][0]["weight"] == 1.0

    # 0.5 · (road 1) + 0.5 · (sky 3): sky 1.5 > road 0.5 everywhere
    code, out = run([str(checkpoints["road"]), str(checkpoints["sky"].parent), "-o", str(tmp_path / "both.json")], capsys)
    assert code == 0
    both = json.loads((tmp_path / "both.json").read_text())
    assert [c["weight"] for c in both["checkpoints"]] == [0.5, 0.5]
    assert both["metrics"]["target_miou"] == pytest.approx(miou_predicting(SKY))
    assert both["metrics"][f"iou.{SYNTHETIC_CLASS_NAMES[ROAD]}"] == 0.0
    assert {"target_entropy", "target_im", "target_bnm", "target_snd"} <= set(both["metrics"])
    assert f"mIoU {both['metrics']['target_miou']:.2f}" in out


def test_weights_are_normalised_and_decide_the_ensemble(checkpoints, tmp_path, capsys):
    # 7 : 2 on logits → 7/9 · road 1 = 0.78 against 2/9 · sky 3 = 0.67: road everywhere. Averaging probabilities
    # instead (softmax over 7 classes) gives road 7/9 · 0.312 + 2/9 · 0.038 = 0.251 against sky 7/9 · 0.115 +
    # 2/9 · 0.770 = 0.260: sky everywhere. So this ratio tells the paper's logit sum from a probability average.
    output = tmp_path / "weighted.json"
    code, _ = run([str(checkpoints["road"]), str(checkpoints["sky"]), "--weights", "7", "2", "-o", str(output)], capsys)
    assert code == 0
    weighted = json.loads(output.read_text())
    assert [c["weight"] for c in weighted["checkpoints"]] == pytest.approx([7 / 9, 2 / 9])
    assert weighted["metrics"]["target_miou"] == pytest.approx(miou_predicting(ROAD))


def test_a_file_uri_reads_the_same_checkpoint(checkpoints, tmp_path, capsys):
    code, _ = run([checkpoints["sky"].parent.as_uri(), "-o", str(tmp_path / "uri.json")], capsys)
    assert code == 0
    assert json.loads((tmp_path / "uri.json").read_text())["metrics"]["target_miou"] == pytest.approx(miou_predicting(SKY))


def test_checkpoints_with_different_class_counts_exit_2_naming_both(checkpoints, tmp_path, capsys):
    output = tmp_path / "never.json"
    code, out = run([str(checkpoints["road"]), str(checkpoints["five"]), "-o", str(output)], capsys)
    assert code == 2
    assert f"{checkpoints['road']} has 7 classes but {checkpoints['five']} has 5" in out
    assert not output.exists()


@pytest.mark.parametrize("case", ["missing", "corrupt", "not a checkpoint", "empty folder", "weights count", "bad data"])
def test_bad_input_exits_2_with_a_clear_message_and_writes_nothing(checkpoints, tmp_path, capsys, case):
    corrupt, foreign, empty, bad_data = tmp_path / "corrupt.pt", tmp_path / "foreign.pt", tmp_path / "empty", tmp_path / "data.yaml"
    corrupt.write_bytes(checkpoints["road"].read_bytes()[:1000])
    torch.save({"weights": torch.zeros(2)}, foreign)
    empty.mkdir()
    bad_data.write_text("data:\n  synthetic: {num_val: 0}\n")
    args, expected = {
        "missing": ([str(tmp_path / "nope.pt")], f"{tmp_path / 'nope.pt'}: no such file or folder"),
        "corrupt": ([str(corrupt)], f"{corrupt}: not a readable checkpoint"),
        "not a checkpoint": ([str(foreign)], f"{foreign}: not an advent-sweep trainer checkpoint"),
        "empty folder": ([str(empty)], f"{empty}: a folder without a checkpoint; allowed: a folder holding checkpoint.pt or trainer.pt"),
        "weights count": ([str(checkpoints["road"]), "--weights", "1", "2"], "--weights: 2 weight(s) for 1 checkpoint(s)"),
        "bad data": ([str(checkpoints["road"]), "--data", str(bad_data)], "synthetic.num_val: Input should be greater than or equal to 1"),
    }[case]
    output = tmp_path / "out" / "scores.json"
    code, out = run([*args, "-o", str(output)], capsys)
    assert code == 2
    assert expected in out and "Traceback" not in out
    assert not output.exists()


def test_data_from_a_config_scores_the_checkpoints_on_other_images(checkpoints, tmp_path, capsys):
    config = tmp_path / "other.yaml"
    config.write_text("data:\n  synthetic: {seed: 0, size: [32, 32], num_train: 4, num_val: 3}\n")
    code, _ = run([str(checkpoints["road"]), "--data", str(config), "-o", str(tmp_path / "other.json")], capsys)
    assert code == 0
    assert json.loads((tmp_path / "other.json").read_text())["images"] == 3


class _RunsCode:
    """Pickles to a call of ``Path.touch``: opening the file with a plain pickle load would create ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return Path.touch, (self.marker,)


def test_a_checkpoint_whose_pickle_runs_code_is_refused_and_nothing_runs(checkpoints, tmp_path, capsys):
    marker, hostile, output = tmp_path / "ran", tmp_path / "hostile.pt", tmp_path / "scores.json"
    state = torch.load(checkpoints["road"], weights_only=False)  # our own file: trusted here
    torch.save({**state, "payload": _RunsCode(marker)}, hostile)
    code, out = run([str(hostile), "-o", str(output)], capsys)
    assert code == 2
    assert f"{hostile}: refused, its pickle would run code when opened" in out and "Traceback" not in out
    assert not marker.exists() and not output.exists()
    torch.load(hostile, weights_only=False)  # the same file opened unsafely does run the code: the test can fail
    assert marker.exists()
