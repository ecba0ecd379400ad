"""Cost of the label-free validators: evaluation time with them against mIoU alone, side by side in one run.

Three cases, each timed in alternating rounds (so that load from other processes hits both
alike), median over rounds:
  quickstart   the quickstart's trainer (resnet18, 64×64) on its 100 target-val images;
  deeplab      the paper's DeepLab-v2 ResNet-101 (random weights, eval mode) on 1024×512
               images, its 19-class logits upsampled to 1024×512 labels;
  logits only  the same 1024×512 logits from a segmenter that only returns random ones: no
               network time hides the validators' cost (a bound, not an evaluation).
"without" is the mIoU pass alone (score_segmenters); "with" is the evaluation the trainer
runs (mIoU + target_entropy, target_im, target_bnm, target_snd in the same pass). The
quickstart also times the held-out source split's pass (source_val_miou), a second set.

    python benchmarks/validator_cost.py [--rounds 5] [--device cpu]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from advent_sweep.advent.evaluation import evaluate_segmenters, score_segmenters
from advent_sweep.advent.run import build_trainer
from advent_sweep.data import build_domain_data
from advent_sweep.model.deeplabv2 import build_segmenter
from advent_sweep.sweep.spec import SweepSpec

QUICKSTART = Path(__file__).parents[1] / "search_spaces" / "quickstart.yaml"


def timed(run: Callable[[], object], device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    run()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - started


def side_by_side(variants: dict[str, Callable[[], object]], rounds: int, device: torch.device) -> dict[str, list[float]]:
    for run in variants.values():  # warm-up round, not counted
        run()
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, run in variants.items():
            times[name].append(timed(run, device))
    return times


def quickstart_case(rounds: int, device: torch.device) -> dict[str, list[float]]:
    spec = SweepSpec.from_yaml(QUICKSTART)
    config = spec.train_config({"method": "minent", "lambda_ent_main": 1e-3}).model_copy(
        update={"source_warmup": None, "device": device.type})
    data = build_domain_data(config.data)
    trainer = build_trainer(config, data)
    trainer.segmenter.train(False)
    loader = trainer._eval_loader(data.target_val)
    segmenters = [(trainer.forward, 1.0)]
    args = (trainer.num_classes, trainer.device, trainer._to_device, trainer._autocast)
    return side_by_side({
        "without": lambda: score_segmenters(segmenters, loader, *args),
        "with": lambda: evaluate_segmenters(segmenters, loader, trainer.num_classes, trainer.class_names, *args[1:]),
        "with + source val": lambda: trainer.evaluate(data.target_val, data.source_val),
    }, rounds, device)


def large_case(rounds: int, device: torch.device, network: bool, images: int) -> dict[str, list[float]]:
    generator = torch.Generator().manual_seed(0)
    labels = [torch.randint(0, 19, (1, 512, 1024), generator=generator) for _ in range(images)]
    if network:
        segmenter = build_segmenter("resnet101", 19, multi_level=False).to(device).train(False)
        loader = [(torch.rand(1, 3, 512, 1024, generator=generator), label) for label in labels]
        segmenters = [(segmenter, 1.0)]
    else:
        logits = [torch.randn(1, 19, 512, 1024, generator=generator).to(device) for _ in range(images)]
        loader = [(torch.tensor([index]), label) for index, label in enumerate(labels)]
        segmenters = [(lambda index: (None, logits[int(index)]), 1.0)]
    names = tuple(f"class{c}" for c in range(19))
    return side_by_side({
        "without": lambda: score_segmenters(segmenters, loader, 19, device),
        "with": lambda: evaluate_segmenters(segmenters, loader, 19, names, device),
    }, rounds, device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    print(f"device {device}, torch threads {torch.get_num_threads()}, {args.rounds} rounds (median, min–max in s)")
    cases = {
        "quickstart (100 images 64x64, resnet18)": lambda: quickstart_case(args.rounds, device),
        "deeplab (DeepLab-v2 ResNet-101, random weights, 2 images 1024x512)": lambda: large_case(args.rounds, device, True, 2),
        "logits only (19 classes, 1024x512, 4 images, no network)": lambda: large_case(args.rounds, device, False, 4),
    }
    for case, measure in cases.items():
        times = measure()
        base = statistics.median(times["without"])
        print(case)
        for name, values in times.items():
            ratios = [v / w for v, w in zip(values, times["without"])]
            print(f"  {name:>18}: {statistics.median(values):.4f} s ({min(values):.4f}–{max(values):.4f}); "
                  f"ratio to without {statistics.median(values) / base:.3f} (per round {min(ratios):.3f}–{max(ratios):.3f})")


if __name__ == "__main__":
    main()
