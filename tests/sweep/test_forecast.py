"""The cost forecast: ASHA's rung arithmetic by hand, the timing sources, the CLI, probe, and a real sweep against it."""

from fractions import Fraction
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from advent_sweep.cli import main
from advent_sweep.errors import ConfigError
from advent_sweep.sweep.forecast import (
    continuing,
    expected_iterations,
    expected_rungs,
    forecast,
)
from advent_sweep.sweep.parquet_sink import write_sweep_metadata
from advent_sweep.sweep.spec import SweepSpec

TINY_DATA = {"synthetic": {"seed": 0, "size": [32, 32], "num_train": 8, "num_val": 4}}
TINY_TRAINER = {
    "backbone": "resnet18", "multi_level": False, "param_repeats": "unique", "iterations": 4, "poly_horizon": 4,
    "eval_interval": 1, "batch_size_source": 2, "batch_size_target": 2, "eval_batch_size": 4, "device": "cpu",
}
QUICKSTART_SPACE = {
    "method": {"type": "categorical", "choices": ["source_only", "minent", "advent", "advent_minent"]},
    "lambda_ent_main": {"type": "float", "low": 1e-3, "high": 10.0, "log": True, "when": {"method": ["minent", "advent_minent"]}},
    "lambda_adv_main": {"type": "float", "low": 1e-3, "high": 1.0, "log": True, "when": {"method": ["advent", "advent_minent"]}},
}


def spec_of(storage: Path, name: str = "s", **overrides) -> SweepSpec:
    values = {"name": name, "storage": str(storage), "data": TINY_DATA, "trainer": TINY_TRAINER, "space": QUICKSTART_SPACE,
              "num_samples": 9, "max_concurrent": 2, "scheduler": {"type": "asha", "grace_period": 2, "reduction_factor": 3, "max_t": 4}}
    values.update(overrides)
    return SweepSpec.model_validate(values)


def test_a_rung_passes_the_kth_arrival_if_it_ranks_in_the_top_k_minus_ceil_q_k_minus_1():
    # η 3: the cutoff is the 2/3 percentile of the k values so far; the k-th passes in ceil(k/3) of its k ranks.
    assert continuing(3, 3) == pytest.approx(float(1 + Fraction(1, 2) + Fraction(1, 3)))
    assert continuing(6, 3) == pytest.approx(float(1 + Fraction(1, 2) + Fraction(1, 3) + Fraction(2, 4) + Fraction(2, 5) + Fraction(2, 6)))
    # η 2: the median; the k-th passes in k - ceil((k-1)/2) of its k ranks: 1, 1, 2, 2
    assert continuing(4, 2) == pytest.approx(1 + 1 / 2 + 2 / 3 + 2 / 4)
    # between integers, linearly
    assert continuing(3.5, 3) == pytest.approx((continuing(3, 3) + continuing(4, 3)) / 2)


