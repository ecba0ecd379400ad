"""The source warm-up: one cached source-only start, keyed by what shapes it, the same whether cached or not."""

import pytest
import torch

from advent_sweep.advent import warmup
from advent_sweep.advent.run import build_trainer
from advent_sweep.data import DomainData
from advent_sweep.errors import ConfigError
from advent_sweep.validation import validate
from advent_sweep.advent.config import TrainConfig
from tests.advent.conftest import NUM_CLASSES

WARMUP = {"iterations": 3, "lr": 1e-2, "seed": 0}


@pytest.fixture
def tiny_data(tiny_domains):
    source, target = tiny_domains
    return DomainData(source, target, target, tuple("abcd"), NUM_CLASSES, (0.25,) * NUM_CLASSES)


@pytest.fixture
def warm_config(tiny_config):
    return lambda **overrides: tiny_config(**{"source_warmup": WARMUP, "threads": 1, **overrides})


def test_the_warmup_is_source_only_with_its_own_schedule_and_the_runs_segmenter(warm_config):
    config = warm_config(method="minent", lambda_ent_main=0.5, lr=3e-3, seed=7, batch_size_source=3)
    warm = warmup.warmup_config(config)
    assert (warm.method, warm.iterations, warm.poly_horizon, warm.lr, warm.seed) == ("source_only", 3, 3, 1e-2, 0)
    assert (warm.backbone, warm.batch_size_source, warm.threads, warm.source_warmup) == ("resnet18", 3, 1, None)
    assert warm.lambda_ent_main == TrainConfig.model_fields["lambda_ent_main"].default


def test_cache_key_ignores_the_adaptation_settings_and_follows_what_shapes_the_warmup(warm_config, tmp_path):
    path = warmup.warmup_path(warm_config(), tmp_path)
    same = [warm_config(method="minent", lambda_ent_main=0.1), warm_config(seed=5, lr=1e-3), warm_config(class_prior_mu=0.5)]
    assert all(warmup.warmup_path(c, tmp_path) == path for c in same)
    other = [warm_config(threads=2), warm_config(batch_size_source=3), warm_config(backbone="mobilenet_v3"),
             warm_config(source_warmup={**WARMUP, "lr": 5e-3}), warm_config(source_warmup={**WARMUP, "iterations": 4}),
             warm_config(data={"synthetic": {"target_style": {"blur": 0.0}}})]  # the oracle's warm-up sees target images
    paths = {warmup.warmup_path(c, tmp_path) for c in other}
    assert len(paths) == len(other) and path not in paths


def test_a_cached_warmup_is_read_back_not_trained_again(warm_config, tiny_data, tmp_path, monkeypatch):
    first = warmup.load_or_train_warmup(warm_config(), tiny_data, tmp_path)
    assert not first["reused"] and len(first["loss_seg_src_main"]) == 3
    (cached,) = tmp_path.glob("source_warmup-resnet18-*.pt")
    written = cached.stat().st_mtime_ns

    def no_training(*args):
        raise AssertionError("the cached warm-up was trained again")

    monkeypatch.setattr(warmup, "train_warmup", no_training)
    second = warmup.load_or_train_warmup(warm_config(method="minent", seed=3), tiny_data, tmp_path)
    assert second["reused"] and cached.stat().st_mtime_ns == written
    assert all(torch.equal(first["segmenter"][k], second["segmenter"][k]) for k in first["segmenter"])


def test_the_warmup_is_deterministic_and_a_run_is_the_same_whether_it_was_cached(warm_config, tiny_data, tmp_path):
    config = warm_config(method="advent")
    fresh = build_trainer(config, tiny_data, tmp_path)  # trains the warm-up (and caches it)
    cached = build_trainer(config, tiny_data, tmp_path)  # reads it back
    uncached = build_trainer(config, tiny_data, None)  # trains it again, in memory
    trained = warmup.load_or_train_warmup(config, tiny_data, tmp_path)["segmenter"]
    for trainer in (fresh, cached, uncached):
        state = trainer.segmenter.state_dict()
        assert all(torch.equal(state[k], trained[k]) for k in trained)
    steps = [[trainer.step() for _ in range(2)] for trainer in (fresh, cached, uncached)]
    assert steps[0] == steps[1] == steps[2]


def test_a_run_without_warmup_starts_elsewhere(warm_config, tiny_config, tiny_data):
    warm = build_trainer(warm_config(), tiny_data).segmenter.state_dict()
    cold = build_trainer(tiny_config(threads=1), tiny_data).segmenter.state_dict()
    assert not all(torch.equal(warm[k], cold[k]) for k in warm)


@pytest.mark.parametrize(
    "source_warmup, named",
    [({"iterations": 0, "lr": 1e-2}, "source_warmup.iterations"), ({"iterations": 5}, "source_warmup.lr"),
     ({"iterations": 5, "lr": 1e-2, "steps": 3}, "source_warmup.steps"), ("yes", "source_warmup")],
)
def test_bad_warmup_settings_name_the_field(source_warmup, named):
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        validate(TrainConfig, {"backbone": "resnet18", "source_warmup": source_warmup}, "run.yaml")


def test_a_resumed_run_takes_its_state_and_neither_reads_nor_trains_a_warmup(warm_config, tiny_data, monkeypatch):
    config = warm_config(method="minent")
    trainer = build_trainer(config, tiny_data)
    trainer.step()
    state = trainer.state_dict()

    def no_warmup(*args):
        raise AssertionError("a resumed run trained its warm-up")

    monkeypatch.setattr(warmup, "train_warmup", no_warmup)
    resumed = build_trainer(config, tiny_data, None, state)
    assert resumed.iteration == 1
    assert resumed.step() == trainer.step()
