"""Fake sweeps written with pyarrow in the exact Parquet schema of DESIGN.md ("Results in Parquet").

The analysis is tested against the contract, not against the sink's code, so a change on
either side that breaks the schema shows up here. Every number is known to the tests
through :class:`FakeTrial`, so expected values are computed in plain Python.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from itertools import product
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from advent_sweep.advent.config import TrainConfig
from advent_sweep.analysis import SweepResults, load_results

CLASSES = ("road", "sky", "car")
ITERATIONS = (100, 200, 300, 400)
METHODS = ("source_only", "minent", "advent", "advent_minent")
BACKBONES = ("resnet101", "resnet18")
LOSSES = ("loss_seg_src_main", "loss_seg_src_aux", "loss_ent_trg_main", "loss_ent_trg_aux", "loss_adv_trg_main",
          "loss_adv_trg_aux", "loss_d_main", "loss_d_aux", "loss_class_prior")
METADATA = {b"advent_sweep.schema_version": b"1"}
START = datetime(2025, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True)
class FakeTrial:
    """One trial: its config and one mIoU and entropy per report, at ITERATIONS[:len(miou)] (the other validators derive from them)."""

    trial_id: str
    config: TrainConfig
    miou: tuple[float, ...]
    entropy: tuple[float, ...]
    status: str = "completed"

    @property
    def iterations(self) -> tuple[int, ...]:
        return ITERATIONS[: len(self.miou)]


def fake_trials(seed: int = 0) -> list[FakeTrial]:
    """16 trials (4 methods x 2 backbones x 2 seeds, every third stopped after 2 reports) and a 'spike'.

    The spike is best early and poor later, so rules best, last and min_iterations pick differently.
    """
    rng = random.Random(seed)
    base = {"source_only": 30.0, "minent": 38.0, "advent": 40.0, "advent_minent": 42.0}
    trials = [FakeTrial("spike", _config(rng, "advent", "resnet18", 0), (80.0, 10.0, 12.0, 11.0), (0.5, 0.4, 0.3, 0.35))]
    for index, (method, backbone, run_seed) in enumerate(product(METHODS, BACKBONES, (0, 1))):
        reports = 2 if index % 3 == 2 else 4
        miou = tuple(round(base[method] + rng.uniform(-5, 5) + 2 * k, 3) for k in range(reports))
        entropy = tuple(round(rng.uniform(0.1, 0.6), 4) for _ in range(reports))
        status = "stopped" if reports == 2 else "completed"
        trials.append(FakeTrial(f"t{index:02d}", _config(rng, method, backbone, run_seed), miou, entropy, status))
    return trials


def _config(rng: random.Random, method: str, backbone: str, seed: int) -> TrainConfig:
    low, high = rng.choice([(0.0, 1.0), (0.1, 0.9), (0.2, 1.0)])
    return TrainConfig(
        method=method, backbone=backbone, seed=seed, iterations=400, poly_horizon=1000, eval_interval=100,
        lambda_ent_main=10 ** rng.uniform(-5, -2), lambda_adv_main=10 ** rng.uniform(-5, -2),
        class_prior_mu=rng.choice([0.0, 0.3, 0.6, 0.9]), entropy_low=low, entropy_high=high,
    )


def _config_columns(config: TrainConfig) -> dict[str, tuple[pa.DataType, object]]:
    """config.<field> and data.* columns with the contract's types (strings, bool, int64, float64)."""
    types = {bool: pa.bool_(), int: pa.int64(), float: pa.float64()}
    columns = {
        f"config.{name}": (types.get(TrainConfig.model_fields[name].annotation, pa.string()),
                           json.dumps(list(value)) if isinstance(value, tuple) else value)  # keep_snapshots: JSON text
        for name, value in config.model_dump(exclude={"data"}).items()
    }
    columns["data.source"] = (pa.string(), config.data.source)
    columns["data.target"] = (pa.string(), config.data.target)
    columns["data.protocol"] = (pa.int64(), config.data.protocol)
    return columns


def _table(rows: list[dict[str, tuple[pa.DataType, object]]]) -> pa.Table:
    schema = pa.schema([(name, kind) for name, (kind, _) in rows[0].items()], metadata=METADATA)
    return pa.Table.from_pylist([{name: value for name, (_, value) in row.items()} for row in rows], schema=schema)


