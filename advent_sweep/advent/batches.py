"""Endless, resumable batches from a dataset: the data order is part of a checkpoint.

Each epoch is a fresh permutation drawn from (seed, epoch), so the order after a resume
is a pure function of the saved (epoch, position) and equals the order of an
uninterrupted run. Loader workers may prefetch ahead; the saved state counts only the
batches actually handed to the trainer.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset


def _epoch_permutation(size: int, seed: int, epoch: int) -> list[int]:
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(size, generator=generator).tolist()


def _index_batches(size: int, batch_size: int, seed: int, epoch: int, position: int) -> Iterator[tuple[list[int], int, int]]:
    """Yield (indices, epoch, position after this batch); a short epoch tail is dropped."""
    if batch_size > size:
        raise ValueError(f"batch size {batch_size} exceeds the dataset's {size} items")
    while True:
        order = _epoch_permutation(size, seed, epoch)
        while position + batch_size <= size:
            yield order[position : position + batch_size], epoch, position + batch_size
            position += batch_size
        epoch, position = epoch + 1, 0


class BatchStream:
    """Batches drawn forever from ``dataset`` in a seeded, resumable order."""

    def __init__(self, dataset: Dataset, batch_size: int, seed: int, num_workers: int = 0, pin_memory: bool = False) -> None:
        self.dataset = dataset
        self.batch_size = batch_size
        self.seed = seed
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self._start(epoch=0, position=0)

    def _start(self, epoch: int, position: int) -> None:
        self.epoch, self.position = epoch, position
        size = len(self.dataset)  # type: ignore[arg-type]
        self._states = _index_batches(size, self.batch_size, self.seed, epoch, position)
        sampler = (indices for indices, _, _ in _index_batches(size, self.batch_size, self.seed, epoch, position))
        loader = DataLoader(self.dataset, batch_sampler=sampler, num_workers=self.num_workers, pin_memory=self.pin_memory)
        self._batches = iter(loader)

    def next(self) -> Any:
        """The next batch; the stream's state advances past it."""
        batch = next(self._batches)
        _, self.epoch, self.position = next(self._states)
        return batch

    def state_dict(self) -> dict[str, int]:
        """Where the stream stands (epoch, position) and what fixes its order (seed, batch size)."""
        return {"epoch": self.epoch, "position": self.position, "seed": self.seed, "batch_size": self.batch_size}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Continue from a ``state_dict()``: the next batch is the one an unbroken run would draw."""
        self.seed, self.batch_size = state["seed"], state["batch_size"]
        self._start(state["epoch"], state["position"])
