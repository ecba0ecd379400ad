"""Trainer speed: iterations per second of each ADVENT method, eager fp32 against the fastest path.

The fastest path this machine allows is torch.compile of the segmenter, plus channels_last
and bf16 autocast on CUDA. Both variants of a method are built once, warmed up (compile
happens there), then timed in alternating rounds so that load from other processes hits
both alike; the ratio is printed from this one run.

``--deterministic`` instead times eager fp32 with ``deterministic: false`` against ``true``
(the cost of reproducible CUDA kernels). The switches are process-wide, so each round sets
its variant's before it runs; both variants share the cuBLAS workspace setting, which
cuBLAS reads once per process. On CPU the switch changes nothing, and nothing is timed.

``--logging`` instead times eager fp32 without a logger against logging at the defaults (log_interval,
viz_interval: losses, learning rates and D outputs every log_interval steps, six image panels every
viz_interval) into TensorBoard event files in a temporary folder: the cost of watching a run. Use
rounds × steps of at least viz_interval, so that the panels are part of what is timed. Beside the ratio
it prints the time spent inside the logger's calls per step (a share of the logged step): on a loaded
machine the ratio's noise can exceed the cost, which this second figure measures directly.

    python benchmarks/trainer_speed.py                      # CPU, resnet18, 64x64, batch 4
    python benchmarks/trainer_speed.py --device cuda --backbone resnet101 --size 512 256 --batch 1
    python benchmarks/trainer_speed.py --device cuda --backbone resnet101 --size 512 256 --batch 1 --deterministic
    python benchmarks/trainer_speed.py --logging --methods advent --batch 4 --steps 50 --rounds 4   # the quickstart's size
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch

from advent_sweep.advent.config import TrainConfig
from advent_sweep.advent.run import build_trainer
from advent_sweep.advent.run_logger import TensorBoardLogger
from advent_sweep.advent.trainer import use_deterministic_cuda
from advent_sweep.data import build_domain_data

METHODS = ("source_only", "minent", "advent", "advent_minent")


class TimedLogger:
    """A logger that counts the seconds spent in the logger it wraps (writing events, encoding panels)."""

    def __init__(self, logger: TensorBoardLogger) -> None:
        self.logger, self.seconds = logger, 0.0

    def _timed(self, call, *args) -> None:
        started = time.perf_counter()
        call(*args)
        self.seconds += time.perf_counter() - started

    def scalars(self, step, values) -> None:
        self._timed(self.logger.scalars, step, values)

    def images(self, step, images) -> None:
        self._timed(self.logger.images, step, images)

    def flush(self) -> None:
        self._timed(self.logger.flush)

    def close(self) -> None:
        self.logger.close()


def make_trainer(args: argparse.Namespace, method: str, variant: str):
    """``variant``: eager (fp32, no logger), fast (compile; on CUDA also channels_last and bf16), deterministic
    (eager fp32) or logged (eager fp32, TensorBoard at the default intervals into ``args.log_dir``)."""
    cuda, fast = args.device.startswith("cuda"), variant == "fast"
    config = TrainConfig.model_validate({
        "method": method, "backbone": args.backbone, "multi_level": args.multi_level, "param_repeats": "unique",
        "lr": 1e-3, "iterations": 10_000, "poly_horizon": 10_000, "batch_size_source": args.batch,
        "batch_size_target": args.batch, "device": args.device, "seed": 0,
        "compile": fast, "channels_last": fast and cuda, "amp": "bf16" if fast and cuda else "off",
        "deterministic": variant == "deterministic",
        "data": {"synthetic": {"seed": 0, "size": list(args.size), "num_train": 64, "num_val": 8}},
    })
    trainer = build_trainer(config, build_domain_data(config.data))
    if variant == "logged":
        trainer.logger = TimedLogger(TensorBoardLogger(f"{args.log_dir}/{method}"))
    return trainer


def timed_steps(trainer, steps: int) -> float:
    if trainer.device.type == "cuda":
        use_deterministic_cuda(trainer.config.deterministic)  # (process-wide: the other variant's may be on)
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(steps):
        trainer.step()
    if trainer.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--size", type=int, nargs=2, default=(64, 64), metavar=("W", "H"))
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--multi-level", action="store_true")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--deterministic", action="store_true", help="time deterministic: false against true (CUDA only)")
    parser.add_argument("--logging", action="store_true", help="time no logger against TensorBoard logging at the defaults")
    args = parser.parse_args()

    if args.deterministic and not args.device.startswith("cuda"):
        print(f"device {args.device}: deterministic changes nothing on CPU (deterministic given its threads); nothing to time")
        return
    print(f"device {args.device}, torch {torch.__version__}, {torch.get_num_threads()} threads, backbone {args.backbone}, "
          f"{args.size[0]}x{args.size[1]}, batch {args.batch}, multi_level {args.multi_level}")
    base, other = ("eager", "deterministic") if args.deterministic else ("eager", "logged") if args.logging else ("eager", "fast")
    if args.logging:
        defaults = TrainConfig.model_fields
        print(f"logged: log_interval {defaults['log_interval'].default}, viz_interval {defaults['viz_interval'].default}; "
              f"{args.warmup} + {args.rounds} x {args.steps} steps per variant")
    args.log_dir = tempfile.mkdtemp(prefix="trainer-speed-")
    print(f"{'method':<14} {base + ' it/s':>11} {other + ' it/s':>18} {other + '/' + base:>20}"
          + (f" {'in logger, ms/step':>20} {'share of step':>14}" if args.logging else ""))
    for method in args.methods:
        trainers = {variant: make_trainer(args, method, variant) for variant in (base, other)}
        for trainer in trainers.values():
            timed_steps(trainer, args.warmup)
            if args.logging and trainer.logger is not None:
                trainer.logger.seconds = 0.0
        seconds = {variant: 0.0 for variant in trainers}
        for _ in range(args.rounds):
            for variant, trainer in trainers.items():
                seconds[variant] += timed_steps(trainer, args.steps)
        rate = {variant: args.steps * args.rounds / s for variant, s in seconds.items()}
        logged = ""
        if args.logging:
            in_logger = trainers[other].logger.seconds / (args.steps * args.rounds)
            logged = f" {in_logger * 1e3:>20.2f} {in_logger * rate[other]:>13.2%}"
        print(f"{method:<14} {rate[base]:>11.2f} {rate[other]:>18.2f} {rate[other] / rate[base]:>19.2f}x{logged}")


if __name__ == "__main__":
    main()
