"""Bytes of a kept snapshot (model only) against the resumable checkpoint, per backbone, after one training step.

One step fills the optimizer's momentum buffers and the discriminators' Adam moments, as in any checkpoint
after the first evaluation. Usage: python benchmarks/snapshot_sizes.py [--backbones resnet101 resnet18]
"""

from __future__ import annotations

import argparse
import io

import torch

from advent_sweep.advent.config import TrainConfig
from advent_sweep.advent.trainer import Trainer
from advent_sweep.data import build_domain_data

CLASSES = 19  # GTA5 → Cityscapes


def saved_bytes(state: dict) -> int:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getbuffer().nbytes


def sizes(backbone: str, multi_level: bool) -> tuple[int, int]:
    config = TrainConfig.model_validate({
        "method": "advent", "backbone": backbone, "multi_level": multi_level, "param_repeats": "unique", "iterations": 1,
        "poly_horizon": 1, "device": "cpu", "threads": 1, "data": {"synthetic": {"seed": 0, "size": [32, 32], "num_train": 2, "num_val": 1}}})
    data = build_domain_data(config.data)
    trainer = Trainer(config, data.source, data.target, num_classes=CLASSES)
    images = torch.randn(1, 3, 32, 32)
    trainer.train_step(images, torch.randint(0, CLASSES, (1, 32, 32)), images)
    snapshot = {"config": trainer.config.model_dump(mode="json"), "iteration": 1, "metrics": {},
                "segmenter": trainer.segmenter.state_dict()}
    return saved_bytes(trainer.state_dict()), saved_bytes(snapshot)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", nargs="+", default=["resnet101", "resnet18"])
    args = parser.parse_args()
    print(f"{'backbone':<22} {'checkpoint MB':>14} {'snapshot MB':>12} {'ratio':>6}")
    for backbone in args.backbones:
        for multi_level in ((True,) if backbone == "resnet101" else (False,)):
            checkpoint, snapshot = sizes(backbone, multi_level)
            name = f"{backbone} ({'multi' if multi_level else 'single'}-level)"
            print(f"{name:<22} {checkpoint / 1e6:>14.1f} {snapshot / 1e6:>12.1f} {snapshot / checkpoint:>6.2f}")


if __name__ == "__main__":
    main()
