"""Progress of a running sweep: the figures, the console line and status.json (stand-in trials, no Ray)."""

import json
from types import SimpleNamespace

from advent_sweep.sweep import eta
from advent_sweep.sweep.eta import SweepProgress, progress_line, progress_status


def stand_in(iteration: int, seconds: float, status: str = "RUNNING") -> SimpleNamespace:
    return SimpleNamespace(last_result={"iteration": iteration, "time_total_s": seconds}, status=status)


def test_progress_counts_iterations_hours_and_an_eta_at_this_sessions_rate():
    trials = [stand_in(120, 3600.0, "TERMINATED"), stand_in(60, 1800.0), SimpleNamespace(last_result={}, status="PENDING")]
    status = progress_status(trials, forecast_iterations=400, num_samples=9, cpu=2, gpu=0.5, elapsed_s=100.0, done_at_start=80)
    assert status["iterations_done"] == 180 and status["trials_finished"] == 1 and status["trials_started"] == 3
    assert status["cpu_hours"] == 3.0 and status["gpu_hours"] == 0.75  # 1.5 trial-hours
    assert status["eta_s"] == 220  # 220 iterations left at (180 - 80) / 100 s
    assert "180 of ~400 forecast iterations (45%)" in progress_line(status) and "ETA 0:03:40" in progress_line(status)
    assert progress_status(trials, 400, 9, 2, 0.5, elapsed_s=100.0, done_at_start=180)["eta_s"] is None  # no rate yet


def test_status_json_is_written_at_the_interval_and_at_the_end(tmp_path, monkeypatch, capsys):
    progress = SweepProgress(str(tmp_path), forecast_iterations=200, num_samples=2, cpu=1, gpu=0)
    progress.setup()
    trials = [stand_in(0, 0.0)]
    progress.on_step_end(0, trials)
    assert not (tmp_path / eta.STATUS_FILE).exists() and capsys.readouterr().out == ""
    monkeypatch.setattr(eta, "PROGRESS_EVERY_S", 0.0)
    trials = [stand_in(60, 30.0)]
    progress.on_step_end(0, trials)
    status = json.loads((tmp_path / eta.STATUS_FILE).read_text())
    assert status["iterations_done"] == 60 and status["finished"] is False
    assert "progress: 60 of ~200" in capsys.readouterr().out
    progress.on_experiment_end([stand_in(120, 60.0, "TERMINATED")])
    status = json.loads((tmp_path / eta.STATUS_FILE).read_text())
    assert status["finished"] is True and status["eta_s"] == 0 and status["trials_finished"] == 1
