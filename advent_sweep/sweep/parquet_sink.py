"""ParquetResultSink: a Ray Tune callback on the driver that streams every report to Parquet.

``<sweep>/reports/part-*.parquet`` gets one new file per flush (the rows that arrived
since the last one) and ``<sweep>/trials.parquet`` is rewritten whole; each file is
written under a dot-name and renamed into place, so readers never see half a file
(pyarrow datasets skip dot-files). On setup the sink reads back what is on disk, so a
trial retried from its checkpoint or a resumed sweep adds no duplicate (trial, iteration).

A trial's status: running, completed (reached the scheduler's max_t), stopped (by ASHA
before it), failed, diverged, or lost (seen starting before a driver crash that Ray's
saved experiment state does not know, so a resume cannot continue it).
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from ray.tune import Callback

from advent_sweep.advent.config import TrainConfig
from advent_sweep.storage import filesystem_and_path, write_atomically
from advent_sweep.sweep import results_schema as rs


def _finite_or_none(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


class ParquetResultSink(Callback):
    """Writes per-report and per-trial rows for one sweep (schema in results_schema.py)."""

    def __init__(
        self,
        sweep_uri: str,
        sweep_name: str,
        metric: str,
        mode: str,
        class_names: Sequence[str],
        train_config: Callable[[dict[str, Any]], TrainConfig],
        max_t: int,
    ) -> None:
        """``max_t``: the iteration a trial may reach (ASHA's max_t, else trainer.iterations); a trial
        that ends before it was stopped by the scheduler."""
        self.sweep_uri = sweep_uri.rstrip("/")
        self.sweep_name = sweep_name
        self.metric, self.mode = metric, mode
        self.class_names = tuple(class_names)
        self.train_config = train_config
        self.max_t = max_t
        self._pending: list[dict[str, Any]] = []
        self._written: set[tuple[str, int]] = set()
        self._trials: dict[str, dict[str, Any]] = {}
        self._reports: dict[str, list[dict[str, Any]]] = {}
        self._trials_dirty = False

    # -- state read back from disk -------------------------------------------------------
    def setup(self, **info: Any) -> None:
        filesystem, root = filesystem_and_path(self.sweep_uri)
        filesystem.create_dir(f"{root}/reports", recursive=True)
        self._pending, self._written, self._reports, self._trials = [], set(), {}, {}
        reports = pads.dataset(f"{root}/reports", filesystem=filesystem, format="parquet")
        columns = list(dict.fromkeys(["trial_id", "iteration", "target_entropy", self.metric]))
        for row in reports.to_table(columns=columns).to_pylist() if reports.files else []:
            self._written.add((row["trial_id"], row["iteration"]))
            self._reports.setdefault(row["trial_id"], []).append(row)
        if filesystem.get_file_info(f"{root}/trials.parquet").type == pafs.FileType.File:
            table = pq.read_table(f"{root}/trials.parquet", filesystem=filesystem)
            self._trials = {row["trial_id"]: row for row in table.to_pylist()}

    # -- Tune events -----------------------------------------------------------------------
    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._trial_row(trial).update(status="running", error=None)
        self._trials_dirty = True

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        step = int(result["iteration"])
        row = self._trial_row(trial)
        row.update(node=result.get("node_ip"), wall_time_s=float(result.get("time_total_s", 0.0)))
        if result.get("diverged"):
            row["status"] = "diverged"
        self._trials_dirty = True
        if (trial.trial_id, step) in self._written:
            return
        config = self.train_config(trial.config)
        report = {
            "sweep": self.sweep_name, "trial_id": trial.trial_id, "iteration": step,
            "wall_time_s": float(result.get("time_total_s", 0.0)), "timestamp": datetime.now(timezone.utc),
            "node": result.get("node_ip"), "attempt": trial.num_failures,
            **{name: _finite_or_none(result.get(name)) for name in rs.METRIC_COLUMNS},
            **{f"iou.{name}": _finite_or_none(result.get(f"iou.{name}")) for name in self.class_names},
            **rs.config_columns(config),
        }
        self._pending.append(report)
        self._written.add((trial.trial_id, step))
        self._reports.setdefault(trial.trial_id, []).append(report)

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._trial_row(trial).update(status="running", error=None)
        self._trials_dirty = True

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        row = self._trial_row(trial)
        if row["status"] != "diverged":
            row["status"] = "completed" if (row["iterations"] or 0) >= self.max_t else "stopped"
        self._flush()

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        row = self._trial_row(trial)
        row["status"] = "failed"
        row["error"] = self._error_text(trial)
        self._flush()

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        if self._pending or self._trials_dirty:
            self._flush()

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        known = {trial.trial_id for trial in trials}
        for trial_id, row in self._trials.items():
            if row["status"] == "running" and trial_id not in known:
                row["status"] = "lost"
        self._flush()

    # -- rows ------------------------------------------------------------------------------
    def _trial_row(self, trial: Any) -> dict[str, Any]:
        row = self._trials.get(trial.trial_id)
        if row is None:
            config = self.train_config(trial.config)
            resources = trial.placement_group_factory.required_resources if trial.placement_group_factory else {}
            row = {
                "sweep": self.sweep_name, "trial_id": trial.trial_id, "status": "running",
                "metric": self.metric, "mode": self.mode, "node": None, "wall_time_s": 0.0, "error": None,
                "resources_cpu": float(resources.get("CPU", 0.0)), "resources_gpu": float(resources.get("GPU", 0.0)),
                "config_json": config.model_dump_json(), **rs.config_columns(config),
            }
            self._trials[trial.trial_id] = row
        checkpoint = trial.checkpoint
        row["checkpoint_path"] = self._checkpoint_uri(checkpoint.path) if checkpoint else row.get("checkpoint_path")
        row.update(self._summary(trial.trial_id))
        return row

    def _summary(self, trial_id: str) -> dict[str, Any]:
        """Best / last / label-free (lowest target entropy) selection of the trial's reports."""
        reports = sorted(self._reports.get(trial_id, []), key=lambda r: r["iteration"])
        scored = [r for r in reports if r.get(self.metric) is not None]
        summary: dict[str, Any] = {"iterations": reports[-1]["iteration"] if reports else 0, "num_reports": len(reports)}
        pick_best = max if self.mode == "max" else min
        best = pick_best(scored, key=lambda r: r[self.metric]) if scored else None
        last = scored[-1] if scored else None
        with_entropy = [r for r in scored if r.get("target_entropy") is not None]
        calm = min(with_entropy, key=lambda r: r["target_entropy"]) if with_entropy else None
        for prefix, chosen in (("best", best), ("last", last), ("min_entropy", calm)):
            summary[f"{prefix}_value"] = chosen[self.metric] if chosen else None
            summary[f"{prefix}_iteration"] = chosen["iteration"] if chosen else None
        return summary

    def _checkpoint_uri(self, path: str) -> str:
        """Ray's checkpoint path is relative to its filesystem: put back the sweep's scheme (s3://, gs://)."""
        if "://" in path or "://" not in self.sweep_uri:
            return path
        return f"{self.sweep_uri.split('://', 1)[0]}://{path}"

    @staticmethod
    def _error_text(trial: Any) -> str | None:
        try:
            with open(trial.error_file) as handle:
                lines = [line for line in handle.read().strip().splitlines() if line.strip()]
            return lines[-1] if lines else None
        except (OSError, TypeError):
            return None

    # -- files -----------------------------------------------------------------------------
    def _write(self, table: pa.Table, path: str) -> None:
        buffer = pa.BufferOutputStream()
        pq.write_table(table, buffer)
        write_atomically(path, buffer.getvalue(), filesystem_and_path(self.sweep_uri)[0])

    def _flush(self) -> None:
        _, root = filesystem_and_path(self.sweep_uri)
        if self._pending:
            table = pa.Table.from_pylist(self._pending, schema=rs.report_schema(self.class_names))
            self._write(table, f"{root}/reports/part-{datetime.now(timezone.utc):%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:8]}.parquet")
            self._pending = []
        if self._trials:
            rows = [{**row, "iterations": row.get("iterations") or 0} for row in self._trials.values()]
            self._write(pa.Table.from_pylist(rows, schema=rs.trial_schema()), f"{root}/trials.parquet")
        self._trials_dirty = False


def write_sweep_metadata(sweep_uri: str, name: str, metric: str, mode: str, spec: dict[str, Any]) -> None:
    """``sweep.json``: what the analysis needs to read the sweep without the space.yaml."""
    filesystem, root = filesystem_and_path(sweep_uri.rstrip("/"))
    filesystem.create_dir(root, recursive=True)
    body = json.dumps({"name": name, "metric": metric, "mode": mode, "schema_version": rs.SCHEMA_VERSION, "spec": spec}, indent=1)
    write_atomically(f"{root}/sweep.json", body.encode(), filesystem)
