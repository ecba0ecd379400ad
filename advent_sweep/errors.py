"""The errors a user can cause, kept apart from failures of ours.

The CLI maps :class:`InputError` (and its subclasses) to exit code 2 and any other
exception to exit code 1, so every message here must name the field, file or value
at fault and what is allowed.
"""


class InputError(ValueError):
    """Bad input from the user: a config, a space.yaml, a results folder, a path."""


class ConfigError(InputError):
    """A config or space.yaml field is missing, unknown, of the wrong type or out of range."""


class DataError(InputError):
    """A dataset folder, list file, image or label is missing, unreadable or invalid."""


class CheckpointError(InputError):
    """A checkpoint is missing, unreadable, or not one advent-sweep wrote."""


class ResultsError(InputError):
    """A results folder holds no readable sweep, or a metric or column it lacks was asked for."""


class TrainingDiverged(FloatingPointError):
    """A loss became NaN or infinite; the sweep marks such a trial 'diverged'."""

    def __init__(self, iteration: int, losses: dict[str, float]) -> None:
        bad = ", ".join(f"{k}={v}" for k, v in losses.items() if v != v or v in (float("inf"), float("-inf")))
        super().__init__(f"training diverged at iteration {iteration}: {bad}")
        self.iteration = iteration
        self.losses = losses
