"""The sweep's Optuna study: ASHA stops told as PRUNED at trainer iterations, failures as FAIL, the study in a
journal that survives a resume (local or URI sweep), and `advent-sweep dashboard` on it."""

import math
import os
from pathlib import Path

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # before Ray is imported: loopback only

import optuna
import pandas as pd
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from advent_sweep.cli import main
from advent_sweep.errors import ResultsError
from advent_sweep.sweep.searchers import build_search_alg
from advent_sweep.sweep.study_journal import JOURNAL_FILE, StudyJournal, open_sweep_journal
from advent_sweep.sweep.spec import SweepSpec
from tests.sweep.test_launch import tiny_spec as launch_tiny_spec

optuna.logging.set_verbosity(optuna.logging.WARNING)

def tiny_spec(storage: str, name: str, **overrides) -> SweepSpec:
    """test_launch's tiny sweep, searched by TPE over a log lr and stopped by ASHA at 2 and 4 of 6."""
    values = {
        "space": {"lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True}},
        "searcher": {"sampler": "tpe", "seed": 0},
        "scheduler": {"type": "asha", "grace_period": 2, "reduction_factor": 2, "max_t": 6},
        "num_samples": 8, "max_concurrent": 8,
    }
    return launch_tiny_spec(storage, name, **{**values, **overrides})


def stored_study(journal: Path, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=JournalStorage(JournalFileBackend(str(journal))))


# --- the searcher driven as Ray drives it (no Ray) ----------------------------------------------------


def test_stops_are_pruned_at_trainer_iterations_and_errors_and_divergences_fail(tmp_path):
    search_alg = build_search_alg(tiny_spec(str(tmp_path), "states"))
    for trial_id in "abcde":
        search_alg.suggest(trial_id)
    for step in (2, 4, 6):  # Ray's training_iteration is 1, 2, 3: the study keys by the trainer's iteration
        search_alg.on_trial_result("a", {"target_miou": 10.0 + step, "iteration": step, "training_iteration": step // 2})
    ended = {"target_miou": 16.0, "iteration": 6, "done": True}  # Ray's repeat of the last result when the function returns
    search_alg.on_trial_result("a", ended)
    search_alg.on_trial_complete("a", ended)
    search_alg.on_trial_result("b", {"target_miou": 3.0, "iteration": 2})
    search_alg.on_trial_complete("b", {"target_miou": 2.5, "iteration": 4})  # the result ASHA stopped it on
    search_alg.on_trial_result("c", {"target_miou": 5.0, "iteration": 2})
    search_alg.on_trial_complete("c", {"target_miou": math.nan, "iteration": 3, "diverged": True})
    search_alg.on_trial_complete("d", error=True)
    search_alg.on_trial_complete("e", {"target_miou": 30.0, "iteration": 6})  # ASHA at max_t: stopped there, completed

    trials = stored_study(tmp_path / "states" / JOURNAL_FILE, "states").trials
    told = [(t.state, t.value, t.intermediate_values) for t in trials]
    assert told == [
        (TrialState.COMPLETE, 16.0, {2: 12.0, 4: 14.0, 6: 16.0}),
        (TrialState.PRUNED, 2.5, {2: 3.0, 4: 2.5}),
        (TrialState.FAIL, None, {2: 5.0}),
        (TrialState.FAIL, None, {}),
        (TrialState.COMPLETE, 30.0, {6: 30.0}),
    ]


def test_a_restored_searcher_hands_on_trials_ray_lost_and_proposes_nothing_twice(tmp_path):
    """Ray saves the searcher every few seconds, the journal is written at once: a crash loses the trials asked
    since Ray's last save (they are in the journal, not in Ray's state) and ends Ray did not see."""
    spec = tiny_spec(str(tmp_path), "resumed")
    search_alg = build_search_alg(spec)
    proposed = [search_alg.suggest(trial_id) for trial_id in ("a", "b")]
    search_alg.searcher.save(str(tmp_path / "searcher.pkl"))
    search_alg.on_trial_complete("a", {"target_miou": 7.0, "iteration": 6})  # after the save: Ray reruns "a"
    proposed.append(search_alg.suggest("c"))  # asked after the save: Ray loses "c"

    restored = build_search_alg(spec).searcher  # what Tuner.restore unpickles, before restoring the saved state
    restored.restore(str(tmp_path / "searcher.pkl"))
    restored.on_trial_result("a", {"target_miou": 7.0, "iteration": 6})
    restored.on_trial_complete("a", {"target_miou": 7.0, "iteration": 6})
    assert restored.suggest("c2") == proposed[2], "the trial Ray lost goes to the next new Ray trial"
    proposed += [restored.suggest("d"), restored.suggest("e")]
    restored.on_trial_complete("b", {"target_miou": 5.0, "iteration": 6})

    trials = stored_study(tmp_path / "resumed" / JOURNAL_FILE, "resumed").trials
    assert [t.params for t in trials] == proposed
    assert len({t.params["lr"] for t in trials}) == 5, "a restored sampler redrew a proposal"
    assert [t.state for t in trials[:3]] == [TrialState.COMPLETE, TrialState.COMPLETE, TrialState.RUNNING]
    assert (trials[0].value, trials[0].intermediate_values) == (7.0, {6: 7.0})


def test_a_restore_without_the_journal_it_was_saved_with_says_so(tmp_path):
    spec = tiny_spec(str(tmp_path), "gone")
    searcher = build_search_alg(spec).searcher
    searcher.save(str(tmp_path / "searcher.pkl"))
    (tmp_path / "gone" / JOURNAL_FILE).unlink()
    with pytest.raises(ResultsError, match=f"{tmp_path / 'gone' / JOURNAL_FILE}: the sweep's Optuna journal is missing"):
        searcher.restore(str(tmp_path / "searcher.pkl"))
    assert not (tmp_path / "gone" / JOURNAL_FILE).exists()


def test_a_uri_sweep_journals_locally_and_resumes_from_the_copy_in_its_folder(tmp_path, monkeypatch):
    uri = f"file://{tmp_path}/bucket"
    spec = tiny_spec(uri, "remote")
    (tmp_path / "bucket" / "remote").mkdir(parents=True)  # launch writes sweep.json there first
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "head-1"))
    search_alg = build_search_alg(spec)
    local = Path(StudyJournal(spec.folder).path)
    assert local.is_relative_to(tmp_path / "head-1") and local.exists()
    copy = tmp_path / "bucket" / "remote" / JOURNAL_FILE
    first = search_alg.suggest("a")
    assert not copy.exists()
    search_alg.on_trial_complete("a", {"target_miou": 7.0, "iteration": 6})
    assert copy.read_bytes() == local.read_bytes(), "copied at each trial end"
    search_alg.suggest("b")
    search_alg.searcher.save(str(tmp_path / "searcher.pkl"))
    assert copy.read_bytes() == local.read_bytes(), "copied when Ray saves the searcher"

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "head-2"))  # the sweep resumes on another machine
    restored = build_search_alg(spec).searcher
    restored.restore(str(tmp_path / "searcher.pkl"))
    restored.on_trial_complete("b", {"target_miou": 8.0, "iteration": 4})
    moved = Path(StudyJournal(spec.folder).path)
    assert moved.is_relative_to(tmp_path / "head-2") and copy.read_bytes() == moved.read_bytes()
    with open_sweep_journal(spec.folder) as storage:  # what `advent-sweep dashboard URI` serves
        trials = optuna.load_study(study_name="remote", storage=storage).trials
    assert [(t.params, t.state) for t in trials[:1]] == [(first, TrialState.COMPLETE)]
    assert trials[1].state == TrialState.PRUNED


