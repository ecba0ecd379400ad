"""Reading the Parquet results of one sweep, or of every sweep in a folder, into pandas.

Only pyarrow, pandas and the standard library: analysis runs on a laptop that reaches
the Parquet files (a local folder, or object storage through pyarrow's filesystems, with
no copy step) and has no Ray, torch or GPU. A sweep that is still running reads
fine: part files that appear while reading are left for the next read (unless a listed
one was folded into them meanwhile), and trials that trials.parquet does not list yet
count as 'running'.
"""

from __future__ import annotations

import json
import os
import posixpath
import sys
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from tqdm import tqdm

from advent_sweep.errors import ResultsError
from advent_sweep.storage import filesystem_and_path

SCHEMA_VERSIONS = {"1"}
SCHEMA_KEY = b"advent_sweep.schema_version"
KEY = ["sweep", "trial_id"]
REPORT_COLUMNS = {"sweep", "trial_id", "iteration", "wall_time_s", "timestamp", "node", "attempt"}
LOWER_IS_BETTER = ("target_entropy", "loss_")


@dataclass(frozen=True)
class SweepResults:
    """The reports (one row per report) and trials (one row per trial) of one or more sweeps.

    The ``sweep`` column tells sweeps apart; ``sweeps`` maps each sweep's name to its
    sweep.json and ``skipped`` each sweep left out (no reports yet) to the reason.
    """

    reports: pd.DataFrame
    trials: pd.DataFrame
    sweeps: dict[str, dict[str, Any]]
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def metrics(self) -> list[str]:
        """The metric columns of the reports (target_miou, target_entropy, losses, iou.*)."""
        return [c for c in self.reports.columns if c not in REPORT_COLUMNS and not c.startswith(("config.", "data."))]

    def resolve(self, metric: str | None, mode: str | None) -> tuple[str, str]:
        """The metric and mode to use: given ones checked, else the sweeps' own (sweep.json).

        A metric no sweep.json names gets ``min`` for entropy and losses, ``max`` otherwise.
        """
        declared = {(spec.get("metric"), spec.get("mode")) for spec in self.sweeps.values() if spec.get("metric")}
        if metric is None:
            names = {name for name, _ in declared}
            metric = names.pop() if len(names) == 1 else "target_miou"
        if metric not in self.metrics:
            raise ResultsError(f"unknown metric {metric!r}; the reports have: {', '.join(self.metrics)}")
        if mode is None:
            modes = {m for name, m in declared if name == metric}
            if len(modes) > 1:
                raise ResultsError(f"the sweeps optimise {metric} in different modes ({', '.join(sorted(modes))}); pass a mode (max or min)")
            mode = modes.pop() if modes else ("min" if metric.startswith(LOWER_IS_BETTER) else "max")
        if mode not in ("max", "min"):
            raise ResultsError(f"unknown mode {mode!r}; allowed: max, min")
        return metric, mode


