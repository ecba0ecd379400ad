"""Reading the Parquet results of one sweep, or of every sweep in a folder, into pandas.

Only pyarrow, pandas and the standard library: analysis runs on a laptop that has
the Parquet files and no Ray, torch or GPU. A sweep that is still running reads
fine: part files that appear while reading are left for the next read, and trials
that trials.parquet does not list yet count as 'running'.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from tqdm import tqdm

from advent_sweep.errors import ResultsError

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


def load_results(path: str | Path, progress: bool = False) -> SweepResults:
    """Read a sweep folder (``<storage>/<name>/``) or a folder of sweep folders (e.g. the storage).

    ``progress`` prints a progress line to stderr while the part files are read. The folder is
    local: copy a sweep from object storage (s3://, gs://) first.
    """
    if "://" in str(path):
        raise ResultsError(f"{path}: a URI; the analysis reads local folders: copy the sweep folder to a local disk first "
                           "(aws s3 sync, gcloud storage rsync -r), or read its Parquet files with pyarrow/pandas directly")
    path = Path(path)
    if not path.exists():
        raise ResultsError(f"{path}: no such folder")
    if not path.is_dir():
        raise ResultsError(f"{path}: not a folder; give a sweep folder (with reports/ and trials.parquet) or a folder of them")
    folders = [path] if _is_sweep(path) else sorted(p for p in path.iterdir() if p.is_dir() and _is_sweep(p))
    if not folders:
        raise ResultsError(f"{path}: no sweep results here (expected reports/, trials.parquet and sweep.json, or folders that hold them)")
    specs = {folder: _read_sweep_json(folder) for folder in folders}
    names = {folder: spec.get("name", folder.name) for folder, spec in specs.items()}
    fragments = [(folder, f) for folder in folders for f in _report_fragments(folder)]
    tables: dict[Path, list[pa.Table]] = {folder: [] for folder in folders}
    for folder, fragment in tqdm(fragments, desc="reading results", unit="file", leave=False, disable=not progress, file=sys.stderr):
        table = _read_fragment(fragment)
        if table is not None:
            tables[folder].append(table)
    skipped = {names[f]: f"{f}: no reports yet" for f in folders if sum(t.num_rows for t in tables[f]) == 0}
    if len(skipped) == len(folders):
        raise ResultsError("; ".join(skipped.values()) + " (an empty sweep: nothing to analyse)")
    kept = [f for f in folders if names[f] not in skipped]
    reports = _reports_frame([t for f in kept for t in tables[f]])
    trials = _trials_frame(reports, [f / "trials.parquet" for f in kept if (f / "trials.parquet").is_file()])
    return SweepResults(reports, trials, {names[f]: specs[f] for f in kept}, skipped)


def _is_sweep(folder: Path) -> bool:
    return (folder / "reports").is_dir() or (folder / "trials.parquet").is_file() or (folder / "sweep.json").is_file()


def _check_version(version: Any, where: str) -> None:
    if version is not None and str(version) not in SCHEMA_VERSIONS:
        raise ResultsError(
            f"{where}: schema_version {version} is not one this advent-sweep reads ({', '.join(sorted(SCHEMA_VERSIONS))}); "
            "read it with the advent-sweep version that wrote it, or upgrade"
        )


def _read_sweep_json(folder: Path) -> dict[str, Any]:
    path = folder / "sweep.json"
    if not path.is_file():
        return {}
    try:
        spec = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ResultsError(f"{path}: cannot be read as JSON ({error})") from None
    _check_version(spec.get("schema_version"), str(path))
    return spec


def _report_fragments(folder: Path) -> list[ds.Fragment]:
    """The finished part files: temporary ones (hidden, or not yet named *.parquet) are left out."""
    reports = folder / "reports"
    if not reports.is_dir():
        return []
    dataset = ds.dataset(reports, format="parquet", ignore_prefixes=[".", "_"])
    return [f for f in dataset.get_fragments() if f.path.endswith(".parquet")]


def _read_fragment(fragment: ds.Fragment) -> pa.Table | None:
    """One part file, or None when it vanished since the listing (the writer replaced it)."""
    try:
        table = fragment.to_table()
    except FileNotFoundError:
        return None
    except pa.ArrowException as error:
        raise ResultsError(f"{fragment.path}: not a readable Parquet file ({error})") from None
    _check_version((table.schema.metadata or {}).get(SCHEMA_KEY, b"1").decode(), fragment.path)
    return table


def _reports_frame(tables: list[pa.Table]) -> pd.DataFrame:
    """All reports, one per (sweep, trial, iteration): a row read twice (a file rewritten while reading) counts once."""
    frame = pa.concat_tables(tables, promote_options="permissive").to_pandas()
    missing = {"sweep", "trial_id", "iteration"} - set(frame.columns)
    if missing:
        raise ResultsError(f"the reports lack the column(s) {', '.join(sorted(missing))}; not an advent-sweep results folder?")
    frame = frame.drop_duplicates([*KEY, "iteration"], keep="last")
    return frame.sort_values([*KEY, "iteration"], ignore_index=True)


def _trials_frame(reports: pd.DataFrame, paths: list[Path]) -> pd.DataFrame:
    """trials.parquet of every sweep, plus a 'running' row for each trial that reported but is not listed yet."""
    tables = []
    for path in paths:
        try:
            table = pq.read_table(path)
        except pa.ArrowException as error:
            raise ResultsError(f"{path}: not a readable Parquet file ({error})") from None
        _check_version((table.schema.metadata or {}).get(SCHEMA_KEY, b"1").decode(), str(path))
        tables.append(table)
    listed = pa.concat_tables(tables, promote_options="permissive").to_pandas() if tables else pd.DataFrame(columns=[*KEY, "status"])
    seen = reports[KEY].drop_duplicates()
    unlisted = seen.merge(listed[KEY], on=KEY, how="left", indicator=True).query("_merge == 'left_only'")[KEY]
    trials = pd.concat([part for part in (listed, unlisted.assign(status="running")) if len(part)], ignore_index=True)
    return trials.sort_values(KEY, ignore_index=True)


def varying_parameters(rows: pd.DataFrame) -> list[str]:
    """The config.* columns that take more than one value across ``rows`` (one row per trial)."""
    return [c for c in rows.columns if c.startswith("config.") and rows[c].dropna().nunique() > 1]
