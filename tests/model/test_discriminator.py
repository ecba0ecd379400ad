"""ADVENT's fully convolutional discriminator: official size and patch layout."""

import torch
from torch import nn

from advent_sweep.model import build_discriminator


def test_discriminator_has_official_parameter_count():
    assert sum(p.numel() for p in build_discriminator(19).parameters()) == 2_781_121


def test_discriminator_structure():
    d = build_discriminator(16)
    convs = [m for m in d if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(16, 64), (64, 128), (128, 256), (256, 512), (512, 1)]
    assert {(c.kernel_size, c.stride, c.padding) for c in convs} == {((4, 4), (2, 2), (1, 1))}
    assert [m.negative_slope for m in d if isinstance(m, nn.LeakyReLU)] == [0.2] * 4
    assert not isinstance(d[-1], nn.LeakyReLU)  # raw logits for BCE-with-logits


def test_discriminator_turns_512x1024_map_into_16x32_logits():
    with torch.no_grad():
        logits = build_discriminator(19)(torch.rand(1, 19, 512, 1024))
    assert logits.shape == (1, 1, 16, 32)


def test_discriminator_is_fully_convolutional():
    with torch.no_grad():
        assert build_discriminator(3)(torch.rand(2, 3, 64, 96)).shape == (2, 1, 2, 3)
