"""``advent-sweep probe SPACE``: a few timed iterations of the space's costliest configuration on this machine.

The costliest configuration takes, of each searched setting that changes the cost of an iteration, its most
expensive value (the backbone with the most parameters, the method with the most forward and backward
passes, multi-level outputs, the largest batches); every other setting its first choice or low bound. The
timing (training steps plus one evaluation spread over eval_interval) is kept in the storage's cache, where
the forecast of ``launch --dry-run`` and ``validate`` finds it.
"""

from __future__ import annotations

import json
import time
from typing import Any

import torch

from advent_sweep.advent.trainer import Trainer, resolve_device
from advent_sweep.data import build_domain_data
from advent_sweep.model.backbones import BACKBONES
from advent_sweep.storage import filesystem_and_path, write_atomically
from advent_sweep.sweep.forecast import probe_file
from advent_sweep.sweep.spec import SweepSpec
from advent_sweep.sweep.spec_models import CategoricalParam

METHOD_COST = ("source_only", "minent", "advent", "advent_minent")  # cheapest first: each adds passes
LARGER_IS_COSTLIER = ("batch_size_source", "batch_size_target", "multi_level")


def backbone_parameters(name: str) -> int:
    """A backbone's parameter count, built on the meta device (no memory, no weights)."""
    with torch.device("meta"):
        return sum(p.numel() for p in BACKBONES[name]().parameters())


def _costliest(name: str, choices: list[Any]) -> Any:
    if name == "method":
        return max(choices, key=METHOD_COST.index)
    if name == "backbone":
        return max(choices, key=backbone_parameters)
    if name in LARGER_IS_COSTLIER:
        return max(choices)
    return choices[0]


def costliest_params(spec: SweepSpec) -> dict[str, Any]:
    """The searched values of the space's most expensive configuration (see the module docstring)."""
    params: dict[str, Any] = {}
    for name in spec.param_order():
        if not spec.is_active(name, params):
            continue
        param = spec.space[name]
        if isinstance(param, CategoricalParam):
            params[name] = _costliest(name, param.choices)
        else:
            low, high = spec.bounds(name, params)
            params[name] = high if name in LARGER_IS_COSTLIER else low
    return params


def probe_device(spec: SweepSpec) -> str:
    """The device a trial of ``spec`` trains on here, named (``cpu``, or ``cuda:0 (NVIDIA H100 ...)``)."""
    device = resolve_device(spec.base_config.device)
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return str(device)


def probe(spec: SweepSpec, steps: int = 5) -> dict[str, Any]:
    """Time ``steps`` iterations (after one untimed) and one evaluation of the costliest configuration; keep the record."""
    params = costliest_params(spec)
    data = build_domain_data(spec.data, cache_dir=spec.cache_dir)
    config = spec.train_config(params).model_copy(update={"source_warmup": None})  # the warm-up is paid once per sweep
    trainer = Trainer(config, data.source, data.target, num_classes=data.num_classes, class_names=data.class_names,
                      class_prior=data.class_prior if config.class_prior_mu > 0 else None)
    trainer.step()
    started = time.perf_counter()
    for _ in range(steps):
        trainer.step()
    step_seconds = (time.perf_counter() - started) / steps
    started = time.perf_counter()
    trainer.evaluate(data.target_val, data.source_val)
    evaluation_seconds = time.perf_counter() - started
    device = probe_device(spec)
    what = ", ".join(f"{name}={value}" for name, value in params.items())
    record = {
        "seconds_per_iteration": step_seconds + evaluation_seconds / config.eval_interval,
        "step_seconds": step_seconds, "evaluation_seconds": evaluation_seconds, "eval_interval": config.eval_interval,
        "steps": steps, "device": device, "threads": trainer.threads, "params": params,
        "what": f"the costliest configuration ({what or 'no searched setting changes the cost'})",
    }
    filesystem, path = filesystem_and_path(probe_file(spec, params, device))
    filesystem.create_dir(path.rsplit("/", 1)[0], recursive=True)
    write_atomically(path, json.dumps(record, indent=1).encode(), filesystem)
    return record
