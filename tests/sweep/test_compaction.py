"""The sink's report files: few while running, one when finished, every row once, through kills and resumes.

Most tests drive ParquetResultSink with stand-in trials (as test_parquet_sink.py does); the last
two run real sweeps on an embedded Ray (loopback only): a stub trainable, and the ADVENT one.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import cloudpickle
import pandas as pd
import pytest

from advent_sweep.analysis import load_results
from advent_sweep.analysis import results as results_module
from advent_sweep.sweep import parquet_sink
from advent_sweep.sweep.parquet_sink import FANOUT, ParquetResultSink, write_sweep_metadata
from advent_sweep.sweep.spec import SweepSpec

SPEC = SweepSpec.model_validate({
    "name": "sink", "storage": "/unused",
    "trainer": {"backbone": "resnet18", "iterations": 8, "poly_horizon": 8, "eval_interval": 2},
    "space": {"lr": {"type": "float", "low": 1e-3, "high": 1e-2}},
    "scheduler": {"max_t": 8}, "num_samples": 2, "max_concurrent": 1,
})


def trial(trial_id: str) -> SimpleNamespace:
    return SimpleNamespace(trial_id=trial_id, config={"lr": 5e-3}, placement_group_factory=None, num_failures=0,
                           error_file=None, checkpoint=None, path=None)


def sink_at(folder: Path) -> ParquetResultSink:
    write_sweep_metadata(str(folder), "sink", "target_miou", "max", SPEC.model_dump(mode="json"))
    sink = ParquetResultSink(str(folder), "sink", "target_miou", "max", ("road", "sky"), SPEC.train_config, max_t=8)
    sink.setup()
    return sink


def report(sink: ParquetResultSink, t: SimpleNamespace, iteration: int) -> None:
    sink.on_trial_result(0, [], t, {"iteration": iteration, "target_miou": float(iteration), "target_entropy": 0.5,
                                    "time_total_s": 1.0})


def files(folder: Path) -> list[str]:
    return sorted(path.name for path in (folder / "reports").iterdir())


def assert_each_row_once(rows: pd.DataFrame, expected: int) -> None:
    assert len(rows) == expected and not rows.duplicated(["trial_id", "iteration"]).any()


def reports_of_trials_in_flight(sink: ParquetResultSink, names: list[str]) -> list[SimpleNamespace]:
    """Trials ``names`` report at 2, 4 and 6, a flush (Ray saving its state) after each round; none ends."""
    trials = [trial(name) for name in names]
    for t in trials:
        sink.on_trial_start(0, [], t)
    for iteration in (2, 4, 6):
        for t in trials:
            report(sink, t, iteration)
        sink.get_state()
    return trials


def test_a_finished_sweep_is_one_file_and_no_level_ever_holds_fanout_files(tmp_path):
    sink = sink_at(tmp_path)
    for index in range(3 * FANOUT):
        t = trial(f"t{index:02d}")
        sink.on_trial_start(0, [], t)
        for iteration in (2, 4, 6, 8):
            report(sink, t, iteration)
            sink.get_state()
        sink.on_trial_complete(0, [], t)
        levels = Counter(parquet_sink._level(name) for name in files(tmp_path))
        assert max(levels.values()) < FANOUT, levels
    sink.on_experiment_end([])

    assert len(files(tmp_path)) == 1
    assert_each_row_once(pd.read_parquet(tmp_path / "reports"), 3 * FANOUT * 4)
    assert set(pd.read_parquet(tmp_path / "trials.parquet").status) == {"completed"}


def test_a_flush_writes_one_part_and_trials_parquet_once(tmp_path, monkeypatch):
    sink = sink_at(tmp_path)
    written: list[str] = []
    write = parquet_sink.write_atomically

    def recorded(path, *rest):
        written.append(Path(path).name)
        write(path, *rest)

    monkeypatch.setattr(parquet_sink, "write_atomically", recorded)
    reports_of_trials_in_flight(sink, ["a", "b", "c"])
    assert [name.split("-")[:2] for name in written] == [["part", "0"], ["trials.parquet"]] * 3
    sink.get_state()  # nothing new
    assert len(written) == 6


def test_step_ends_flush_at_most_every_flush_every_s(tmp_path, monkeypatch):
    monkeypatch.setattr(parquet_sink, "FLUSH_EVERY_S", 3600.0)
    sink = sink_at(tmp_path)
    t = trial("t")
    sink.on_trial_start(0, [], t)
    report(sink, t, 2)
    sink.on_step_end(0, [])  # the first flush
    report(sink, t, 4)
    sink.on_step_end(0, [])
    assert len(pd.read_parquet(tmp_path / "reports")) == 1
    sink.get_state()  # Ray saves its state: what it counts as done is written first
    assert len(pd.read_parquet(tmp_path / "reports")) == 2


def test_a_driver_killed_before_a_fold_leaves_parts_that_read_once_and_setup_folds(tmp_path):
    killed = sink_at(tmp_path)
    reports_of_trials_in_flight(killed, ["a", "b", "c"])  # then SIGKILL: no trial end, no fold
    assert len(files(tmp_path)) == 3
    assert_each_row_once(load_results(tmp_path).reports, 9)

    resumed = sink_at(tmp_path)
    assert len(files(tmp_path)) == 1
    assert_each_row_once(pd.read_parquet(tmp_path / "reports"), 9)
    a = trial("a")
    report(resumed, a, 6)  # retried from its checkpoint at 4: 6 is on disk already
    report(resumed, a, 8)
    resumed.on_trial_complete(0, [], a)
    resumed.on_experiment_end([a])
    assert len(files(tmp_path)) == 1
    assert_each_row_once(load_results(tmp_path).reports, 10)


def test_a_driver_killed_mid_fold_leaves_copies_that_read_once_and_setup_deletes(tmp_path):
    killed = sink_at(tmp_path)
    reports_of_trials_in_flight(killed, ["a", "b"])
    parts = {name: (tmp_path / "reports" / name).read_bytes() for name in files(tmp_path)}
    killed.on_experiment_end([])  # folds the parts into one file ...
    for name, body in parts.items():  # ... and is killed before it deletes them
        (tmp_path / "reports" / name).write_bytes(body)
    (tmp_path / "reports" / ".part-1-cut-short.parquet.0123.tmp").write_bytes(b"a write cut short")
    assert len(pd.read_parquet(tmp_path / "reports")) == 2 * 6  # a plain reader sees both copies
    assert_each_row_once(load_results(tmp_path).reports, 6)

    sink_at(tmp_path)
    assert len(files(tmp_path)) == 1
    assert_each_row_once(pd.read_parquet(tmp_path / "reports"), 6)


def test_a_reader_that_listed_parts_a_fold_then_replaced_reads_their_rows_once(tmp_path, monkeypatch):
    sink = sink_at(tmp_path)
    reports_of_trials_in_flight(sink, ["a", "b"])
    listing = results_module._part_files

    def listed_then_folded(folder):
        names = listing(folder)
        sink.on_experiment_end([])  # between the reader's listing and its reads
        monkeypatch.setattr(results_module, "_part_files", listing)
        return names

    monkeypatch.setattr(results_module, "_part_files", listed_then_folded)
    assert_each_row_once(load_results(tmp_path).reports, 6)
    assert len(files(tmp_path)) == 1


def test_files_of_sealed_rows_or_more_are_not_folded_again(tmp_path, monkeypatch):
    monkeypatch.setattr(parquet_sink, "SEALED_ROWS", 4)
    sink = sink_at(tmp_path)
    for name in ("a", "b"):
        t = trial(name)
        sink.on_trial_start(0, [], t)
        for iteration in (2, 4, 6, 8):
            report(sink, t, iteration)
        sink.on_trial_complete(0, [], t)
        sink.get_state()
    sink.on_experiment_end([])
    assert [len(pd.read_parquet(tmp_path / "reports" / name)) for name in files(tmp_path)] == [4, 4]


# -- real Ray ---------------------------------------------------------------------------------

def stub_trial(config: dict) -> None:
    from ray import tune

    for iteration in range(2, 26, 2):
        tune.report({"iteration": iteration, "target_miou": config["lr"] * iteration, "target_entropy": 0.5})


@pytest.mark.slow
def test_a_stub_sweep_on_ray_leaves_one_file_with_every_report(local_ray, tmp_path):
    from ray import tune

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    folder = tmp_path / "stub"
    sink = ParquetResultSink(str(folder), "stub", "target_miou", "max", ("road", "sky"), SPEC.train_config, max_t=24)
    tune.Tuner(
        tune.with_resources(stub_trial, {"cpu": 0.25}),
        param_space={"lr": tune.uniform(1e-3, 1e-2)},
        tune_config=tune.TuneConfig(num_samples=8, max_concurrent_trials=4, reuse_actors=True),
        run_config=tune.RunConfig(name="stub", storage_path=str(tmp_path), callbacks=[sink], verbose=0),
    ).fit()

    assert files(folder) and len(files(folder)) == 1
    assert_each_row_once(pd.read_parquet(folder / "reports"), 8 * 12)
    assert (pd.read_parquet(folder / "trials.parquet").num_reports == 12).all()


@pytest.mark.slow
def test_an_advent_sweep_leaves_one_file_with_every_report(local_ray, tmp_path):
    from advent_sweep.sweep.launch import launch

    spec = SweepSpec.model_validate({
        "name": "advent", "storage": str(tmp_path),
        "data": {"synthetic": {"seed": 0, "size": [32, 32], "num_train": 8, "num_val": 4}},
        "trainer": {"backbone": "resnet18", "multi_level": False, "param_repeats": "unique", "iterations": 6,
                    "poly_horizon": 6, "eval_interval": 2, "batch_size_source": 2, "batch_size_target": 2,
                    "eval_batch_size": 4, "device": "cpu"},
        "space": {"lr": {"type": "float", "low": 1e-3, "high": 1e-2, "log": True}},
        "searcher": {"sampler": "random", "seed": 0}, "scheduler": {"type": "fifo"},
        "num_samples": 8, "max_concurrent": 2, "resources": {"cpu": 1},
    })
    outcome = launch(spec)

    folder = Path(outcome.folder)
    assert len(files(folder)) == 1
    assert_each_row_once(pd.read_parquet(folder / "reports"), 8 * 3)
    assert set(pd.read_parquet(folder / "trials.parquet").status) == {"completed"}
