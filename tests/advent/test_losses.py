import math

import pytest
import torch

from advent_sweep.advent import losses


def test_uniform_prediction_has_entropy_one():
    probabilities = torch.full((2, 4, 3, 5), 0.25)
    assert losses.entropy_map(probabilities).shape == (2, 3, 5)
    assert torch.allclose(losses.entropy_map(probabilities), torch.ones(2, 3, 5))
    assert losses.entropy_loss(probabilities).item() == pytest.approx(1.0)


def test_one_hot_prediction_has_entropy_zero():
    probabilities = torch.zeros(1, 19, 2, 2)
    probabilities[:, 3] = 1.0
    assert losses.entropy_loss(probabilities).item() == pytest.approx(0.0, abs=1e-12)


def test_self_information_matches_hand_computation():
    # P = (0.5, 0.25, 0.25) over C = 3: I_c = -P_c log2 P_c / log2 3
    probabilities = torch.tensor([0.5, 0.25, 0.25]).view(1, 3, 1, 1)
    expected = torch.tensor([0.5 * 1, 0.25 * 2, 0.25 * 2]) / math.log2(3)
    assert torch.allclose(losses.self_information_map(probabilities).view(3), expected)
    assert losses.entropy_map(probabilities).item() == pytest.approx(1.5 / math.log2(3))


def test_entropy_range_mask_selects_exactly_the_pixels_in_range():
    entropy = torch.tensor([[0.0, 0.1, 0.3, 0.5], [0.7, 0.9, 1.0, 0.29]]).unsqueeze(0)
    mask = losses.entropy_range_mask(entropy, 0.3, 0.9)
    expected = torch.tensor([[False, False, True, True], [True, True, False, False]]).unsqueeze(0)
    assert torch.equal(mask, expected)
    assert losses.entropy_range_mask(entropy, 0.0, 1.0).all()


def test_full_range_keeps_a_near_uniform_float32_prediction():
    # softmax of equal logits over 19 classes: float32 rounding sums the entropy to 1.0000001 (here)
    entropy = losses.entropy_map(torch.softmax(torch.zeros(1, 19, 4, 4), dim=1))
    assert entropy.dtype == torch.float32 and entropy.max().item() > 1.0
    assert losses.entropy_range_mask(entropy, 0.0, 1.0).sum().item() == 16
    assert losses.entropy_range_mask(entropy, 0.5, 1.0).sum().item() == 16
    assert losses.entropy_range_mask(entropy, 0.0, 0.9).sum().item() == 0


def test_entropy_loss_averages_only_in_range_pixels():
    uniform = torch.full((1, 2, 1, 1), 0.5)  # entropy 1
    confident = torch.tensor([1.0, 0.0]).view(1, 2, 1, 1)  # entropy 0
    probabilities = torch.cat([uniform, confident, uniform], dim=3)  # 1×2×1×3, E = (1, 0, 1)
    mask = torch.tensor([[[True, True, False]]])
    assert losses.entropy_loss(probabilities, mask).item() == pytest.approx(0.5)
    assert losses.entropy_loss(probabilities, torch.zeros_like(mask)).item() == 0.0


def test_class_ratio_prior_is_zero_when_every_class_is_predicted_enough():
    probabilities = torch.tensor([0.5, 0.3, 0.2]).view(1, 3, 1, 1).expand(2, 3, 4, 4)
    prior = [0.5, 0.3, 0.2]
    assert losses.class_ratio_prior_loss(probabilities, prior, mu=1.0).item() == pytest.approx(0.0, abs=1e-6)
    assert losses.class_ratio_prior_loss(probabilities, [0.9, 0.05, 0.05], mu=0.5).item() == pytest.approx(0.0)


def test_class_ratio_prior_equals_hand_sum():
    # p_t = mean over two pixels of (0.7, 0.2, 0.1) and (0.9, 0.1, 0.0) = (0.8, 0.15, 0.05)
    probabilities = torch.tensor([[0.7, 0.9], [0.2, 0.1], [0.1, 0.0]]).view(1, 3, 1, 2)
    prior = [0.4, 0.35, 0.25]
    mu = 0.8
    # mu * p_s = (0.32, 0.28, 0.20); max(0, .) of differences: 0 + 0.13 + 0.15
    assert losses.class_ratio_prior_loss(probabilities, prior, mu).item() == pytest.approx(0.28)
    assert losses.class_ratio_prior_loss(probabilities, prior, 0.0).item() == 0.0
    only_first_pixel = torch.tensor([[[True, False]]])
    # p_t = (0.7, 0.2, 0.1): 0 + 0.08 + 0.10
    assert losses.class_ratio_prior_loss(probabilities, prior, mu, only_first_pixel).item() == pytest.approx(0.18)


def test_adversarial_loss_is_bce_with_logits():
    logits = torch.tensor([0.0, 2.0]).view(1, 1, 1, 2)
    expected_source = (math.log(2) + math.log(1 + math.exp(2))) / 2  # label 0
    expected_target = (math.log(2) + math.log(1 + math.exp(-2))) / 2  # label 1
    assert losses.adversarial_loss(logits, 0.0).item() == pytest.approx(expected_source)
    assert losses.adversarial_loss(logits, 1.0).item() == pytest.approx(expected_target)


def test_segmentation_loss_ignores_label_255():
    logits = torch.tensor([[2.0, 0.0], [0.0, 0.0]]).view(1, 2, 1, 2)  # pixel 0 logits (2, 0), pixel 1 (0, 0)
    labels = torch.tensor([[[0, 255]]])
    assert losses.segmentation_loss(logits, labels).item() == pytest.approx(math.log(1 + math.exp(-2)))
    assert losses.segmentation_loss(logits, torch.full_like(labels, 255)).item() == 0.0
