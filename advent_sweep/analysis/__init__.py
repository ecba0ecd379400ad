"""Analysis of sweep results from their Parquet files alone: best config, ablations, importances, label-free validators, plots, report.

Nothing here imports Ray or torch (a laptop with the Parquet files is enough), and the
names are loaded lazily so ``advent-sweep best`` does not pay for matplotlib or Optuna.
"""

from importlib import import_module
from typing import Any

_EXPORTS = {
    "SweepResults": "results",
    "load_results": "results",
    "BestChoice": "best",
    "RULES": "best",
    "select_best": "best",
    "export_best": "best",
    "format_top": "best",
    "METHOD_NAMES": "ablation",
    "Marginal": "ablation",
    "method_table": "ablation",
    "paper_style": "ablation",
    "marginal_effects": "ablation",
    "Importances": "importance",
    "parameter_importance": "importance",
    "LabelFreeSelection": "label_free",
    "label_free_selection": "label_free",
    "weighted_spearman": "label_free",
    "spearman": "label_free",
    "analyze": "report",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(f"advent_sweep.analysis.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'advent_sweep.analysis' has no attribute {name!r}")
