"""`advent-sweep evaluate --save-predictions`: PNGs that cityscapesScripts' own evaluator scores as evaluate does."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from advent_sweep.cli import main
from advent_sweep.data import build_domain_data
from advent_sweep.data.labels import CITYSCAPES_CLASS_NAMES
from advent_sweep.data.palette import palette_for
from advent_sweep.advent.trainer import Trainer
from tests.data.trees import cityscapes_tree, gta5_tree, street_ids
from tests.test_evaluate import tiny_config

LABEL_SIZE = (64, 32)  # (width, height) of the generated Cityscapes val labels: the full resolution predictions keep


@pytest.fixture(scope="module")
def cityscapes(tmp_path_factory):
    """A GTA5 → Cityscapes tree (3 val images over two cities), its data YAML and a random 19-class checkpoint."""
    root = tmp_path_factory.mktemp("cityscapes")
    gta5_tree(root / "gta5", [street_ids(seed) for seed in range(2)])
    cityscapes_tree(root / "cityscapes", "train", [street_ids(seed) for seed in range(10, 12)])
    cityscapes_tree(root / "cityscapes", "val", [street_ids(seed, LABEL_SIZE) for seed in range(20, 22)], city="lindau")
    cityscapes_tree(root / "cityscapes", "val", [street_ids(30, LABEL_SIZE)], city="munster")
    data = root / "data.yaml"
    data.write_text(yaml.safe_dump({"data": {
        "source": "gta5", "target": "cityscapes", "source_root": str(root / "gta5"), "target_root": str(root / "cityscapes"),
        "source_size": [16, 8], "target_size": [16, 8], "eval_size": [64, 32]}}))
    config = tiny_config(threads=1)
    synthetic = build_domain_data(config.data)
    torch.manual_seed(3)
    trainer = Trainer(config, synthetic.source, synthetic.target, num_classes=19)  # random heads: varied predictions
    checkpoint = root / "model.pt"
    torch.save(trainer.state_dict(), checkpoint)
    return root, data, checkpoint


def official_miou(cityscapes_root: Path, predictions: Path) -> float:
    """cityscapesScripts' evalPixelLevelSemanticLabeling on the val labels and the prediction folder, in percent."""
    from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as official

    args = official.args
    args.evalInstLevelScore, args.JSONOutput, args.quiet = False, False, True
    args.predictionPath, args.predictionWalk = str(predictions), None
    truths = sorted(str(p) for p in (cityscapes_root / "gtFine" / "val").glob("*/*_gtFine_labelIds.png"))
    found = [official.getPrediction(args, truth) for truth in truths]
    return 100 * official.evaluateImgLists(found, truths, args)["averageScoreClasses"]


def test_labelids_pngs_score_with_the_official_evaluator_as_evaluate_does(cityscapes, tmp_path, capsys):
    root, data, checkpoint = cityscapes
    folder, scores = tmp_path / "predictions", tmp_path / "scores.json"
    assert main(["evaluate", str(checkpoint), "--data", str(data), "--save-predictions", str(folder), "-o", str(scores), "--quiet"]) == 0
    result = json.loads(scores.read_text())
    assert result["images"] == 3 and result["predictions"]["labelIds"] == str(folder / "labelIds")
    names = ["lindau_000000_000019", "lindau_000001_000019", "munster_000000_000019"]
    assert sorted(p.name for p in (folder / "labelIds").iterdir()) == [f"{n}_labelIds.png" for n in names]
    assert 0 < result["metrics"]["target_miou"] < 100
    assert official_miou(root / "cityscapes", folder / "labelIds") == pytest.approx(result["metrics"]["target_miou"], abs=1e-6)

    label_of_train_id = {0: 7, 1: 8, 2: 11, 3: 12, 4: 13, 5: 17, 6: 19, 7: 20, 8: 21, 9: 22, 10: 23, 11: 24, 12: 25,
                         13: 26, 14: 27, 15: 28, 16: 31, 17: 32, 18: 33}  # DESIGN.md's table, inverted
    train_of_label = np.full(256, 255, dtype=np.uint8)
    train_of_label[list(label_of_train_id.values())] = list(label_of_train_id)
    for name in names:
        label_ids = np.asarray(Image.open(folder / "labelIds" / f"{name}_labelIds.png"))
        colour = Image.open(folder / "color" / f"{name}.png")
        entropy = Image.open(folder / "entropy" / f"{name}.png")
        assert label_ids.shape == (LABEL_SIZE[1], LABEL_SIZE[0]) and colour.size == entropy.size == LABEL_SIZE
        assert colour.mode == "RGB" and entropy.mode == "L"
        assert set(np.unique(label_ids)) <= set(label_of_train_id.values())
        np.testing.assert_array_equal(np.asarray(colour), palette_for(CITYSCAPES_CLASS_NAMES)[train_of_label[label_ids]])
        assert 0 < np.asarray(entropy).mean() < 255


def test_the_palette_is_cityscapes_official_one():
    from cityscapesscripts.helpers.labels import trainId2label

    palette = palette_for(CITYSCAPES_CLASS_NAMES)
    for train_id, name in enumerate(CITYSCAPES_CLASS_NAMES):
        assert trainId2label[train_id].name == name
        assert tuple(palette[train_id]) == trainId2label[train_id].color
    assert tuple(palette[255]) == (0, 0, 0)


def test_limit_scores_and_saves_the_first_images_and_an_ensemble_saves_too(cityscapes, tmp_path):
    root, data, checkpoint = cityscapes
    folder, scores = tmp_path / "first", tmp_path / "first.json"
    assert main(["evaluate", str(checkpoint), str(checkpoint), "--data", str(data), "--save-predictions", str(folder),
                 "--limit", "2", "-o", str(scores), "--quiet"]) == 0
    result = json.loads(scores.read_text())
    assert result["images"] == 2 and len(result["checkpoints"]) == 2
    assert sorted(p.name for p in (folder / "color").iterdir()) == ["lindau_000000_000019.png", "lindau_000001_000019.png"]


@pytest.mark.parametrize("case", ["file", "unwritable"])
def test_save_predictions_where_it_cannot_write_exits_2_before_inference_naming_the_path(cityscapes, tmp_path, capsys,
                                                                                      monkeypatch, case):
    _, data, checkpoint = cityscapes
    monkeypatch.setattr("advent_sweep.advent.checkpoints.evaluate_segmenters", lambda *a, **k: pytest.fail("inference ran"))
    if case == "file":
        target = tmp_path / "taken"
        target.write_text("")
    elif os.geteuid() == 0:  # root writes through permission bits: a folder no process may create
        target = Path("/sys/advent-sweep-predictions")
    else:
        (tmp_path / "locked").mkdir(mode=0o500)
        target = tmp_path / "locked" / "predictions"
    scores = tmp_path / "scores.json"
    code = main(["evaluate", str(checkpoint), "--data", str(data), "--save-predictions", str(target), "-o", str(scores), "--quiet"])
    out = capsys.readouterr()
    assert code == 2
    assert f"--save-predictions {target}: " in out.err and "Traceback" not in out.err
    assert not scores.exists()
