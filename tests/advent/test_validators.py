"""Label-free validators: hand-computed values on tiny probability tensors, and streaming equal to one pass."""

import math

import pytest
import torch

from advent_sweep.advent.evaluation import evaluate_segmenters, score_segmenters
from advent_sweep.advent.trainer import Trainer
from advent_sweep.advent.validators import LabelFreeValidators, bnm_from_gram, soft_neighbourhood_density
from advent_sweep.selection import VALIDATORS
from tests.advent.conftest import NUM_CLASSES
from tests.advent.test_evaluation import constant_segmenter


def as_logits(pixels: list[list[float]]) -> torch.Tensor:
    """M probability vectors (M×C) as the logits of one 1×C×1×M image: log p, with p = 0 at a finite −690."""
    log_p = torch.tensor(pixels, dtype=torch.float64).clamp_min(1e-300).log().float()
    return log_p.T.reshape(1, len(pixels[0]), 1, len(pixels))


def scores_of(pixels: list[list[float]]) -> dict[str, float]:
    validators = LabelFreeValidators(len(pixels[0]))
    validators.update(as_logits(pixels))
    return validators.scores()


def test_im_is_zero_for_uniform_predictions_and_one_for_confident_balanced_ones():
    uniform = scores_of([[1 / 3] * 3] * 4)
    assert uniform["target_entropy"] == pytest.approx(1.0, abs=1e-6)
    assert uniform["target_im"] == pytest.approx(0.0, abs=1e-6)  # H(p̄) = 1, mean H = 1
    balanced = scores_of([[1.0, 0.0], [0.0, 1.0]])
    assert balanced["target_entropy"] == pytest.approx(0.0, abs=1e-6)
    assert balanced["target_im"] == pytest.approx(1.0, abs=1e-6)  # H(p̄) = H(½, ½) = 1, mean H = 0
    collapsed = scores_of([[1.0, 0.0], [1.0, 0.0]])
    assert collapsed["target_im"] == pytest.approx(0.0, abs=1e-6)  # one class only: no diversity


def test_im_by_hand_on_two_pixels():
    # p1 = (0.9, 0.1), p2 = (0.5, 0.5): mean H = (H2(0.9) + 1) / 2, p̄ = (0.7, 0.3)
    h = lambda q: -(q * math.log2(q) + (1 - q) * math.log2(1 - q))  # noqa: E731
    scores = scores_of([[0.9, 0.1], [0.5, 0.5]])
    assert scores["target_im"] == pytest.approx(h(0.7) - (h(0.9) + 1) / 2, rel=1e-5)


def test_bnm_through_the_gram_matrix_is_the_nuclear_norm_also_when_streamed_in_chunks():
    generator = torch.Generator().manual_seed(0)
    logits = 3 * torch.randn(4, 5, 6, 7, generator=generator)
    explicit = torch.softmax(logits.double(), dim=1).movedim(1, -1).reshape(-1, 5)
    expected = float(torch.linalg.matrix_norm(explicit, "nuc")) / explicit.shape[0]
    assert bnm_from_gram(explicit.T @ explicit, explicit.shape[0]) == pytest.approx(expected, rel=1e-10)
    whole, chunked = LabelFreeValidators(5), LabelFreeValidators(5)
    whole.update(logits)
    for chunk in logits.split([1, 2, 1]):
        chunked.update(chunk)
    assert whole.scores()["target_bnm"] == pytest.approx(expected, rel=1e-6)
    assert chunked.scores() == pytest.approx(whole.scores(), rel=1e-6)


