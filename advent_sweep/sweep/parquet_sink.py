"""ParquetResultSink: a Ray Tune callback on the driver that streams every report to Parquet.

``<sweep>/reports/part-<level>-<UTC time>-<random>.parquet`` holds the per-report rows, written
in tiers so that a finished sweep is one file and a running one a few, not one per report
(Parquet readers pay per file):

- a flush writes the rows that arrived since the last one as a small level-0 part;
- whenever a level holds FANOUT files they fold into one file of the next level: a row is
  rewritten about log10(flushes) times, never the whole sweep at once;
- at the sweep's end every file under SEALED_ROWS rows folds into one.

Flushes are batched, so the files written grow with the sweep's duration, not with its trials
or reports: at most every FLUSH_EVERY_S on a step's end, and always when Ray saves its experiment
state (``get_state``; every 10 s, and every ``num_to_keep`` trial checkpoints), so a resumed sweep
lacks no report or status that Ray's saved state counts as done: its trials go on from the
checkpoints that state names and report what followed again. ``<sweep>/trials.parquet`` is
rewritten whole, at most once per flush; a finished trial's row is converted to Arrow once, so a
flush's Python work grows with the trials that changed, not with the sweep.

A fold (1,000s of rows and more, read back from disk above KEPT_LEVELS) is written by one background
thread, in order, so that no step end waits for it; a flush's own small part is written at once. Ray
saving its state and the sweep's end wait for every fold in flight.

Every file is written under a dot-name and renamed into place (readers skip dot-files); a folded
file is in place before the files it replaces are deleted, and names them in its metadata
(REPLACES), so a reader always sees every row (perhaps twice mid-fold: the analysis keeps one per
(sweep, trial, iteration)), and the setup of a driver killed in between deletes the leftovers.
On setup the sink reads back what is on disk, so a trial retried from its checkpoint or a resumed
sweep adds no duplicate (trial, iteration), and folds the parts a killed driver left.

A trial's status: running, completed (reached the scheduler's max_t), stopped (by ASHA
before it), failed, diverged, or lost (seen starting before a driver crash that Ray's
saved experiment state does not know, so a resume cannot continue it).
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from ray.tune import Callback

from advent_sweep.advent.config import TrainConfig
from advent_sweep.storage import filesystem_and_path, write_atomically
from advent_sweep.sweep import results_schema as rs

FLUSH_EVERY_S = 2.0
FANOUT = 10
# A file this big is final (Arrow advises files over ~20 MB, DuckDB 100 MB-10 GB): folds leave it alone.
SEALED_ROWS = 1_000_000
# Files of levels 0 and 1 hold the last minutes' rows and fold most often: kept in memory, not read back to fold.
KEPT_LEVELS = 2
BACKGROUND_LEVEL = 1  # folds into this level and above (1,000s of rows and more): off the driver's event loop
FROZEN_CHUNKS = 32  # finished trials' Arrow chunks combined into one beyond this many
REPLACES = b"advent_sweep.replaces"
EVERY_LEVEL = math.inf


def _finite_or_none(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def _level(name: str) -> int:
    """``part-<level>-…``; a part named before levels existed (``part-<time>-…``) is level 0."""
    token = name.split("-")[1] if name.count("-") >= 2 else ""
    return int(token) if token.isdigit() else 0


def trial_error_line(trial: Any) -> str | None:
    """The last line of a failed trial's error file (the exception), or None without one."""
    try:
        with open(trial.error_file) as handle:
            lines = [line.strip() for line in handle if line.strip()]
    except (OSError, TypeError):
        return None
    return lines[-1] if lines else None


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

    # -- state read back from disk -------------------------------------------------------
    def setup(self, **info: Any) -> None:
        self._filesystem, root = filesystem_and_path(self.sweep_uri)
        self._reports_dir, self._trials_file = f"{root}/reports", f"{root}/trials.parquet"
        self._report_schema, self._trial_schema = rs.report_schema(self.class_names), rs.trial_schema()
        self._metric_columns = (*rs.METRIC_COLUMNS, *(f"iou.{name}" for name in self.class_names))
        self._pending: list[dict[str, Any]] = []
        self._written: set[tuple[str, int]] = set()
        self._scores: dict[str, list[tuple[int, float | None, float | None]]] = {}  # (iteration, metric, entropy)
        self._configs: dict[str, dict[str, Any]] = {}
        self._trials: dict[str, dict[str, Any]] = {}
        self._stale: dict[str, Any] = {}  # trials whose row's checkpoint and summary to refresh before writing
        self._trials_dirty = False
        self._flushed_at = -math.inf
        self._files: dict[str, tuple[int, int]] = {}  # name → (level, rows)
        self._kept: dict[str, pa.Table] = {}  # the files under KEPT_LEVELS written since setup
        self._frozen: list[pa.Table] = []  # trials.parquet rows of finished trials, converted once
        self._frozen_ids: set[str] = set()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="parquet-sink-fold")
        self._jobs: list[Future] = []
        self._filesystem.create_dir(self._reports_dir, recursive=True)
        self._read_back()
        self._fold_reports(below=1)
        self._wait_for_folds()

    def __getstate__(self) -> dict[str, Any]:
        """Without the fold thread: a pickled sink (Ray's saved state) sets up a new one."""
        return {key: value for key, value in self.__dict__.items() if key not in ("_executor", "_jobs")}

    def _read_back(self) -> None:
        """Rows and files on disk; a write a kill cut short, and files a fold replaced but did not delete, go."""
        infos = self._filesystem.get_file_info(pafs.FileSelector(self._reports_dir))
        for info in infos:
            if info.base_name.startswith(".") and info.base_name.endswith(".tmp"):
                self._filesystem.delete_file(info.path)
        names = sorted(i.base_name for i in infos if i.base_name.endswith(".parquet") and not i.base_name.startswith((".", "_")))
        columns = list(dict.fromkeys(["trial_id", "iteration", "target_entropy", self.metric]))
        tables = {name: pq.read_table(f"{self._reports_dir}/{name}", columns=columns, filesystem=self._filesystem) for name in names}
        replaced = {old for table in tables.values() for old in json.loads((table.schema.metadata or {}).get(REPLACES, b"[]"))}
        for name, table in tables.items():
            if name in replaced:
                self._filesystem.delete_file(f"{self._reports_dir}/{name}")
                continue
            self._files[name] = (_level(name), table.num_rows)
            for row in table.to_pylist():
                self._written.add((row["trial_id"], row["iteration"]))
                self._scores.setdefault(row["trial_id"], []).append((row["iteration"], row[self.metric], row["target_entropy"]))
        if self._filesystem.get_file_info(self._trials_file).type == pafs.FileType.File:
            table = pq.read_table(self._trials_file, filesystem=self._filesystem)
            self._trials = {row["trial_id"]: row for row in table.to_pylist()}

    def get_state(self) -> None:
        """Ray is saving its experiment state: write first every report and status it will count as done.

        Nothing for Ray to keep: the state is the Parquet files, read back by ``setup``.
        """
        self._flush()
        self._wait_for_folds()

    # -- Tune events -----------------------------------------------------------------------
    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._trial_row(trial).update(status="running", error=None)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        step = int(result["iteration"])
        row = self._trial_row(trial)
        row.update(node=result.get("node_ip"), wall_time_s=float(result.get("time_total_s", 0.0)))
        if result.get("diverged"):
            row["status"] = "diverged"
        if (trial.trial_id, step) in self._written:
            return
        metrics = {name: _finite_or_none(result.get(name)) for name in self._metric_columns}
        self._pending.append({
            "sweep": self.sweep_name, "trial_id": trial.trial_id, "iteration": step,
            "wall_time_s": row["wall_time_s"], "timestamp": datetime.now(timezone.utc),
            "node": row["node"], "attempt": trial.num_failures, **metrics, **self._config_columns(trial),
        })
        self._written.add((trial.trial_id, step))
        self._scores.setdefault(trial.trial_id, []).append((step, metrics[self.metric], metrics["target_entropy"]))

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._trial_row(trial).update(status="running", error=None)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        row = self._trial_row(trial)
        if row["status"] != "diverged":
            reached = max((step for step, _, _ in self._scores.get(trial.trial_id, [])), default=0)
            row["status"] = "completed" if reached >= self.max_t else "stopped"

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._trial_row(trial).update(status="failed", error=trial_error_line(trial))

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        self._jobs = [job for job in self._jobs if not job.done() or job.result()]  # a failed fold raises here
        if (self._pending or self._trials_dirty) and time.monotonic() - self._flushed_at >= FLUSH_EVERY_S:
            self._flush()

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        known = {trial.trial_id for trial in trials}
        for trial_id, row in self._trials.items():
            if row["status"] == "running" and trial_id not in known:
                row["status"] = "lost"
                self._trials_dirty = True
        for trial in trials:  # checkpoint retention has just run: every row names what is left
            if trial.trial_id in self._trials:
                self._stale[trial.trial_id] = trial
                self._trials_dirty = True
        self._wait_for_folds()
        self._fold_reports(below=EVERY_LEVEL)
        self._wait_for_folds()
        self._write_trials()
        self._executor.shutdown()

    # -- rows ------------------------------------------------------------------------------
    def _trial_row(self, trial: Any) -> dict[str, Any]:
        """The trial's row, marked to be written (its checkpoint and summary refreshed then)."""
        row = self._trials.get(trial.trial_id)
        if row is None:
            resources = trial.placement_group_factory.required_resources if trial.placement_group_factory else {}
            row = {
                "sweep": self.sweep_name, "trial_id": trial.trial_id, "status": "running",
                "metric": self.metric, "mode": self.mode, "node": None, "wall_time_s": 0.0, "error": None,
                "resources_cpu": float(resources.get("CPU", 0.0)), "resources_gpu": float(resources.get("GPU", 0.0)),
                "config_json": self.train_config(trial.config).model_dump_json(), **self._config_columns(trial),
            }
            self._trials[trial.trial_id] = row
        self._stale[trial.trial_id] = trial
        self._trials_dirty = True
        return row

    def _config_columns(self, trial: Any) -> dict[str, Any]:
        """Once per trial: validating a TrainConfig per report would cost more than the rest of the report."""
        columns = self._configs.get(trial.trial_id)
        if columns is None:
            columns = self._configs[trial.trial_id] = rs.config_columns(self.train_config(trial.config))
        return columns

    def _summary(self, trial_id: str) -> dict[str, Any]:
        """Best / last / label-free (lowest target entropy) selection of the trial's reports."""
        reports = sorted(self._scores.get(trial_id, []), key=lambda r: r[0])
        scored = [r for r in reports if r[1] is not None]
        summary: dict[str, Any] = {"iterations": reports[-1][0] if reports else 0, "num_reports": len(reports)}
        pick_best = max if self.mode == "max" else min
        best = pick_best(scored, key=lambda r: r[1]) if scored else None
        last = scored[-1] if scored else None
        with_entropy = [r for r in scored if r[2] is not None]
        calm = min(with_entropy, key=lambda r: r[2]) if with_entropy else None
        for prefix, chosen in (("best", best), ("last", last), ("min_entropy", calm)):
            summary[f"{prefix}_value"] = chosen[1] if chosen else None
            summary[f"{prefix}_iteration"] = chosen[0] if chosen else None
        return summary

    def _checkpoint_uri(self, path: str) -> str:
        """Ray's checkpoint path is relative to its filesystem: put back the sweep's scheme (s3://, gs://)."""
        if "://" in path or "://" not in self.sweep_uri:
            return path
        return f"{self.sweep_uri.split('://', 1)[0]}://{path}"

    # -- files -----------------------------------------------------------------------------
    def _flush(self) -> None:
        self._fold_reports(below=0)
        self._write_trials()
        self._flushed_at = time.monotonic()

    def _fold_reports(self, below: int | float) -> None:
        """Write the pending rows and the unsealed files of levels under ``below`` as one file, then fold full levels.

        ``below`` 0 writes the pending rows as a level-0 part (a flush); 1 folds the level-0 parts too (a
        resume's setup); EVERY_LEVEL folds every unsealed file (the sweep's end).
        """
        fresh = pa.Table.from_pylist(self._pending, schema=self._report_schema) if self._pending else None
        self._pending = []
        inputs = self._unsealed(lambda level: level < below)
        self._fold(inputs, fresh, max([1, *(self._files[name][0] for name in inputs)]) if below else 0)
        level = 0
        while any(known >= level for known, _ in self._files.values()):
            full = self._unsealed(lambda known: known == level)
            if len(full) >= FANOUT:
                self._fold(full, None, level + 1)
            level += 1

    def _unsealed(self, keep: Callable[[int], bool]) -> list[str]:
        return [name for name, (level, rows) in self._files.items() if keep(level) and rows < SEALED_ROWS]

    def _fold(self, names: list[str], fresh: pa.Table | None, level: int) -> None:
        """``names``' rows and ``fresh`` as one new file of ``level``; then ``names`` are deleted.

        The bookkeeping is done at once; the files are written now for a flush's level-0 part, else by the fold thread.
        """
        if fresh is None and len(names) < 2:
            return
        rows = sum(self._files[old][1] for old in names) + (fresh.num_rows if fresh is not None else 0)
        in_memory = {old: self._kept.pop(old) for old in names if old in self._kept}
        name = f"part-{level}-{datetime.now(timezone.utc):%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:8]}.parquet"
        for old in names:
            del self._files[old]
        self._files[name] = (level, rows)
        if level < KEPT_LEVELS and len(in_memory) == len(names):  # the concatenation copies nothing
            table = pa.concat_tables([*in_memory.values(), *([fresh] if fresh is not None else [])], promote_options="permissive")
            self._kept[name] = table
            in_memory, fresh = {name: table}, None
            names_read = [name]
        else:
            names_read = names
        if level >= BACKGROUND_LEVEL:
            self._jobs.append(self._executor.submit(self._write_fold, names, names_read, in_memory, fresh, name))
        else:
            self._write_fold(names, names_read, in_memory, fresh, name)

    def _write_fold(self, names: list[str], names_read: list[str], in_memory: dict[str, pa.Table], fresh: pa.Table | None,
                    name: str) -> None:
        """Write ``names_read`` (from memory, else from disk) and ``fresh`` as file ``name``; then delete ``names``."""
        tables = [in_memory[old] if old in in_memory else pq.read_table(f"{self._reports_dir}/{old}", filesystem=self._filesystem)
                  for old in names_read]
        table = pa.concat_tables([*tables, *([fresh] if fresh is not None else [])], promote_options="permissive")
        metadata = {**rs.SCHEMA_METADATA, **({REPLACES: json.dumps(names).encode()} if names else {})}
        self._write(table.replace_schema_metadata(metadata), f"{self._reports_dir}/{name}")
        for old in names:
            self._filesystem.delete_file(f"{self._reports_dir}/{old}")

    def _wait_for_folds(self) -> None:
        """Every fold in flight written (its error raised here)."""
        jobs, self._jobs = self._jobs, []
        for job in jobs:
            job.result()

    def _write_trials(self) -> None:
        if not self._trials_dirty:
            return
        changed = set(self._stale)
        for trial_id, trial in self._stale.items():
            row = self._trials[trial_id]
            checkpoint = trial.checkpoint
            # None once retention dropped a stopped trial's checkpoints: the row never names a deleted folder
            row["checkpoint_path"] = self._checkpoint_uri(checkpoint.path) if checkpoint else None
            row["trial_path"] = self._checkpoint_uri(trial.path) if trial.path else None
            row.update(self._summary(trial_id))
        self._stale = {}
        if changed & self._frozen_ids:  # a finished trial changed again (resumed, or the sweep's end): reconvert it
            keep = pa.array(sorted(self._frozen_ids - changed), pa.string())
            self._frozen = [pa.concat_tables(self._frozen).filter(pc.is_in(pc.field("trial_id"), value_set=keep))]
            self._frozen_ids -= changed
        live = pa.Table.from_pylist([row for trial_id, row in self._trials.items() if trial_id not in self._frozen_ids],
                                    schema=self._trial_schema)
        self._write(pa.concat_tables([*self._frozen, live]), self._trials_file)
        finished = pc.not_equal(live["status"], "running")
        self._frozen.append(live.filter(finished))
        self._frozen_ids |= set(live["trial_id"].filter(finished).to_pylist())
        if len(self._frozen) > FROZEN_CHUNKS:
            self._frozen = [pa.concat_tables(self._frozen).combine_chunks()]
        self._trials_dirty = False

    def _write(self, table: pa.Table, path: str) -> None:
        buffer = pa.BufferOutputStream()
        pq.write_table(table, buffer)
        write_atomically(path, buffer.getvalue(), self._filesystem)


def write_sweep_metadata(sweep_uri: str, name: str, metric: str, mode: str, spec: dict[str, Any]) -> None:
    """``sweep.json``: what the analysis needs to read the sweep without the space.yaml."""
    filesystem, root = filesystem_and_path(sweep_uri.rstrip("/"))
    filesystem.create_dir(root, recursive=True)
    body = json.dumps({"name": name, "metric": metric, "mode": mode, "schema_version": rs.SCHEMA_VERSION, "spec": spec}, indent=1)
    write_atomically(f"{root}/sweep.json", body.encode(), filesystem)