def _report_row(sweep: str, trial: FakeTrial, k: int) -> dict[str, tuple[pa.DataType, object]]:
    f64, miou = pa.float64(), trial.miou[k]
    row = {
        "sweep": (pa.string(), sweep), "trial_id": (pa.string(), trial.trial_id),
        "iteration": (pa.int64(), trial.iterations[k]), "wall_time_s": (f64, 10.0 * (k + 1)),
        "timestamp": (pa.timestamp("us", tz="UTC"), START + timedelta(seconds=10 * (k + 1))),
        "node": (pa.string(), "127.0.0.1"), "attempt": (pa.int64(), 0),
        "target_miou": (f64, miou), "target_entropy": (f64, trial.entropy[k]), "iterations_per_s": (f64, 5.0),
    }
    row |= _validator_columns(miou, trial.entropy[k], k)
    row |= {loss: (f64, float("nan") if trial.config.method == "source_only" and "seg" not in loss else 1.0 / (k + 1)) for loss in LOSSES}
    ious = {"road": miou + 5.0, "sky": miou - 5.0, "car": float("nan") if k == 0 else miou}
    row |= {f"iou.{name}": (f64, ious[name]) for name in CLASSES}
    return row | _config_columns(trial.config)


def _validator_columns(miou: float, entropy: float, k: int) -> dict[str, tuple[pa.DataType, object]]:
    """The label-free validators, derived from a report's mIoU and entropy; source_val_miou is never measured (all null)."""
    f64 = pa.float64()
    return {"target_im": (f64, round(0.9 - entropy, 4)), "target_bnm": (f64, round(miou / 100 * (1 - entropy / 2), 4)),
            "target_snd": (f64, round(0.5 + 0.1 * k - entropy / 4, 4)), "source_val_miou": (f64, None)}


def _trial_row(sweep: str, trial: FakeTrial, mode: str) -> dict[str, tuple[pa.DataType, object]]:
    f64, string, i64 = pa.float64(), pa.string(), pa.int64()
    pick = max if mode == "max" else min
    best = pick(range(len(trial.miou)), key=lambda k: trial.miou[k])
    calm = min(range(len(trial.miou)), key=lambda k: trial.entropy[k])
    row = {
        "sweep": (string, sweep), "trial_id": (string, trial.trial_id), "status": (string, trial.status),
        "metric": (string, "target_miou"), "mode": (string, mode),
        "best_value": (f64, trial.miou[best]), "best_iteration": (i64, trial.iterations[best]),
        "last_value": (f64, trial.miou[-1]), "last_iteration": (i64, trial.iterations[-1]),
        "min_entropy_value": (f64, trial.miou[calm]), "min_entropy_iteration": (i64, trial.iterations[calm]),
        "iterations": (i64, trial.iterations[-1]), "num_reports": (i64, len(trial.miou)), "node": (string, "127.0.0.1"),
        "resources_cpu": (f64, 1.0), "resources_gpu": (f64, 0.0), "wall_time_s": (f64, 10.0 * len(trial.miou)),
        "checkpoint_path": (string, None), "error": (string, None), "config_json": (string, trial.config.model_dump_json()),
    }
    return row | _config_columns(trial.config)


def write_sweep(storage: Path, name: str, trials: list[FakeTrial], unlisted: list[FakeTrial] = ()) -> Path:
    """Write <storage>/<name>/ as the sink does: reports/ in two part files per trial, trials.parquet, sweep.json.

    ``unlisted`` trials have reports but no trials.parquet row yet (a sweep still running).
    """
    folder = storage / name
    (folder / "reports").mkdir(parents=True)
    for trial in [*trials, *unlisted]:
        rows = [_report_row(name, trial, k) for k in range(len(trial.miou))]
        for part, chunk in enumerate((rows[:1], rows[1:])):
            if chunk:
                pq.write_table(_table(chunk), folder / "reports" / f"part-{trial.trial_id}-{part}.parquet")
    pq.write_table(_table([_trial_row(name, trial, "max") for trial in trials]), folder / "trials.parquet")
    spec = {"name": name, "metric": "target_miou", "mode": "max", "schema_version": 1, "spec": {"name": name}}
    (folder / "sweep.json").write_text(json.dumps(spec))
    return folder


@pytest.fixture(scope="session")
def trials() -> list[FakeTrial]:
    return fake_trials()


@pytest.fixture(scope="session")
def sweep_dir(tmp_path_factory: pytest.TempPathFactory, trials: list[FakeTrial]) -> Path:
    return write_sweep(tmp_path_factory.mktemp("storage"), "fake", trials)


@pytest.fixture(scope="session")
def results(sweep_dir: Path) -> SweepResults:
    return load_results(sweep_dir)