def test_snd_of_three_hand_placed_points():
    # u1 = u2 = (1, 0), u3 = (0, 1): cos(1, 2) = 1, every other pair 0.
    # rows 1 and 2: softmax(1/τ, 0) over the two others; row 3: softmax(0, 0) = (½, ½), entropy ln 2.
    points = [[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]
    for temperature in (1.0, 0.05):
        q = 1 / (1 + math.exp(-1 / temperature))
        near = -(q * math.log(q) + (1 - q) * math.log(1 - q))
        expected = (2 * near + math.log(2)) / 3
        assert soft_neighbourhood_density(torch.tensor(points), temperature) == pytest.approx(expected, rel=1e-9)
    assert scores_of(points)["target_snd"] == pytest.approx(soft_neighbourhood_density(torch.tensor(points)), rel=1e-6)


def test_the_snd_sample_is_seeded_capped_and_the_same_however_the_pass_is_batched():
    generator = torch.Generator().manual_seed(1)
    logits = torch.randn(6, 4, 5, 5, generator=generator)  # 150 pixels
    whole, chunked = LabelFreeValidators(4, snd_pixels=16), LabelFreeValidators(4, snd_pixels=16)
    whole.update(logits)
    for chunk in logits.split(1):
        chunked.update(chunk)
    assert whole.sample.shape == chunked.sample.shape == (16, 4)
    pixels = torch.softmax(logits, dim=1).movedim(1, -1).reshape(-1, 4)
    distance = (whole.sample[:, None] - pixels).abs().sum(-1)  # 16×150: each sampled row is one real pixel, each once
    assert float(distance.min(1).values.max()) < 1e-6
    picked = set(distance.argmin(1).tolist())
    assert len(picked) == 16
    assert picked == set((chunked.sample[:, None] - pixels).abs().sum(-1).argmin(1).tolist())
    other_seed = LabelFreeValidators(4, snd_pixels=16, seed=1)
    other_seed.update(logits)
    assert picked != set((other_seed.sample[:, None] - pixels).abs().sum(-1).argmin(1).tolist())


def test_evaluation_reports_every_target_validator_without_reading_labels():
    logits = torch.tensor([1.0, 0.0]).view(1, 2, 1, 1).expand(1, 2, 2, 2)
    images = torch.zeros(1, 3, 2, 2)
    labelled = evaluate_segmenters([(constant_segmenter(logits), 1.0)], [(images, torch.ones(1, 2, 2).long())], 2,
                                   ("road", "car"), torch.device("cpu"))
    relabelled = evaluate_segmenters([(constant_segmenter(logits), 1.0)], [(images, torch.zeros(1, 2, 2).long())], 2,
                                     ("road", "car"), torch.device("cpu"))
    target = {name for name in VALIDATORS if name.startswith("target_")}
    assert target <= set(labelled)
    assert {k: labelled[k] for k in target} == {k: relabelled[k] for k in target}
    assert labelled["target_miou"] != relabelled["target_miou"]


def test_source_val_miou_is_the_miou_on_the_held_out_source_split(tiny_config, tiny_domains):
    source, target = tiny_domains
    held_out = torch.utils.data.TensorDataset(source.tensors[0][:3], source.tensors[1][:3])
    trainer = Trainer(tiny_config(method="source_only"), source, target, num_classes=NUM_CLASSES,
                      class_names=tuple(map(str, range(NUM_CLASSES))))
    metrics = trainer.evaluate(target, held_out)
    alone = trainer.evaluate(held_out)
    assert "source_val_miou" not in alone
    assert metrics["source_val_miou"] == pytest.approx(alone["target_miou"], rel=1e-12)
    assert metrics["target_miou"] == trainer.evaluate(target)["target_miou"]


def test_source_val_miou_on_a_fixture_by_hand():
    # predicted road everywhere; labels: 3 road, 1 car → IoU road 3/4, car 0 → mIoU 37.5
    logits = torch.tensor([2.0, 0.0]).view(1, 2, 1, 1).expand(1, 2, 2, 2)
    loader = [(torch.zeros(1, 3, 2, 2), torch.tensor([[[0, 0], [0, 1]]]))]
    confusion = score_segmenters([(constant_segmenter(logits), 1.0)], loader, 2, torch.device("cpu"))
    assert confusion.mean_iou() * 100 == pytest.approx(37.5)
