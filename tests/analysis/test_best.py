"""Choosing the best trial under each rule, and exporting a config that `advent-sweep train` reruns."""

from pathlib import Path

import pytest

import advent_sweep
from advent_sweep.advent.config import TrainConfig
from advent_sweep.analysis import export_best, format_top, select_best
from advent_sweep.errors import ResultsError
from tests.analysis.conftest import FakeTrial


def _winner(trials: list[FakeTrial], values, pick=max, min_iterations: int = 0) -> str:
    """The trial holding the best single report at iteration >= min_iterations, by plain Python."""
    candidates = [(v, t.trial_id) for t in trials for it, v in zip(t.iterations, values(t)) if it >= min_iterations]
    return pick(candidates)[1]


def test_rule_best_picks_the_best_report_of_any_trial(results, trials: list[FakeTrial]) -> None:
    ranked = select_best(results)
    assert ranked.loc[0, "trial_id"] == _winner(trials, lambda t: t.miou) == "spike"
    assert (ranked.loc[0, "target_miou"], ranked.loc[0, "iteration"]) == (80.0, 100)
    assert list(ranked.columns[:5]) == ["sweep", "trial_id", "status", "iteration", "target_miou"]
    assert len(ranked) == len(trials) and ranked["target_miou"].is_monotonic_decreasing


def test_min_iterations_ignores_early_reports(results, trials: list[FakeTrial]) -> None:
    ranked = select_best(results, min_iterations=200)
    assert ranked.loc[0, "trial_id"] == _winner(trials, lambda t: t.miou, min_iterations=200) != "spike"
    assert (ranked["iteration"] >= 200).all()


def test_rule_last_uses_each_trials_last_report(results, trials: list[FakeTrial]) -> None:
    ranked = select_best(results, rule="last")
    best = max(trials, key=lambda t: t.miou[-1])
    assert (ranked.loc[0, "trial_id"], ranked.loc[0, "target_miou"]) == (best.trial_id, best.miou[-1])


def test_rule_last_leaves_out_trials_that_stopped_before_min_iterations(results, trials: list[FakeTrial]) -> None:
    ranked = select_best(results, rule="last", min_iterations=300)
    assert set(ranked["trial_id"]) == {t.trial_id for t in trials if t.status != "stopped"}
    assert set(select_best(results)["status"]) == {"completed", "stopped"}


def test_mode_min_on_target_entropy(results, trials: list[FakeTrial]) -> None:
    ranked = select_best(results, metric="target_entropy", mode="min")
    assert ranked.loc[0, "trial_id"] == _winner(trials, lambda t: t.entropy, pick=min)
    assert ranked["target_entropy"].is_monotonic_increasing


def test_label_free_rule_takes_the_lowest_entropy_report(results, trials: list[FakeTrial]) -> None:
    ranked = select_best(results, rule="target_entropy")
    calmest = min(trials, key=lambda t: min(t.entropy))
    k = calmest.entropy.index(min(calmest.entropy))
    assert (ranked.loc[0, "trial_id"], ranked.loc[0, "target_miou"]) == (calmest.trial_id, calmest.miou[k])


def test_unknown_rule(results) -> None:
    with pytest.raises(ResultsError, match="unknown rule 'first'; allowed: best, last, target_entropy, target_im, target_bnm, target_snd, source_val_miou"):
        select_best(results, rule="first")


def test_exported_yaml_reruns_the_trials_config(results, trials: list[FakeTrial], tmp_path: Path) -> None:
    path = tmp_path / "best.yaml"
    choice = export_best(results, path, min_iterations=200)
    winner = next(t for t in trials if t.trial_id == choice.trial_id)
    assert TrainConfig.from_yaml(path) == winner.config
    header = [line for line in path.read_text().splitlines() if line.startswith("#")]
    text = "\n".join(header)
    for fact in (choice.trial_id, "sweep: fake", f"target_miou = {choice.value!r}", f"iteration {choice.iteration}",
                 "rule: best-so-far", "iteration >= 200", advent_sweep.__version__):
        assert fact in text
    assert str(choice).startswith(str(path))


def test_export_writes_nothing_when_no_trial_qualifies(results, tmp_path: Path) -> None:
    with pytest.raises(ResultsError, match="no trial has a target_miou report at iteration >= 10000"):
        export_best(results, tmp_path / "best.yaml", min_iterations=10_000)
    assert list(tmp_path.iterdir()) == []


def test_format_top_lists_k_trials(results) -> None:
    text = format_top(results, k=3, rule="last")
    lines = text.splitlines()
    assert lines[0] == "top 3 by target_miou (max), rule last"
    assert len(lines) == 5 and lines[2].split()[:2] == ["1", select_best(results, rule="last").loc[0, "trial_id"]]
