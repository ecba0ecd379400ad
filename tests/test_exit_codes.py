"""`advent-sweep launch` exit codes: 1 when every trial failed or diverged, 130 / 143 when interrupted (with the resume command)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml

from advent_sweep.cli import main

pytestmark = pytest.mark.slow

ADVENT_SWEEP = str(Path(sys.executable).parent / "advent-sweep")
TINY_TRAINER = {"backbone": "resnet18", "multi_level": False, "param_repeats": "unique", "batch_size_source": 2,
                "batch_size_target": 2, "eval_batch_size": 4, "device": "cpu", "threads": 1}


def space_file(tmp_path: Path, name: str, iterations: int, lr_choices: list[float]) -> Path:
    space = {
        "name": name, "storage": str(tmp_path / "results"),
        "data": {"synthetic": {"seed": 0, "size": [32, 32], "num_train": 8, "num_val": 4}},
        "trainer": {**TINY_TRAINER, "iterations": iterations, "poly_horizon": iterations, "eval_interval": 2},
        "space": {"lr": {"type": "categorical", "choices": lr_choices}},
        "searcher": {"sampler": "random", "seed": 0}, "scheduler": {"type": "fifo"},
        "num_samples": 2, "max_concurrent": 1, "resources": {"cpu": 1}, "max_failures": 0,
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(space))
    return path


def test_a_sweep_whose_every_trial_diverges_exits_1_with_a_summary(tmp_path, capsys):
    space = space_file(tmp_path, "all_diverge", iterations=4, lr_choices=[1e20, 1e21])

    assert main(["launch", str(space), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "no trial completed or was stopped by the scheduler (2 diverged)" in err


def stop_tree(process: subprocess.Popen) -> None:
    """Kill the driver and every process it started (raylet, GCS, workers), by process id."""
    try:
        family = [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        family = []
    for member in family:
        try:
            member.kill()
        except psutil.NoSuchProcess:
            pass
    process.wait(timeout=30)


@pytest.mark.parametrize(("stop", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_an_interrupted_sweep_exits_128_plus_the_signal_and_prints_the_resume_command(tmp_path, stop, code):
    space = space_file(tmp_path, "interrupted", iterations=400, lr_choices=[1e-3, 2e-3])
    process = subprocess.Popen([ADVENT_SWEEP, "launch", str(space)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    try:
        reports = tmp_path / "results" / "interrupted" / "reports"
        deadline = time.monotonic() + 240
        while not (reports.exists() and any(reports.glob("*.parquet"))) and time.monotonic() < deadline:
            assert process.poll() is None, process.communicate()
            time.sleep(0.5)
        assert process.poll() is None, "the sweep ended before it could be interrupted"
        os.kill(process.pid, stop)
        out, err = process.communicate(timeout=120)
    finally:
        stop_tree(process)

    assert process.returncode == code, out[-2000:] + err[-2000:]
    assert f"interrupted by {stop.name}; continue with: advent-sweep launch {space} --resume" in err
    assert "running" in out, "the summary counts the trial left running"
