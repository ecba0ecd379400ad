"""The shipped space files: each validates, and ablation.yaml trains as the calibrated quickstart does."""

from pathlib import Path

import pytest
import yaml

from advent_sweep.sweep.spec import SweepSpec

SPACES = Path(__file__).resolve().parents[1] / "search_spaces"
# What ablation.yaml fixes that quickstart.yaml searches (λ at the paper's value), or searches itself (seed).
ABLATION_OWN = {"lambda_ent_main", "lambda_adv_main", "seed"}


@pytest.mark.parametrize("path", sorted(SPACES.glob("*.yaml")), ids=lambda path: path.name)
def test_every_shipped_space_validates(path):
    spec = SweepSpec.from_yaml(path)
    assert spec.name == path.stem


def test_ablation_trains_on_the_quickstarts_data_and_calibration():
    quickstart, ablation = (yaml.safe_load((SPACES / name).read_text()) for name in ("quickstart.yaml", "ablation.yaml"))

    assert ablation["data"] == quickstart["data"]
    shared = {key: value for key, value in ablation["trainer"].items() if key not in ABLATION_OWN}
    assert shared == {key: value for key, value in quickstart["trainer"].items() if key not in ABLATION_OWN}
    resolved = SweepSpec.from_yaml(SPACES / "ablation.yaml").train_config({"method": "minent"})
    assert (resolved.lr, resolved.bn_momentum, resolved.source_warmup.iterations) == (2.5e-4, 0.01, 240)
