import pytest
import torch
from torch.utils.data import TensorDataset

from advent_sweep.advent.config import TrainConfig

NUM_CLASSES = 4


def striped_scenes(count: int, size: int, seed: int, shift: float = 0.0) -> TensorDataset:
    """Tiny scenes: horizontal bands of 4 classes, each with its own colour (+ a domain shift)."""
    generator = torch.Generator().manual_seed(seed)
    palette = torch.tensor([[0.2, 0.2, 0.2], [0.8, 0.1, 0.1], [0.1, 0.7, 0.2], [0.3, 0.4, 0.9]])
    labels = torch.zeros(count, size, size, dtype=torch.int64)
    for i in range(count):
        cuts = sorted(torch.randint(1, size, (3,), generator=generator).tolist())
        for c, (top, bottom) in enumerate(zip([0, *cuts], [*cuts, size])):
            labels[i, top:bottom] = c
    images = palette[labels].permute(0, 3, 1, 2) + shift
    images = (images + 0.05 * torch.randn(images.shape, generator=generator)).clamp(0, 1)
    return TensorDataset(images, labels)


@pytest.fixture
def tiny_config():
    def make(**overrides) -> TrainConfig:
        values = dict(backbone="resnet18", iterations=50, poly_horizon=100, eval_interval=5, lr=1e-2,
                      lr_discriminator=1e-4, batch_size_source=2, batch_size_target=2, device="cpu")
        values.update(overrides)
        return TrainConfig(**values)

    return make


@pytest.fixture
def tiny_domains():
    return striped_scenes(8, 32, seed=0), striped_scenes(8, 32, seed=1, shift=0.1)
