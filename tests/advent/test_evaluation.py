import pytest
import torch

from advent_sweep.advent.evaluation import evaluate_segmenters


def constant_segmenter(logits: torch.Tensor):
    return lambda images: (None, logits.expand(images.shape[0], -1, -1, -1))


def test_ensemble_sums_weighted_main_logits_before_argmax():
    # model A prefers class 0 weakly, model B class 1 strongly: 0.5·A + 0.5·B predicts class 1 everywhere
    a = torch.tensor([1.0, 0.0]).view(1, 2, 1, 1).expand(1, 2, 2, 2)
    b = torch.tensor([0.0, 3.0]).view(1, 2, 1, 1).expand(1, 2, 2, 2)
    labels = torch.tensor([[[1, 1, 1, 1], [1, 1, 1, 1], [0, 0, 0, 0], [255, 255, 255, 255]]]).long()  # 4×4 labels
    loader = [(torch.zeros(1, 3, 4, 4), labels)]
    names = ("road", "car")
    alone = evaluate_segmenters([(constant_segmenter(a), 1.0)], loader, 2, names, torch.device("cpu"))
    ensemble = evaluate_segmenters([(constant_segmenter(a), 0.5), (constant_segmenter(b), 0.5)], loader, 2, names,
                                   torch.device("cpu"))
    # A alone: all predicted road → IoU road 4/12, car 0; ensemble: all car → IoU car 8/12, road 0
    assert alone["iou.road"] == pytest.approx(100 * 4 / 12) and alone["iou.car"] == 0.0
    assert ensemble["iou.car"] == pytest.approx(100 * 8 / 12) and ensemble["iou.road"] == 0.0
    assert ensemble["target_miou"] == pytest.approx(100 * 8 / 12 / 2)
    # logits upsampled from 2×2 to the 4×4 label: entropy of softmax(0.5, 1.5) normalised by log2(2)
    p = torch.softmax(torch.tensor([0.5, 1.5]), 0)
    assert ensemble["target_entropy"] == pytest.approx(float(-(p * p.log2()).sum()), rel=1e-5)