def test_27_trials_eta_3_grace_1_max_t_27(tmp_path):
    spec = spec_of(tmp_path, num_samples=27, trainer={**TINY_TRAINER, "iterations": 27, "poly_horizon": 27},
                   scheduler={"type": "asha", "grace_period": 1, "reduction_factor": 3, "max_t": 27})
    at_3 = float(sum(Fraction(-(-k // 3), k) for k in range(1, 28)))  # Σ ceil(k/3)/k over the 27 arrivals at rung 1
    assert at_3 == pytest.approx(10.5729, abs=1e-4)
    rungs = expected_rungs(spec)
    assert [iteration for iteration, _ in rungs] == [1, 3, 9, 27]
    assert rungs[0][1] == 27 and rungs[1][1] == pytest.approx(at_3)
    at_9, at_27 = continuing(at_3, 3), continuing(continuing(at_3, 3), 3)
    assert rungs[2][1] == pytest.approx(at_9) and rungs[3][1] == pytest.approx(at_27)
    # the ones stopped at each rung trained to it; the rest to 27. More than synchronous halving's 27·1+9·2+3·6+1·18 = 81.
    total = (27 - at_3) * 1 + (at_3 - at_9) * 3 + (at_9 - at_27) * 9 + at_27 * 27
    assert expected_iterations(rungs) == pytest.approx(total)
    assert total > 81


def test_fifo_trains_every_trial_to_the_end_and_a_rung_waits_for_a_report(tmp_path):
    fifo = forecast(spec_of(tmp_path, scheduler={"type": "fifo"}), seconds_per_iteration=2.0)
    assert fifo.iterations == 9 * 4
    assert fifo.wall_seconds == 9 * 4 / 2 * 2.0  # spread over 2 slots
    # grace 3 with a report every 2 iterations: the rung takes effect at iteration 4 of 6
    trainer = {**TINY_TRAINER, "iterations": 6, "poly_horizon": 6, "eval_interval": 2}
    asha = spec_of(tmp_path, trainer=trainer, scheduler={"type": "asha", "grace_period": 3, "reduction_factor": 3, "max_t": 6})
    assert [iteration for iteration, _ in expected_rungs(asha)] == [4, 6]


def test_resource_hours_and_wall_time_from_seconds_per_iteration(tmp_path):
    spec = spec_of(tmp_path, scheduler={"type": "fifo"}, num_samples=4, max_concurrent=8, resources={"cpu": 4, "gpu": 0.5},
                   trainer={**TINY_TRAINER, "device": "auto"})
    cost = forecast(spec, seconds_per_iteration=900.0)  # 16 iterations × 900 s = 4 trial-hours
    assert cost.resource_hours(cost.gpu_per_trial) == pytest.approx(2.0)
    assert cost.resource_hours(cost.cpu_per_trial) == pytest.approx(16.0)
    assert cost.wall_seconds == 4 * 900.0  # 4 trials on 8 slots: one trial's length
    assert "2.00 GPU-hours, 16.00 CPU-hours" in cost.describe()
    with pytest.raises(ConfigError, match="seconds_per_iteration"):
        forecast(spec, seconds_per_iteration=0.0)


def _previous_sweep(storage: Path, name: str, spec: SweepSpec, rows: list[tuple[float, int]]) -> None:
    write_sweep_metadata(f"{storage}/{name}", name, spec.metric, spec.mode, spec.model_dump(mode="json"))
    table = pa.table({"wall_time_s": [w for w, _ in rows], "iterations": [i for _, i in rows]})
    pq.write_table(table, f"{storage}/{name}/trials.parquet")


def test_a_previous_sweep_of_the_same_settings_times_the_forecast(tmp_path):
    spec = spec_of(tmp_path, name="next")
    assert forecast(spec).seconds_per_iteration is None
    other = spec_of(tmp_path, trainer={**TINY_TRAINER, "batch_size_source": 4})
    _previous_sweep(tmp_path, "other_settings", other, [(100.0, 4)])
    assert forecast(spec).seconds_per_iteration is None
    _previous_sweep(tmp_path, "earlier", spec_of(tmp_path, name="earlier", num_samples=3), [(6.0, 4), (2.0, 2), (0.0, 0)])
    cost = forecast(spec)
    assert cost.seconds_per_iteration == pytest.approx(8.0 / 6)
    assert "sweep 'earlier'" in cost.timing_source


def _space_file(tmp_path: Path, **overrides) -> Path:
    values = {"name": "cli", "storage": str(tmp_path / "storage"), "data": TINY_DATA, "trainer": TINY_TRAINER,
              "space": QUICKSTART_SPACE, "num_samples": 9, "max_concurrent": 2,
              "scheduler": {"type": "asha", "grace_period": 2, "reduction_factor": 3, "max_t": 4}}
    values.update(overrides)
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


@pytest.mark.parametrize("command", ["validate", "launch"])
@pytest.mark.parametrize("value", ["0", "-1"])
def test_seconds_per_iteration_zero_or_negative_exits_2_naming_the_flag(tmp_path, capsys, command, value):
    args = [command, str(_space_file(tmp_path)), f"--seconds-per-iteration={value}"] + (["--dry-run"] if command == "launch" else [])
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 2
    assert "--seconds-per-iteration" in capsys.readouterr().err
    assert not (tmp_path / "storage").exists()


def test_validate_prints_the_forecast_with_the_given_timing(tmp_path, capsys):
    assert main(["validate", str(_space_file(tmp_path)), "--seconds-per-iteration", "0.5"]) == 0
    out = capsys.readouterr().out
    iterations = expected_iterations(expected_rungs(spec_of(tmp_path)))
    assert f"forecast: {iterations:,.0f} trainer iterations" in out
    assert "at 0.5 s per iteration (given by --seconds-per-iteration)" in out


@pytest.mark.slow
def test_probe_on_cpu_times_the_largest_backbone_and_the_forecast_uses_it(tmp_path, capsys):
    space = {**QUICKSTART_SPACE, "backbone": {"type": "categorical", "choices": ["mobilenet_v3", "resnet18"]}}
    trainer = {key: value for key, value in TINY_TRAINER.items() if key != "backbone"}
    path = _space_file(tmp_path, space=space, trainer=trainer)
    assert main(["probe", str(path), "--steps", "1"]) == 0
    out = capsys.readouterr().out
    assert "probe on cpu" in out and "backbone=resnet18" in out and "method=advent_minent" in out
    per_iteration = float(out.split(" s per iteration")[0].rsplit(": ", 1)[1])
    assert per_iteration > 0
    assert main(["validate", str(path)]) == 0
    assert f"at {per_iteration:.3g} s per iteration (probed on cpu" in capsys.readouterr().out
