"""The Parquet schema of a sweep's results (version 1): column names and types, one place.

Readers need none of this package: the files carry the schema and
``advent_sweep.schema_version`` in their metadata.
"""

from __future__ import annotations

import json
import typing
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from advent_sweep.advent.config import TrainConfig
from advent_sweep.selection import VALIDATORS

SCHEMA_VERSION = 1
SCHEMA_METADATA = {b"advent_sweep.schema_version": str(SCHEMA_VERSION).encode()}
LOSS_COLUMNS = (
    "loss_seg_src_main", "loss_seg_src_aux", "loss_ent_trg_main", "loss_ent_trg_aux", "loss_adv_trg_main",
    "loss_adv_trg_aux", "loss_d_main", "loss_d_aux", "loss_class_prior",
)
# target_miou_13 (SYNTHIA's mIoU*) and source_val_miou (no held-out source split) are null for data that lacks them.
METRIC_COLUMNS = ("target_miou", "target_miou_13", *VALIDATORS, *LOSS_COLUMNS, "iterations_per_s")
_ARROW_TYPES = {bool: pa.bool_(), int: pa.int64(), float: pa.float64(), str: pa.string()}


def _arrow_type(annotation: Any) -> pa.DataType:
    """bool/int/float map to themselves, and X | None to X's type (nullable); strings, literals and other unions to string."""
    given = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
    if len(given) == 1 and type(None) in typing.get_args(annotation):
        annotation = given[0]
    return _ARROW_TYPES.get(annotation, pa.string())


def config_fields() -> list[pa.Field]:
    """``config.<field>`` for every TrainConfig field but ``data``, then the data pair's names."""
    hints = typing.get_type_hints(TrainConfig)
    fields = [pa.field(f"config.{name}", _arrow_type(hints[name])) for name in TrainConfig.model_fields if name != "data"]
    return [*fields, pa.field("data.source", pa.string()), pa.field("data.target", pa.string()), pa.field("data.protocol", pa.int64())]


def config_columns(config: TrainConfig) -> dict[str, Any]:
    """One column per TrainConfig field; a nested setting (source_warmup, keep_snapshots) as its JSON text."""
    values = config.model_dump(mode="json")
    columns = {f"config.{name}": json.dumps(value, sort_keys=True) if isinstance(value, (dict, list)) else value
               for name, value in values.items() if name != "data"}
    columns.update({"data.source": config.data.source, "data.target": config.data.target, "data.protocol": config.data.resolved_protocol})
    return columns


def report_schema(class_names: Sequence[str]) -> pa.Schema:
    fields = [
        pa.field("sweep", pa.string()), pa.field("trial_id", pa.string()), pa.field("iteration", pa.int64()),
        pa.field("wall_time_s", pa.float64()), pa.field("timestamp", pa.timestamp("us", tz="UTC")),
        pa.field("node", pa.string()), pa.field("attempt", pa.int64()),
        *(pa.field(name, pa.float64()) for name in METRIC_COLUMNS),
        *(pa.field(f"iou.{name}", pa.float64()) for name in class_names),
        *config_fields(),
    ]
    return pa.schema(fields, metadata=SCHEMA_METADATA)


def trial_schema() -> pa.Schema:
    fields = [
        pa.field("sweep", pa.string()), pa.field("trial_id", pa.string()), pa.field("status", pa.string()),
        pa.field("metric", pa.string()), pa.field("mode", pa.string()),
        pa.field("best_value", pa.float64()), pa.field("best_iteration", pa.int64()),
        pa.field("last_value", pa.float64()), pa.field("last_iteration", pa.int64()),
        pa.field("min_entropy_value", pa.float64()), pa.field("min_entropy_iteration", pa.int64()),
        pa.field("iterations", pa.int64()), pa.field("num_reports", pa.int64()), pa.field("node", pa.string()),
        pa.field("resources_cpu", pa.float64()), pa.field("resources_gpu", pa.float64()),
        pa.field("wall_time_s", pa.float64()), pa.field("checkpoint_path", pa.string()),
        pa.field("trial_path", pa.string()),  # the trial's folder: its snapshots/ (advent/snapshots.py) are there
        pa.field("error", pa.string()), pa.field("config_json", pa.string()),
        *config_fields(),
    ]
    return pa.schema(fields, metadata=SCHEMA_METADATA)
