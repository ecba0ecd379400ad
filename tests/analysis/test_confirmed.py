"""The confirm summary's 95% interval: Student's t for any number of seeds."""

import math

import pandas as pd
import pytest

from advent_sweep.analysis.confirmed import interval_95


@pytest.mark.parametrize(("seeds", "t_975"), [
    (2, 12.7062047),    # 1 degree of freedom (printed tables: 12.706)
    (31, 2.0422725),    # 30: the last row of the usual printed table
    (100, 1.9842169),   # 99: still ~1.2% wider than the normal's 1.96
])
def test_interval_95_is_students_t_times_the_standard_error(seeds: int, t_975: float) -> None:
    values = pd.Series([float(i % 5) for i in range(seeds)])
    expected = t_975 * values.std() / math.sqrt(seeds)
    assert interval_95(values) == pytest.approx(expected, rel=1e-6)


def test_interval_95_of_one_seed_is_nan() -> None:
    assert math.isnan(interval_95(pd.Series([42.0])))