# --- advent-sweep dashboard ------------------------------------------------------------------------------


def test_dashboard_serves_the_sweep_journal_on_loopback_only(tmp_path, monkeypatch, capsys):
    import optuna_dashboard

    build_search_alg(tiny_spec(str(tmp_path), "served"))
    served = {}
    monkeypatch.setattr(optuna_dashboard, "run_server", lambda storage, **options: served.update(storage=storage, **options))
    assert main(["dashboard", str(tmp_path / "served"), "--port", "8123"]) == 0
    assert (served["host"], served["port"]) == ("127.0.0.1", 8123)
    assert [study.study_name for study in served["storage"].get_all_studies()] == ["served"]
    assert "http://127.0.0.1:8123" in capsys.readouterr().out


def test_dashboard_on_a_folder_without_a_journal_exits_2_naming_it(tmp_path, monkeypatch, capsys):
    import optuna_dashboard

    monkeypatch.setattr(optuna_dashboard, "run_server", lambda *args, **kwargs: pytest.fail("no server without a journal"))
    assert main(["dashboard", str(tmp_path)]) == 2
    assert f"{tmp_path}: no Optuna study journal ({JOURNAL_FILE})" in capsys.readouterr().err
    assert not (tmp_path / JOURNAL_FILE).exists()


# --- a real sweep --------------------------------------------------------------------------------------


@pytest.mark.slow
# The diverged trial reaches the first rung alone with a NaN; Ray's ASHA takes its cutoff with
# numpy's nanpercentile, which warns on a rung of NaNs only and leaves NaN out of every cutoff.
@pytest.mark.filterwarnings("ignore:All-NaN slice encountered:RuntimeWarning")
def test_a_real_asha_sweep_leaves_pruned_completed_and_failed_trials_in_its_journal(tmp_path):
    from advent_sweep.sweep.launch import launch

    spec = tiny_spec(
        str(tmp_path), "asha", space={"lr": {"type": "categorical", "choices": [1e-9, 1.5e-2, 2e-2, 1e20]}},
        searcher={"sampler": "random", "seed": 0, "points_to_evaluate": [
            {"lr": 1e20}, {"lr": 2e-2}, {"lr": 1e-9}, {"lr": 1.5e-2}, {"lr": 1e-9}, {"lr": 1e-9}]},
        num_samples=6, max_concurrent=2,
    )
    launch(spec)
    reports = pd.read_parquet(Path(spec.folder) / "reports").sort_values("iteration")
    trials = pd.read_parquet(Path(spec.folder) / "trials.parquet")
    assert "stopped" in set(trials.status) and "completed" in set(trials.status)

    state = {"completed": TrialState.COMPLETE, "stopped": TrialState.PRUNED, "diverged": TrialState.FAIL}
    expected = []
    for trial in trials.itertuples():
        scores = reports[reports.trial_id == trial.trial_id].dropna(subset=["target_miou"])
        values = dict(zip(scores.iteration.tolist(), scores.target_miou.tolist()))
        last = None if trial.status == "diverged" else values[max(values)]  # a pruned trial's value: its last report
        expected.append((state[trial.status].name, last, sorted(values.items())))
    study = stored_study(Path(spec.folder) / JOURNAL_FILE, "asha")
    told = [(t.state.name, t.value, sorted(t.intermediate_values.items())) for t in study.trials]
    assert sorted(told, key=repr) == sorted(expected, key=repr)
    pruned = [t for t in study.trials if t.state == TrialState.PRUNED]
    assert all(sorted(t.intermediate_values) == list(range(2, max(t.intermediate_values) + 1, 2)) for t in pruned)
    assert all(max(t.intermediate_values) < 6 for t in pruned)
    assert [t.params["lr"] for t in study.trials if t.state == TrialState.FAIL] == [1e20]
