"""ParquetResultSink driven with stand-in trial objects: statuses, errors, checkpoint URIs (no Ray cluster)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pandas as pd

from advent_sweep.sweep.launch import SweepOutcome
from advent_sweep.sweep.parquet_sink import ParquetResultSink
from advent_sweep.sweep.spec import SweepSpec

SPEC = SweepSpec.model_validate({
    "name": "sink", "storage": "/unused",
    "trainer": {"backbone": "resnet18", "iterations": 6, "poly_horizon": 6, "eval_interval": 2},
    "space": {"lr": {"type": "float", "low": 1e-3, "high": 1e-2}},
    "scheduler": {"max_t": 4}, "num_samples": 2, "max_concurrent": 1,
})


def trial(trial_id: str, checkpoint: str | None = None, error_file: str | None = None) -> SimpleNamespace:
    return SimpleNamespace(
        trial_id=trial_id, config={"lr": 5e-3}, placement_group_factory=None, num_failures=0, error_file=error_file,
        checkpoint=SimpleNamespace(path=checkpoint) if checkpoint else None, path=f"/sweeps/sink/{trial_id}",
    )


def sink_at(uri: str) -> ParquetResultSink:
    sink = ParquetResultSink(uri, "sink", "target_miou", "max", ("road", "sky"), SPEC.train_config, max_t=4)
    sink.setup()
    return sink


def report(sink: ParquetResultSink, t: SimpleNamespace, iteration: int, miou: float) -> None:
    sink.on_trial_result(0, [], t, {"iteration": iteration, "target_miou": miou, "time_total_s": 1.0})


def statuses(folder: Path) -> dict[str, str]:
    return pd.read_parquet(folder / "trials.parquet").set_index("trial_id").status.to_dict()


def test_a_trial_that_reaches_the_schedulers_max_t_is_completed_one_that_ends_before_is_stopped(tmp_path):
    sink = sink_at(str(tmp_path))
    reached, cut = trial("reached"), trial("cut")
    for t, last in ((reached, 4), (cut, 2)):
        sink.on_trial_start(0, [], t)
        for iteration in range(2, last + 1, 2):
            report(sink, t, iteration, 10.0 * iteration)
        sink.on_trial_complete(0, [], t)
    sink.get_state()  # Ray saves its experiment state: the sink writes first
    assert statuses(tmp_path) == {"cut": "stopped", "reached": "completed"}  # max_t 4 < trainer.iterations 6


def test_trials_ray_does_not_know_at_the_end_are_lost_and_do_not_make_the_sweep_interrupted(tmp_path):
    sink = sink_at(str(tmp_path))
    known, orphan = trial("known"), trial("orphan")
    sink.on_trial_start(0, [], orphan)  # started and written, then the driver crashed before Ray saved it
    sink.on_step_end(0, [])
    assert statuses(tmp_path) == {"orphan": "running"}
    sink = sink_at(str(tmp_path))  # the resumed driver reads the rows back
    sink.on_trial_start(0, [], known)
    report(sink, known, 4, 40.0)
    sink.on_trial_complete(0, [], known)
    sink.on_experiment_end([known])
    rows = statuses(tmp_path)
    assert rows == {"known": "completed", "orphan": "lost"}
    counts = pd.Series(rows).value_counts().to_dict()
    outcome = SweepOutcome(str(tmp_path), 2, counts, "known", 40.0, 4, {})
    assert not outcome.interrupted
    assert SweepOutcome(str(tmp_path), 2, {"running": 1, "completed": 1}, "known", 40.0, 4, {}).interrupted


def test_a_failed_trial_that_is_resumed_loses_its_old_error(tmp_path):
    error_file = tmp_path / "error.txt"
    error_file.write_text("Traceback (most recent call last):\n  ...\nRuntimeError: injected failure\n")
    sink = sink_at(str(tmp_path / "sweep"))
    t = trial("t", error_file=str(error_file))
    sink.on_trial_start(0, [], t)
    sink.on_trial_error(0, [], t)
    sink.get_state()
    failed = pd.read_parquet(tmp_path / "sweep" / "trials.parquet").iloc[0]
    assert (failed.status, failed.error) == ("failed", "RuntimeError: injected failure")
    sink.on_trial_start(0, [], t)  # resumed with resume_errored
    report(sink, t, 4, 40.0)
    sink.on_trial_complete(0, [], t)
    sink.get_state()
    done = pd.read_parquet(tmp_path / "sweep" / "trials.parquet").iloc[0]
    assert done.status == "completed" and pd.isna(done.error)


def test_checkpoint_paths_keep_the_storage_uri_scheme(tmp_path):
    folder = tmp_path / "sweep"
    uri_sink = sink_at(f"file://{folder}")
    started = trial("t", checkpoint=f"{folder}/t/checkpoint_000001")
    uri_sink.on_trial_start(0, [], started)
    uri_sink.on_experiment_end([started])  # Ray passes the same trial objects, checkpoints and all
    assert pd.read_parquet(folder / "trials.parquet").checkpoint_path.tolist() == [f"file://{folder}/t/checkpoint_000001"]
    assert pd.read_parquet(folder / "trials.parquet").trial_path.tolist() == ["file:///sweeps/sink/t"]  # where its snapshots are

    local = tmp_path / "local"
    local_sink = sink_at(str(local))
    started = trial("t", checkpoint=f"{local}/t/checkpoint_000001")
    local_sink.on_trial_start(0, [], started)
    local_sink.on_experiment_end([started])
    assert pd.read_parquet(local / "trials.parquet").checkpoint_path.tolist() == [f"{local}/t/checkpoint_000001"]


def test_the_report_rows_hold_target_miou_13_null_when_not_reported(tmp_path):
    sink = sink_at(str(tmp_path))
    t = trial("t")
    sink.on_trial_start(0, [], t)
    report(sink, t, 2, 20.0)
    sink.on_trial_result(0, [], t, {"iteration": 4, "target_miou": 30.0, "target_miou_13": 35.5, "time_total_s": 2.0})
    sink.on_experiment_end([t])
    rows = pd.read_parquet(tmp_path / "reports").sort_values("iteration")
    assert str(rows.target_miou_13.dtype) == "float64"
    assert rows.target_miou_13.isna().tolist() == [True, False] and rows.target_miou_13.iloc[1] == 35.5
