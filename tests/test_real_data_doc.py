"""docs/real-data.md states facts of the code and the shipped spaces: its examples and figures follow them."""

import math
import re
from pathlib import Path

import yaml

from advent_sweep.data import DataConfig
from advent_sweep.model.backbones import BACKBONES

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "real-data.md").read_text()


def yaml_blocks(text: str) -> list[dict]:
    return [yaml.safe_load(block) for block in re.findall(r"```yaml\n(.*?)```", text, re.DOTALL)]


def test_each_data_section_in_the_doc_validates():
    sections = [block["data"] for block in yaml_blocks(DOC) if "data" in block]
    configs = [DataConfig.model_validate(section) for section in sections]
    assert [(c.source, c.resolved_protocol) for c in configs] == [("gta5", 19), ("synthia", 16)]
    gta5 = configs[0]
    assert (gta5.source_size, gta5.target_size, gta5.eval_size) == ((1280, 720), (1024, 512), (1024, 512))
    defaults = DataConfig()  # the doc says the defaults are the official sizes
    assert (defaults.source_size, defaults.target_size, defaults.eval_size) == ((1280, 720), (1024, 512), (1024, 512))


def test_the_asha_arithmetic_follows_the_gta5_space_and_rays_rungs():
    from ray.tune.schedulers.async_hyperband import _Bracket

    space = yaml.safe_load((ROOT / "search_spaces" / "gta5_cityscapes_resnet101.yaml").read_text())
    asha, trials = space["scheduler"], space["num_samples"]
    eta, end = asha["reduction_factor"], asha["max_t"]
    rungs = sorted(milestone for milestone, _ in _Bracket(asha["grace_period"], end, eta, 0)._rungs)
    assert rungs == [10_000, 30_000, 90_000] and "**10k, 30k and 90k**" in DOC
    reach = [math.floor(trials / eta**k) for k in range(len(rungs) + 1)]  # perfect ranking: to 10k, 30k, 90k, 120k
    assert reach == [32, 10, 3, 1]
    stops = [*rungs, end]
    iterations = sum((reach[i] - (reach[i + 1] if i + 1 < len(reach) else 0)) * stops[i] for i in range(len(stops)))
    assert iterations == 730_000 and f"**{iterations:,}**" in DOC
    assert f"{trials * end:,}" in DOC and f"≈ {round(iterations * 0.5 / 3600)} GPU-hours" in DOC
    assert f"{iterations // space['trainer']['eval_interval']} evaluations" in DOC


def test_the_torchvision_table_names_every_weight_and_its_file():
    for backbone, build in BACKBONES.items():
        for weights in build().weights_enum:
            assert f"`{backbone}`" in DOC
            assert weights.url.rsplit("/", 1)[1] in DOC, weights
            assert weights.name in DOC, weights
