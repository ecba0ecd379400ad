"""advent-sweep: tune and ablate ADVENT with Ray Tune, Optuna and ASHA; results in Parquet.

The few names users touch are exported lazily, so ``import advent_sweep.analysis``
loads neither torch nor Ray.
"""

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "TrainConfig": "advent_sweep.advent.config",
    "Trainer": "advent_sweep.advent.trainer",
    "SweepSpec": "advent_sweep.sweep.spec",
    "load_results": "advent_sweep.analysis.results",
}
__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'advent_sweep' has no attribute {name!r}")
