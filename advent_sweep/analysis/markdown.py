"""Tables as GitHub Markdown and numbers as their cells: shared by the report, confirm's summary and the exports."""

from __future__ import annotations

import pandas as pd


def markdown(frame: pd.DataFrame) -> str:
    """A GitHub Markdown table (pandas' own needs the tabulate package)."""
    cells = [[_cell(value) for value in row] for row in frame.itertuples(index=False)]
    lines = [list(map(str, frame.columns)), ["---"] * len(frame.columns), *cells]
    return "\n".join("| " + " | ".join(line) + " |" for line in lines) + "\n"


def _cell(value: object) -> str:
    if isinstance(value, float):
        return number(value)
    return "–" if value is None or value is pd.NA or value != value else str(value).replace("|", "\\|")


def number(value: float) -> str:
    """Four significant digits; a dash for a missing value (NaN)."""
    return "–" if value != value else f"{value:.4g}"
