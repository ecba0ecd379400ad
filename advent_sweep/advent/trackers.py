"""Experiment trackers as RunLogger backends: MLflow and Weights & Biases, each an optional extra.

Ray's tracker callbacks see only reports (one per evaluation interval), so the trackers are loggers of
the Trainer instead (advent/run_logger.py): they get every loss at its trainer iteration, the panels and
each evaluation, as TensorBoard does. Neither library is a dependency: ``pip install 'advent-sweep[mlflow]'``
or ``'advent-sweep[wandb]'``; a space.yaml naming one that is not installed fails validation, naming the extra.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

TRACKER_MODULES = {"mlflow": "mlflow", "wandb": "wandb"}
# MLflow 3 refuses its plain-folder store (file:, a path): a server or a database.
MLFLOW_URI_SCHEMES = ("http", "https", "sqlite", "postgresql", "mysql", "mssql", "databricks")


def check_installed(tracker: str) -> None:
    """A ValueError naming the extra to install when ``tracker``'s library is missing."""
    if importlib.util.find_spec(TRACKER_MODULES[tracker]) is None:
        raise ValueError(f"{tracker} is not installed; install it with pip install 'advent-sweep[{tracker}]'")


def check_tracking_uri(uri: str) -> str:
    """An MLflow tracking URI MLflow 3 stores runs under: a server or a database."""
    scheme, separator, rest = uri.partition(":")
    if not separator or scheme.lower() not in MLFLOW_URI_SCHEMES or not rest.strip("/"):
        raise ValueError(f"{uri!r} is not an MLflow tracking URI; allowed: a URI with scheme {', '.join(MLFLOW_URI_SCHEMES)} "
                         "(e.g. http://127.0.0.1:5000, sqlite:////abs/path/mlflow.db); MLflow 3 refuses a plain folder")
    return uri


def flat_params(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested config as one level of dotted keys (``data.synthetic.seed``), as trackers show parameters."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, Mapping):
            flat.update(flat_params(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


class MlflowLogger:
    """One MLflow run named ``run_name`` in ``experiment``: parameters once, metrics and panels at trainer iterations.

    A resumed trial or run continues the run of that name (found by its name in the experiment).
    Panels are logged with ``log_image`` (key: the tag, step: the iteration), shown in the run's Artifacts.
    """

    def __init__(self, tracking_uri: str, experiment: str, run_name: str, params: Mapping[str, Any]) -> None:
        from mlflow import MlflowClient
        from mlflow.entities import Param
        from mlflow.exceptions import MlflowException

        self.client = MlflowClient(tracking_uri=tracking_uri)
        found = self.client.get_experiment_by_name(experiment)
        if found is None:
            try:
                experiment_id = self.client.create_experiment(experiment)
            except MlflowException:  # another trial created it meanwhile
                experiment_id = self.client.get_experiment_by_name(experiment).experiment_id
        else:
            experiment_id = found.experiment_id
        runs = self.client.search_runs([experiment_id], filter_string=f"attributes.run_name = '{run_name}'", max_results=1)
        if runs:
            self.run_id = runs[0].info.run_id
            self.client.update_run(self.run_id, status="RUNNING")
        else:
            self.run_id = self.client.create_run(experiment_id, run_name=run_name).info.run_id
            params = [Param(key, str(value)) for key, value in flat_params(params).items()]
            for start in range(0, len(params), 100):  # MLflow takes at most 100 parameters per batch
                self.client.log_batch(self.run_id, params=params[start:start + 100])

    def scalars(self, step: int, values: Mapping[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(tag, float(value), now, step) for tag, value in values.items()])

    def images(self, step: int, images: Mapping[str, np.ndarray]) -> None:
        for tag, image in images.items():
            self.client.log_image(self.run_id, image, key=tag.replace("/", "."), step=step)

    def flush(self) -> None:
        """Every call above is already stored."""

    def close(self) -> None:
        self.client.set_terminated(self.run_id)


class WandbLogger:
    """One W&B run (id ``run_id``, shown as ``run_name`` in ``group``); a resumed trial continues the same run."""

    def __init__(self, project: str, entity: str | None, mode: str, group: str, run_name: str, run_id: str,
                 params: Mapping[str, Any], folder: str | None) -> None:
        import wandb

        self.wandb = wandb
        self.run = wandb.init(project=project, entity=entity, mode=mode, group=group, name=run_name, id=run_id,
                              resume="allow", config=flat_params(params), dir=folder, reinit="create_new")

    def scalars(self, step: int, values: Mapping[str, float]) -> None:
        self.run.log(dict(values), step=step)

    def images(self, step: int, images: Mapping[str, np.ndarray]) -> None:
        self.run.log({tag: self.wandb.Image(image) for tag, image in images.items()}, step=step)

    def flush(self) -> None:
        """W&B sends (or, offline, writes) in the background as it goes."""

    def close(self) -> None:
        self.run.finish()
