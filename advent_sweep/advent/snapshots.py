"""Snapshots worth keeping: at each evaluation, the model of the report each selection rule prefers.

The resumable checkpoint (a run's checkpoint.pt, a trial's trainer.pt) holds the last state only, and
the official code keeps every snapshot (``model_{i}.pth``). In between, a run keeps, in the folder
``snapshots/`` beside its checkpoint, one small model-only file per report that a rule prefers so far
(``iteration_<N>.pt``: config, iteration, metrics and segmenter weights, no discriminators or optimizer
states). Two rules that prefer the same report share its file; a file no rule prefers any more is
deleted. ``snapshots/index.json`` says which rule prefers which report. ``advent-sweep evaluate`` reads
a snapshot as it reads a checkpoint.

The module imports no torch at load time: analysis names snapshot files with it.
"""

from __future__ import annotations

import io
import json
import math
import posixpath
from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow.fs as pafs

from advent_sweep.selection import ACCURACY, SELECTION_RULES, VALIDATORS
from advent_sweep.storage import filesystem_and_path, write_atomically

SNAPSHOTS_DIR = "snapshots"
INDEX_FILE = "index.json"
DEFAULT_RULES = ("best",)


def snapshot_name(iteration: int) -> str:
    """The file name of the snapshot at trainer ``iteration``."""
    return f"iteration_{iteration:08d}.pt"


def snapshot_location(run_folder: str, iteration: int) -> str:
    """Where a run (or trial) folder, local or a URI, keeps its snapshot at ``iteration`` if one is kept."""
    return posixpath.join(run_folder.rstrip("/"), SNAPSHOTS_DIR, snapshot_name(iteration))


def check_rules(rules: Sequence[str]) -> tuple[str, ...]:
    """``rules`` without repeats, each one a selection rule (advent_sweep/selection.py); else a ValueError listing them."""
    unknown = [rule for rule in rules if rule not in SELECTION_RULES]
    if unknown:
        raise ValueError(f"unknown rule {', '.join(map(repr, unknown))}; allowed: {', '.join(SELECTION_RULES)}")
    return tuple(dict.fromkeys(rules))


def rule_criteria(rules: Sequence[str], metric: str = ACCURACY, mode: str = "max") -> dict[str, tuple[str | None, str]]:
    """Each rule's (metric, mode): ``best`` the run's metric, a validator its own direction, ``last`` none."""
    criteria: dict[str, tuple[str | None, str]] = {}
    for rule in rules:
        if rule == "best":
            criteria[rule] = (metric, mode)
        elif rule == "last":
            criteria[rule] = (None, "max")
        else:
            criteria[rule] = (rule, VALIDATORS[rule].mode)
    return criteria


class SnapshotKeeper:
    """Keeps the preferred snapshot of each rule in ``<folder>/snapshots`` (a local path, or ``filesystem`` + path).

    ``iteration`` is where the run resumes: entries the index holds for later reports (written after that
    checkpoint, before a crash) are forgotten, and the replayed evaluations keep them again.
    """

    def __init__(self, folder: str, rules: Sequence[str], metric: str = ACCURACY, mode: str = "max",
                 filesystem: pafs.FileSystem | None = None, iteration: int = 0) -> None:
        if filesystem is None:
            filesystem, folder = filesystem_and_path(folder)
        self.filesystem, self.folder = filesystem, posixpath.join(folder, SNAPSHOTS_DIR)
        self.criteria = rule_criteria(rules, metric, mode)
        self.index: dict[str, dict[str, Any]] = {
            rule: entry for rule, entry in self._read_index().items() if rule in self.criteria and entry["iteration"] <= iteration
        }

    def _read_index(self) -> dict[str, dict[str, Any]]:
        try:
            with self.filesystem.open_input_stream(posixpath.join(self.folder, INDEX_FILE)) as stream:
                return json.loads(stream.read())
        except FileNotFoundError:
            return {}

    def _prefers(self, rule: str, metrics: Mapping[str, float]) -> float | None:
        """The report's value under ``rule`` if the rule prefers it to its current snapshot (strictly: ties keep the earlier)."""
        metric, mode = self.criteria[rule]
        value = float(metrics["iteration"]) if metric is None else metrics.get(metric)
        if value is None or not math.isfinite(value):
            return None
        held = self.index.get(rule)
        if held is None or (value > held["value"] if mode == "max" else value < held["value"]):
            return float(value)
        return None

    def keep(self, iteration: int, metrics: Mapping[str, float], config: dict[str, Any], segmenter: Mapping[str, Any]) -> list[str]:
        """After the evaluation at ``iteration``: write its snapshot if a rule now prefers it; returns those rules."""
        preferring = {rule: value for rule in self.criteria if (value := self._prefers(rule, {**metrics, "iteration": iteration})) is not None}
        if not preferring:
            return []
        import torch  # here, not at the top: analysis imports this module for the file names

        name = snapshot_name(iteration)
        self.filesystem.create_dir(self.folder, recursive=True)
        buffer = io.BytesIO()
        torch.save({"config": config, "iteration": iteration, "metrics": dict(metrics), "segmenter": dict(segmenter)}, buffer)
        write_atomically(posixpath.join(self.folder, name), buffer.getbuffer(), self.filesystem)
        for rule, value in preferring.items():
            self.index[rule] = {"iteration": iteration, "value": value, "file": name}
        write_atomically(posixpath.join(self.folder, INDEX_FILE), json.dumps(self.index, indent=1).encode(), self.filesystem)
        self._delete_unpreferred()
        return list(preferring)

    def _delete_unpreferred(self) -> None:
        wanted = {entry["file"] for entry in self.index.values()}
        for entry in self.filesystem.get_file_info(pafs.FileSelector(self.folder)):
            if entry.type == pafs.FileType.File and entry.base_name.startswith("iteration_") and entry.base_name not in wanted:
                self.filesystem.delete_file(entry.path)

    def locations(self) -> dict[str, str]:
        """Each rule's kept snapshot file (as a path on the keeper's filesystem)."""
        return {rule: posixpath.join(self.folder, entry["file"]) for rule, entry in self.index.items()}
