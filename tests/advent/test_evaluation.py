import pytest
import torch

from advent_sweep.advent.evaluation import evaluate_segmenters
from advent_sweep.data.labels import protocol_class_names


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


def synthia_predictions():
    """16 pixels (label → prediction) under the 16-class protocol, with their IoUs by hand:
    4 road→road, 2 sidewalk→road: road 4/6, sidewalk 0; 2 wall→wall: wall 1; 2 fence→pole: fence 0,
    pole 0; 2 car→car, 1 car→bus: car 2/3, bus 0; 3 sky→sky: sky 1; the other 8 classes NaN."""
    names = protocol_class_names(16)
    pairs = [("road", "road")] * 4 + [("sidewalk", "road")] * 2 + [("wall", "wall")] * 2 + [("fence", "pole")] * 2
    pairs += [("car", "car")] * 2 + [("car", "bus")] + [("sky", "sky")] * 3
    labels = torch.tensor([[names.index(label) for label, _ in pairs]]).view(1, 2, 8)
    predicted = torch.tensor([names.index(prediction) for _, prediction in pairs]).view(2, 8)
    logits = torch.nn.functional.one_hot(predicted, 16).permute(2, 0, 1).unsqueeze(0).float() * 10
    return names, [(torch.zeros(1, 3, 2, 8), labels)], logits


def test_synthia_miou_13_is_the_nan_mean_without_wall_fence_pole():
    names, loader, logits = synthia_predictions()
    metrics = evaluate_segmenters([(constant_segmenter(logits), 1.0)], loader, 16, names, torch.device("cpu"))
    # mIoU over the 8 classes present: (2/3 + 0 + 1 + 0 + 0 + 1 + 2/3 + 0) / 8 = 10/24
    assert metrics["target_miou"] == pytest.approx(100 * 10 / 24)
    # mIoU*: wall (1), fence (0), pole (0) left out: (2/3 + 0 + 1 + 2/3 + 0) / 5 = 7/15
    assert metrics["target_miou_13"] == pytest.approx(100 * 7 / 15)
    ensemble = evaluate_segmenters([(constant_segmenter(logits), 0.5), (constant_segmenter(logits), 0.5)], loader, 16,
                                   names, torch.device("cpu"))
    assert ensemble["target_miou_13"] == pytest.approx(100 * 7 / 15)


@pytest.mark.parametrize("names", [protocol_class_names(19)[:16], tuple(reversed(protocol_class_names(16)))])
def test_miou_13_only_for_the_synthia_16_class_names(names):
    _, loader, logits = synthia_predictions()
    metrics = evaluate_segmenters([(constant_segmenter(logits), 1.0)], loader, 16, names, torch.device("cpu"))
    assert "target_miou_13" not in metrics and metrics["target_miou"] == pytest.approx(100 * 10 / 24)
