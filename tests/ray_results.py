"""What Ray itself logged for a trial: evidence that the Parquet sink does not filter.

The sink keeps the first row of a (trial, iteration) and drops the rest, so a trial restarted from scratch, or a
finished trial run again under its id, leaves the Parquet tables as they were. Ray appends every report it receives
to the trial folder's result.json; a report made twice shows there twice.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from pathlib import Path

import pyarrow.fs as pafs

from advent_sweep.storage import filesystem_and_path


def ray_iterations(sweep_folder: str | Path, trial_id: str) -> list[int]:
    """The trainer iteration of every report Ray logged for the trial, in the order it came (a folder or a URI)."""
    filesystem, root = filesystem_and_path(sweep_folder)
    folders = [info.path for info in filesystem.get_file_info(pafs.FileSelector(root))
               if info.type == pafs.FileType.Directory and f"_{trial_id}_" in info.base_name]
    assert len(folders) == 1, f"trial {trial_id}: {len(folders)} trial folders in {sweep_folder}"
    with filesystem.open_input_stream(f"{folders[0]}/result.json") as stream:
        lines = stream.read().decode().splitlines()
    return [json.loads(line)["iteration"] for line in lines if line.strip()]


# The driver's console (advent_sweep.sweep.console.ConsoleProgress): one line per Tune event of a trial, printed by a
# Tune callback as the event happens, e.g. "[0:00:12] trial 610d3a90 resumed at iteration 4: lr=0.01".
_EVENT = re.compile(r"^\[[0-9:]+\] trial (\S+) (.+)$", re.MULTILINE)
_REACHED = re.compile(r"^iteration (\d+):")
_RESUMED = re.compile(r"^resumed at iteration (\d+):")


def trial_events(console: str) -> dict[str, list[str]]:
    """Each trial's event lines in the order the driver printed them."""
    events: dict[str, list[str]] = {}
    for trial_id, text in _EVENT.findall(console):
        events.setdefault(trial_id, []).append(text)
    return events


def reported_iterations(events: list[str]) -> list[int]:
    return [int(match.group(1)) for text in events if (match := _REACHED.match(text))]


def resumed_at(console: str) -> dict[str, int]:
    """The trials Tune restored from a checkpoint, and the iteration of that checkpoint (its last saved report)."""
    return {trial_id: int(match.group(1)) for trial_id, events in trial_events(console).items()
            for text in events if (match := _RESUMED.match(text))}


def went_back(console: str) -> dict[str, list[str]]:
    """Trials that reported an iteration at or below the one they were resumed at: restarted, not resumed."""
    back = {}
    for trial_id, events in trial_events(console).items():
        at = None
        for text in events:
            if match := _RESUMED.match(text):
                at = int(match.group(1))
            elif (match := _REACHED.match(text)) and at is not None and int(match.group(1)) <= at:
                back[trial_id] = events
    return back


def kill_after_a_report_of_an_unfinished_trial(log: Path, driver: subprocess.Popen, timeout: float) -> set[str]:
    """Wait until a trial has completed and another has reported but not completed; SIGKILL the driver then.

    Returns the trials the console showed completed. With TUNE_GLOBAL_CHECKPOINT_S=0 for the driver, Ray saves its
    state at every step: the unfinished trial's checkpoint is then in that state and a resume restores it.
    """
    deadline = time.monotonic() + timeout
    while True:
        events = trial_events(log.read_text(errors="replace"))
        done = {trial_id for trial_id, lines in events.items() if any(line.startswith("completed") for line in lines)}
        if done and any(reported_iterations(lines) and trial_id not in done for trial_id, lines in events.items()):
            time.sleep(0.5)  # the step that printed the report ends with Ray saving its state
            driver.send_signal(signal.SIGKILL)
            return done
        assert driver.poll() is None, f"the driver ended before the kill:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"no trial reported after another completed:\n{log.read_text()[-3000:]}"
        time.sleep(0.1)