def load_results(path: str | os.PathLike[str], progress: bool = False, filesystem: pafs.FileSystem | None = None) -> SweepResults:
    """Read a sweep folder (``<storage>/<name>/``) or a folder of sweep folders (e.g. the storage) where it lies.

    ``path`` is a local folder or a URI (s3://, gs://, file://) read through pyarrow's filesystems, so a
    sweep on object storage needs no copy; with ``filesystem`` (any pyarrow FileSystem, e.g. a
    SubTreeFileSystem) it is a path inside that one. ``progress`` prints a progress line to stderr
    while the part files are read.
    """
    root = _locate(path, filesystem)
    kind = _infos(root, [root.path])[0].type
    if kind == pafs.FileType.NotFound:
        raise ResultsError(f"{root.shown}: no such folder")
    if kind != pafs.FileType.Directory:
        raise ResultsError(f"{root.shown}: not a folder; give a sweep folder (with reports/ and trials.parquet) or a folder of them")
    if _is_sweep(root):
        folders = [root]
    else:
        subfolders = sorted(info.base_name for info in _infos(root, pafs.FileSelector(root.path)) if info.type == pafs.FileType.Directory)
        folders = [folder for folder in map(root.join, subfolders) if _is_sweep(folder)]
    if not folders:
        raise ResultsError(f"{root.shown}: no sweep results here (expected reports/, trials.parquet and sweep.json, or folders that hold them)")
    specs = {folder: _read_sweep_json(folder.join("sweep.json")) for folder in folders}
    names = {folder: spec.get("name", posixpath.basename(folder.path.rstrip("/"))) for folder, spec in specs.items()}
    tables = _read_reports(folders, progress)
    skipped = {names[f]: f"{f.shown}: no reports yet" for f in folders if sum(t.num_rows for t in tables[f]) == 0}
    if len(skipped) == len(folders):
        raise ResultsError("; ".join(skipped.values()) + " (an empty sweep: nothing to analyse)")
    kept = [f for f in folders if names[f] not in skipped]
    reports = _reports_frame([t for f in kept for t in tables[f]])
    listed = [table for table in (_read_parquet(f.join("trials.parquet")) for f in kept) if table is not None]
    trials = _trials_frame(reports, listed)
    spaces = {names[f]: specs[f].get("spec", {}).get("space", {}) for f in kept}
    return SweepResults(_blank_inactive(reports, spaces), _blank_inactive(trials, spaces), {names[f]: specs[f] for f in kept}, skipped)


