"""From a SweepSpec to Ray Tune's search algorithm (Optuna) and scheduler (ASHA or FIFO).

Samplers and schedulers are chosen by name from one table each; callers never branch
on type::

    search_alg = build_search_alg(spec)   # ConcurrencyLimiter(PruningOptunaSearch(...)), study journaled
    scheduler = build_scheduler(spec)     # ASHAScheduler(time_attr="iteration", ...)
    tune.TuneConfig(search_alg=search_alg, scheduler=scheduler, num_samples=spec.num_samples)

Both already carry ``metric`` and ``mode``: do not pass them to ``tune.TuneConfig`` too
(Ray refuses a metric set twice); pass ``spec.metric`` to ``ResultGrid.get_best_result``.

Nothing here starts Ray: building the searcher and scheduler needs no ``ray.init``. Building
the searcher creates the sweep's Optuna study in its journal (see :class:`StudyJournal`).
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Callable

import numpy as np
import optuna
from optuna.trial import TrialState
from ray.tune import Callback
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler
from ray.tune.search import ConcurrencyLimiter, Searcher
from ray.tune.search.optuna import OptunaSearch

from advent_sweep.sweep.checkpoints import stopped_early
from advent_sweep.sweep.repeats import MAX_ASKS, distinct_configurations, ended_early_message, original_of
from advent_sweep.sweep.spec import SweepSpec
from advent_sweep.sweep.spec_models import CategoricalParam, FloatParam
from advent_sweep.sweep.study_journal import StudyJournal


RAY_TRIAL_ID, TRIAL_FOLDER = "ray_trial_id", "trial_folder"  # user attributes of each Optuna trial


class DefineByRun:
    """Optuna define-by-run search space of a spec: ``DefineByRun(spec)(trial)`` suggests every
    active parameter, in :meth:`SweepSpec.param_order` (conditions and entropy_low first).

    Inactive conditional parameters are not suggested: the trial's config lacks them and
    :meth:`SweepSpec.train_config` leaves them at their fixed/default value (unused by the
    method anyway). Returns None: OptunaSearch takes the suggested values as the trial's
    config (a returned dict would add constants to it; the fixed settings live in the spec).
    A class, not a closure, so Ray can pickle it with the searcher's state.
    """

    def __init__(self, spec: SweepSpec) -> None:
        self.spec = spec

    def __call__(self, trial: optuna.Trial) -> None:
        sampled: dict[str, Any] = {}
        for name in self.spec.param_order():
            if self.spec.is_active(name, sampled):
                sampled[name] = self._suggest(trial, name, sampled)
        return None

    def _suggest(self, trial: optuna.Trial, name: str, sampled: dict[str, Any]) -> Any:
        param = self.spec.space[name]
        if isinstance(param, CategoricalParam):
            return trial.suggest_categorical(name, param.choices)
        low, high = self.spec.bounds(name, sampled)
        if isinstance(param, FloatParam):
            return trial.suggest_float(name, low, high, log=param.log, step=param.step)
        return trial.suggest_int(name, low, high, step=param.step, log=param.log)


def _startup(spec: SweepSpec) -> dict[str, int]:
    n = spec.searcher.n_startup_trials
    return {} if n is None else {"n_startup_trials": n}


def _tpe(spec: SweepSpec) -> optuna.samplers.BaseSampler:
    with warnings.catch_warnings():  # group=True is marked experimental; it is what conditional spaces need
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(
            seed=spec.searcher.seed, multivariate=True, group=spec.is_conditional, **_startup(spec)
        )


class GridSampler(optuna.samplers.GridSampler):
    """Optuna's GridSampler without its ``study.stop()`` after the last point.

    OptunaSearch drives the study with ask/tell, where ``stop()`` raises (Ray would log the
    error as a warning at the end of every grid sweep); Ray ends the sweep itself after
    ``num_samples`` trials, which for the grid sampler is the grid size.
    """

    def after_trial(self, study: optuna.Study, trial: Any, state: Any, values: Any) -> None:
        return None


SAMPLERS: dict[str, Callable[[SweepSpec], optuna.samplers.BaseSampler]] = {
    "tpe": _tpe,
    "random": lambda spec: optuna.samplers.RandomSampler(seed=spec.searcher.seed),
    # GP and CMA-ES draw what they cannot model (conditional parameters, a moving entropy_high,
    # for CMA-ES also categoricals) at random; describe() says which, so no warning per trial.
    "gp": lambda spec: optuna.samplers.GPSampler(
        seed=spec.searcher.seed, warn_independent_sampling=False, **_startup(spec)
    ),
    "cmaes": lambda spec: optuna.samplers.CmaEsSampler(
        seed=spec.searcher.seed, warn_independent_sampling=False, **_startup(spec)
    ),
    "grid": lambda spec: GridSampler(spec.grid(), seed=spec.searcher.seed),
}

SCHEDULERS: dict[str, Callable[[SweepSpec], TrialScheduler]] = {
    "asha": lambda spec: ASHAScheduler(
        time_attr="iteration",  # the trainer's own reported iteration, not Ray's report count
        metric=spec.metric,
        mode=spec.mode,
        max_t=spec.scheduler.max_t,
        grace_period=spec.scheduler.grace_period,
        reduction_factor=spec.scheduler.reduction_factor,
    ),
    "fifo": lambda spec: FIFOScheduler(),
}


def build_sampler(spec: SweepSpec) -> optuna.samplers.BaseSampler:
    """The Optuna sampler the spec names, seeded."""
    return SAMPLERS[spec.searcher.sampler](spec)


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _reseeded(spec: SweepSpec, trials: int) -> SweepSpec:
    """The spec with a sampler seed drawn from (its seed, trials in the study)."""
    seed = int(np.random.SeedSequence([spec.searcher.seed, trials]).generate_state(1)[0])
    return spec.model_copy(update={"searcher": spec.searcher.model_copy(update={"seed": seed})})


class PruningOptunaSearch(OptunaSearch):
    """Ray's OptunaSearch telling Optuna what the scheduler did, on the sweep's journaled study.

    Ray's own reports intermediate values at its report count and tells every trial that ends
    without error COMPLETE with its last value, so Optuna's samplers take an ASHA stop for a
    finished configuration. Here values are keyed by the trainer's ``iteration`` (ASHA's time
    attribute), and a trial ends as:

    - FAIL: it errored, or diverged (the trainable reports ``diverged: True`` and a NaN metric);
    - PRUNED: its last iteration is below ``max_t`` (the scheduler's, else trainer.iterations;
      the Parquet sink's rule), so the scheduler stopped it; samplers rank it by the step it reached;
    - COMPLETE with its last metric value otherwise.

    The study names its objective after the sweep's metric (optuna-dashboard's axes), and each Optuna
    trial carries its Ray trial id (user attribute ``ray_trial_id``; :class:`TrialFolderInStudy` adds
    the trial's folder). A proposal that repeats an earlier trial's searched values is not trained (see
    ``repeats``): it is told FAIL, marked ``repeat_of``, and the sampler is asked again. Ray pickles
    ``__dict__`` to save it; :meth:`restore` reopens the journal (see there).
    """

    def __init__(self, spec: SweepSpec) -> None:
        journal = StudyJournal(spec.folder)
        journal.start()
        super().__init__(
            space=DefineByRun(spec),
            metric=spec.metric,
            mode=spec.mode,
            sampler=build_sampler(spec),
            points_to_evaluate=[dict(point) for point in spec.searcher.points_to_evaluate] or None,
            study_name=spec.name,
            storage=journal.storage(),
        )
        with warnings.catch_warnings():  # set_metric_names is marked experimental
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            self._ot_study.set_metric_names([spec.metric])
        self.spec = spec
        self.journal = journal
        self.max_t = spec.scheduler.max_t or spec.base_config.iterations
        self._orphans: list[int] = []  # storage ids of trials Ray lost in a crash, handed to new Ray trials
        self.distinct = distinct_configurations(spec)

    def suggest(self, trial_id: str) -> dict | str | None:
        if self._orphans and trial_id not in self._ot_trials:
            self._ot_trials[trial_id] = optuna.Trial(self._ot_study, self._orphans.pop(0))
        if trial_id in self._ot_trials or "seed" in self.spec.space:  # a searched seed: repeats are the point
            suggested = super().suggest(trial_id)
        else:
            sampler = self._ot_study.sampler
            try:
                suggested = self._suggest_new(trial_id)
            finally:
                self._ot_study.sampler = sampler
        if trial_id in self._ot_trials:
            self._ot_trials[trial_id].set_user_attr(RAY_TRIAL_ID, trial_id)
        return suggested

    def _suggest_new(self, trial_id: str) -> dict | str:
        """Ask until the proposal repeats no earlier trial; after a repeat, at random: a model-based sampler
        (TPE) proposes its favourite again, deterministically."""
        for ask in range(MAX_ASKS):
            trials = self._ot_study.get_trials(deepcopy=False)
            if ask:
                seed = int(np.random.SeedSequence([self.spec.searcher.seed, len(trials)]).generate_state(1)[0])
                self._ot_study.sampler = optuna.samplers.RandomSampler(seed=seed)
            config = super().suggest(trial_id)
            ot_trial = self._ot_trials[trial_id]
            given = ot_trial.number < len(self.spec.searcher.points_to_evaluate)  # points_to_evaluate train as listed
            original = None if given else original_of(ot_trial.params, trials, ot_trial.number)
            if original is None:
                return config
            ot_trial.set_user_attr("repeat_of", original)
            ot_trial.set_user_attr("not_trained", f"an exact repeat of trial {original}'s searched values")
            self._ot_study.tell(ot_trial, state=TrialState.FAIL)
            del self._ot_trials[trial_id]
            ran = sum("repeat_of" not in trial.user_attrs for trial in trials)
            if self.distinct is not None and ran >= self.distinct:
                return self._end(ran, f"the space has {self.distinct} distinct configurations and each has run")
        return self._end(ran, f"the last {MAX_ASKS} proposals all repeated configurations that ran")

    def _end(self, trials: int, reason: str) -> str:
        print(ended_early_message(self.spec, trials, reason), flush=True)
        self.journal.publish()
        return Searcher.FINISHED

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        # A result marked done is Ray's repeat of the last one when a function trainable returns: the end's business
        if trial_id not in self._completed_trials and not result.get("done"):
            self._report(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if trial_id in self._completed_trials:
            return
        self._completed_trials.add(trial_id)
        result = result or {}
        ot_trial, iteration = self._ot_trials[trial_id], result.get("iteration")
        # Ray hands the result a scheduler stopped on to this method only, not to on_trial_result
        if iteration not in self._ot_study.get_trials(deepcopy=False)[ot_trial.number].intermediate_values:
            self._report(trial_id, result)
        if error or result.get("diverged"):
            self._ot_study.tell(ot_trial, state=TrialState.FAIL)
        elif stopped_early(result, self.max_t):
            self._ot_study.tell(ot_trial, state=TrialState.PRUNED)  # Optuna keeps its last intermediate value
        elif _finite(result.get(self.metric)):
            self._ot_study.tell(ot_trial, float(result[self.metric]))
        else:  # reached max_t without a value to rank it by
            self._ot_study.tell(ot_trial, state=TrialState.FAIL)
        self.journal.publish()

    def _report(self, trial_id: str, result: dict) -> None:
        value = result.get(self.metric)
        if _finite(value) and result.get("iteration") is not None:
            self._ot_trials[trial_id].report(float(value), int(result["iteration"]))

    def save(self, checkpoint_path: str) -> None:
        super().save(checkpoint_path)
        self.journal.publish()

    def restore(self, checkpoint_path: str) -> None:
        """Ray's saved searcher, on this machine's journal, unable to redraw a past proposal.

        The journal is written at once, Ray's state every few seconds, so after a crash the journal
        may hold trials asked after Ray's last save (Ray lost them: they are handed to the next new
        Ray trials, so nothing is proposed twice) and ends Ray did not see (not told again when Ray
        reruns those trials). The saved sampler would redraw the lost trials' proposals, so the
        sampler is rebuilt, seeded from (the spec's seed, trials in the study).
        """
        super().restore(checkpoint_path)
        self.journal.fetch()
        self._storage = self.journal.storage()
        self._ot_study = optuna.load_study(study_name=self._study_name, storage=self._storage,
                                           pruner=optuna.pruners.NopPruner())
        trials = self._ot_study.get_trials(deepcopy=False)
        self._sampler = self._ot_study.sampler = build_sampler(_reseeded(self.spec, len(trials)))
        self._ot_trials = {ray_id: optuna.Trial(self._ot_study, old._trial_id) for ray_id, old in self._ot_trials.items()}
        numbers = {ray_id: trial.number for ray_id, trial in self._ot_trials.items()}
        self._completed_trials |= {ray_id for ray_id, number in numbers.items() if trials[number].state.is_finished()}
        known = set(numbers.values())
        self._orphans = [t._trial_id for t in trials if t.state == TrialState.RUNNING and t.number not in known]


class TrialFolderInStudy(Callback):
    """Writes each Ray trial's folder (``<sweep>/<trial folder>``, its checkpoints, TensorBoard run and Ray
    files) into its Optuna trial's user attributes as ``trial_folder``, when the trial starts.

    The searcher knows the Optuna trial but not the folder (Ray names it after ``suggest``); this finds the
    Optuna trial by its ``ray_trial_id`` in the sweep's journal.
    """

    def __init__(self, spec: SweepSpec) -> None:
        self.folder, self.study_name = spec.folder.rstrip("/"), spec.name

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        storage = StudyJournal(self.folder).storage()
        study_id = storage.get_study_id_from_name(self.study_name)
        for frozen in storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,)):
            if frozen.user_attrs.get(RAY_TRIAL_ID) == trial.trial_id:
                storage.set_trial_user_attr(frozen._trial_id, TRIAL_FOLDER, f"{self.folder}/{trial.storage.trial_dir_name}")


def build_search_alg(spec: SweepSpec) -> Searcher:
    """ConcurrencyLimiter(PruningOptunaSearch(spec)): a new study named after the sweep, in its journal.

    ``points_to_evaluate`` are tried first, in order. Ray saves and restores the searcher with
    the sweep; the study itself lives in the journal, where optuna-dashboard reads it.
    """
    return ConcurrencyLimiter(PruningOptunaSearch(spec), max_concurrent=spec.max_concurrent)


def build_scheduler(spec: SweepSpec) -> TrialScheduler:
    """ASHA (time attribute: the trainer's ``iteration``) or FIFO, as the spec names."""
    return SCHEDULERS[spec.scheduler.type](spec)
