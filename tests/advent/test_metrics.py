import math

import pytest
import torch

from advent_sweep.advent.metrics import ConfusionMatrix


def test_iou_from_a_hand_made_confusion():
    confusion = ConfusionMatrix(3)
    labels = torch.tensor([0, 0, 1, 1, 255, 0])
    predictions = torch.tensor([0, 1, 1, 1, 2, 0])
    confusion.update(labels, predictions)
    # class 0: TP 2, FN 1, FP 0 → 2/3; class 1: TP 2, FP 1 → 2/3; class 2 absent everywhere (255 ignored) → NaN
    iou = confusion.per_class_iou()
    assert iou[0].item() == pytest.approx(2 / 3)
    assert iou[1].item() == pytest.approx(2 / 3)
    assert math.isnan(iou[2].item())
    assert confusion.mean_iou() == pytest.approx(2 / 3)


def test_a_class_predicted_but_never_labelled_counts_as_zero():
    confusion = ConfusionMatrix(2)
    confusion.update(torch.tensor([0, 0]), torch.tensor([0, 1]))
    assert confusion.per_class_iou().tolist() == pytest.approx([0.5, 0.0])
    assert confusion.mean_iou() == pytest.approx(0.25)