def _blank_inactive(frame: pd.DataFrame, spaces: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """A conditional parameter a trial did not sample (its ``when`` unmet) as empty, not as the default it trained with.

    Otherwise importances and tables would read λ_adv's default in every MinEnt trial as a value searched.
    """
    frame = frame.copy()
    for sweep, space in spaces.items():
        rows = frame["sweep"] == sweep
        for name, param in space.items():
            column = f"config.{name}"
            if not param.get("when") or column not in frame.columns:
                continue
            active = pd.Series(True, index=frame.index)
            for condition, allowed in param["when"].items():
                if f"config.{condition}" in frame.columns:
                    active &= frame[f"config.{condition}"].isin(allowed)
            frame.loc[rows & ~active, column] = None
    return frame


@dataclass(frozen=True)
class _Location:
    """A file or folder on a pyarrow filesystem, and its name in messages: as the user wrote it (a URI stays a URI)."""

    filesystem: pafs.FileSystem = field(compare=False)
    path: str
    shown: str

    def join(self, name: str) -> _Location:
        return _Location(self.filesystem, posixpath.join(self.path, name), posixpath.join(self.shown, name))


def _locate(path: str | os.PathLike[str], filesystem: pafs.FileSystem | None) -> _Location:
    if filesystem is not None:
        return _Location(filesystem, str(path), str(path))
    try:
        filesystem, inside = filesystem_and_path(path)
    except (OSError, ValueError) as error:  # an unknown scheme, a bucket that cannot be reached
        raise ResultsError(f"{path}: cannot be opened ({error})") from None
    return _Location(filesystem, inside, str(path))


def _infos(where: _Location, paths: list[str] | pafs.FileSelector) -> list[pafs.FileInfo]:
    """File infos from ``where``'s filesystem; a failure (credentials, network) names ``where``."""
    try:
        return where.filesystem.get_file_info(paths)
    except OSError as error:
        raise ResultsError(f"{where.shown}: cannot be listed ({error})") from None


def _is_sweep(folder: _Location) -> bool:
    wanted = [(folder.join("reports"), pafs.FileType.Directory), (folder.join("trials.parquet"), pafs.FileType.File),
              (folder.join("sweep.json"), pafs.FileType.File)]
    infos = _infos(folder, [place.path for place, _ in wanted])
    return any(info.type == kind for info, (_, kind) in zip(infos, wanted))


def _check_version(version: Any, where: str) -> None:
    if version is not None and str(version) not in SCHEMA_VERSIONS:
        raise ResultsError(
            f"{where}: schema_version {version} is not one this advent-sweep reads ({', '.join(sorted(SCHEMA_VERSIONS))}); "
            "read it with the advent-sweep version that wrote it, or upgrade"
        )


def _read_sweep_json(file: _Location) -> dict[str, Any]:
    try:
        with file.filesystem.open_input_stream(file.path) as stream:
            spec = json.loads(stream.read())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as error:
        raise ResultsError(f"{file.shown}: cannot be read as JSON ({error})") from None
    _check_version(spec.get("schema_version"), file.shown)
    return spec


def _part_files(folder: _Location) -> list[_Location]:
    """The finished part files: temporary ones (hidden, or not yet named *.parquet) are left out."""
    reports = folder.join("reports")
    infos = _infos(reports, pafs.FileSelector(reports.path, allow_not_found=True))
    names = sorted(i.base_name for i in infos if i.type == pafs.FileType.File and i.base_name.endswith(".parquet")
                   and not i.base_name.startswith((".", "_")))
    return [reports.join(name) for name in names]


def _read_reports(folders: list[_Location], progress: bool) -> dict[_Location, list[pa.Table]]:
    """Every folder's part files; a listing is read again while files vanish under the reader.

    The sink folds part files into bigger ones: it puts the new file in place before it deletes
    the ones it replaces, so the rows of a listed file that is gone lie in a file that a new
    listing shows (rows read twice are dropped by :func:`_reports_frame`).
    """
    tables: dict[_Location, list[pa.Table]] = {folder: [] for folder in folders}
    seen: set[_Location] = set()
    parts = [(folder, part) for folder in folders for part in _part_files(folder)]
    while parts:
        vanished: set[_Location] = set()
        for folder, part in tqdm(parts, desc="reading results", unit="file", leave=False, disable=not progress, file=sys.stderr):
            seen.add(part)
            table = _read_parquet(part)
            if table is None:
                vanished.add(folder)
            else:
                tables[folder].append(table)
        parts = [(folder, part) for folder in folders if folder in vanished for part in _part_files(folder) if part not in seen]
    return tables


def _read_parquet(file: _Location) -> pa.Table | None:
    """A Parquet file, schema version checked; None when absent (no trials.parquet yet, a part file replaced since the listing)."""
    try:
        table = pq.read_table(file.path, filesystem=file.filesystem)
    except FileNotFoundError:
        return None
    except (OSError, pa.ArrowException) as error:
        raise ResultsError(f"{file.shown}: not a readable Parquet file ({error})") from None
    _check_version((table.schema.metadata or {}).get(SCHEMA_KEY, b"1").decode(), file.shown)
    return table


def _reports_frame(tables: list[pa.Table]) -> pd.DataFrame:
    """All reports, one per (sweep, trial, iteration).

    A row read twice (from a part file and from the file that folded it in, read mid-fold or left
    by a killed driver) counts once; its copies are equal, as the sink writes each row once and
    folds copy rows unchanged.
    """
    frame = pa.concat_tables(tables, promote_options="permissive").to_pandas()
    missing = {"sweep", "trial_id", "iteration"} - set(frame.columns)
    if missing:
        raise ResultsError(f"the reports lack the column(s) {', '.join(sorted(missing))}; not an advent-sweep results folder?")
    frame = frame.drop_duplicates([*KEY, "iteration"], keep="last")
    return frame.sort_values([*KEY, "iteration"], ignore_index=True)


def _trials_frame(reports: pd.DataFrame, tables: list[pa.Table]) -> pd.DataFrame:
    """trials.parquet of every sweep, plus a 'running' row for each trial that reported but is not listed yet."""
    listed = pa.concat_tables(tables, promote_options="permissive").to_pandas() if tables else pd.DataFrame(columns=[*KEY, "status"])
    seen = reports[KEY].drop_duplicates()
    unlisted = seen.merge(listed[KEY], on=KEY, how="left", indicator=True).query("_merge == 'left_only'")[KEY]
    trials = pd.concat([part for part in (listed, unlisted.assign(status="running")) if len(part)], ignore_index=True)
    return trials.sort_values(KEY, ignore_index=True)


def varying_parameters(rows: pd.DataFrame) -> list[str]:
    """The config.* columns that take more than one value across ``rows`` (one row per trial)."""
    return [c for c in rows.columns if c.startswith("config.") and rows[c].dropna().nunique() > 1]
