"""A sweep's trackers (the space.yaml ``tracking:`` section): one tracker run per trial, made in the trial's worker.

Each trial's run is named after the Ray trial (``train_advent_trial_<id>_<n>``), holds the trial's
TrainConfig as parameters, gets metrics at trainer iterations, and sits in an MLflow experiment or a
W&B group named after the sweep. MLflow's default store is a SQLite database in the sweep folder
(MLflow 3 refuses its plain-folder store); the driver creates it before any trial starts, so that
concurrent trials never race to create its tables.
"""

from __future__ import annotations

import os
from typing import Any

from ray.tune import Callback

from advent_sweep.advent.run_logger import RunLogger
from advent_sweep.advent.trackers import MlflowLogger, WandbLogger
from advent_sweep.sweep.spec_models import MlflowTracking, TrackingSpec

MLFLOW_DATABASE = "mlflow.db"


def mlflow_uri(mlflow: MlflowTracking, sweep_folder: str) -> str:
    """The tracking URI given, else the SQLite database in the (local) sweep folder."""
    return mlflow.tracking_uri or f"sqlite:///{os.path.join(sweep_folder, MLFLOW_DATABASE)}"


def trial_trackers(tracking: TrackingSpec, sweep_name: str, sweep_folder: str, trial_name: str, trial_id: str,
                   trial_folder: str | None, params: dict[str, Any]) -> list[RunLogger]:
    """The loggers of the trackers ``tracking`` names, for one trial (``trial_folder``: local, or None)."""
    loggers: list[RunLogger] = []
    if tracking.mlflow is not None:
        loggers.append(MlflowLogger(mlflow_uri(tracking.mlflow, sweep_folder), tracking.mlflow.experiment or sweep_name,
                                    trial_name, params))
    if tracking.wandb is not None:
        wandb = tracking.wandb
        loggers.append(WandbLogger(wandb.project, wandb.entity, wandb.mode, sweep_name, trial_name, trial_id, params,
                                   wandb.dir or trial_folder))
    return loggers


class MlflowExperimentReady(Callback):
    """Creates the sweep's MLflow experiment (and a default SQLite store's tables) in the driver, before any trial."""

    def __init__(self, mlflow: MlflowTracking, sweep_name: str, sweep_folder: str) -> None:
        self.uri, self.experiment = mlflow_uri(mlflow, sweep_folder), mlflow.experiment or sweep_name

    def setup(self, **info: Any) -> None:
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=self.uri)
        if client.get_experiment_by_name(self.experiment) is None:
            client.create_experiment(self.experiment)
