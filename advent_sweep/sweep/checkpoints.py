"""Which trial checkpoints outlive a sweep: each trial's last one, a stopped trial's only when asked.

While a trial runs Ray keeps its two latest checkpoints (the sink records the trial's checkpoint
one report late, so the one it names must still exist). When the sweep ends,
:class:`CheckpointRetention` keeps only each finished trial's last one, which ``advent-sweep
evaluate`` scores; a trial the scheduler stopped early is never resumed, so it keeps none unless the
space.yaml says ``checkpoints: {keep_stopped: true}``. Not sooner: a driver killed after a trial
ended but before Ray saved that, resumes the trial from the checkpoint Ray's saved state names.
"""

from __future__ import annotations

import posixpath
from typing import Any

import pyarrow.fs as pafs
from ray.train._internal.checkpoint_manager import _CheckpointManager
from ray.tune import Callback

KEPT_WHILE_RUNNING = 2  # Ray's CheckpointConfig(num_to_keep=...)


def stopped_early(result: dict, max_t: int) -> bool:
    """Whether a trial whose last result is ``result`` was stopped by the scheduler before ``max_t``
    (the sink's "stopped", Optuna's PRUNED; a diverged trial is not)."""
    return not result.get("diverged") and int(result.get("iteration") or 0) < max_t


class CheckpointRetention(Callback):
    """At the sweep's end, deletes each finished trial's checkpoint folders but the last (all for a stopped one, unless kept).

    Listed before the Parquet sink, so that the sink's rows are written after the deletion.
    """

    def __init__(self, max_t: int, keep_stopped: bool) -> None:
        self.max_t = max_t
        self.keep_stopped = keep_stopped

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        for trial in trials:
            if trial.status == "TERMINATED":
                self._retain(trial)

    def _retain(self, trial: Any) -> None:
        latest = trial.latest_checkpoint_result
        if latest is None:
            return
        drop_all = stopped_early(trial.last_result or {}, self.max_t) and not self.keep_stopped
        keep = None if drop_all else posixpath.basename(latest.checkpoint.path)
        filesystem, folder = latest.checkpoint.filesystem, posixpath.dirname(latest.checkpoint.path)
        for entry in filesystem.get_file_info(pafs.FileSelector(folder)):
            if entry.type == pafs.FileType.Directory and entry.base_name.startswith("checkpoint_") and entry.base_name != keep:
                filesystem.delete_dir(entry.path)
        _record_only(trial, None if drop_all else latest)


def _record_only(trial: Any, kept: Any) -> None:
    """Ray's record of the trial's checkpoints (its saved experiment state, ``trial.checkpoint``) names only ``kept``."""
    manager = _CheckpointManager(checkpoint_config=trial.run_metadata.checkpoint_manager.checkpoint_config)
    if kept is not None:
        manager.register_checkpoint(kept)
    trial.run_metadata.checkpoint_manager = manager
