"""p_s: a normalised hand-countable histogram, cached on disk and read back without recounting."""

import json

import numpy as np
import pytest

from advent_sweep.data import build_domain_data, cached_source_class_prior, source_class_prior
from advent_sweep.data import priors
from advent_sweep.data.gta5 import gta5_dataset
from advent_sweep.errors import DataError
from tests.data.trees import gta5_cityscapes, gta5_tree


@pytest.fixture
def gta5(tmp_path):
    # road (7) ×6, car (26) ×3, building (11) ×2 → 11 counted; unlabeled (0), ego vehicle (1), 255 are not
    labels = [np.array([[7, 7, 7, 26], [0, 11, 255, 26]]), np.array([[7, 7, 26, 11], [0, 1, 7, 255]])]
    gta5_tree(tmp_path / "gta5", labels)
    return gta5_dataset(tmp_path / "gta5", None, 19, size=(4, 2))


def test_prior_is_the_normalised_label_histogram(gta5):
    prior = source_class_prior(gta5, 19)
    expected = np.zeros(19)
    expected[[0, 2, 13]] = [6, 2, 3]
    assert len(prior) == 19
    assert sum(prior) == pytest.approx(1.0)
    assert prior == pytest.approx(tuple(expected / 11))


def test_cached_prior_is_computed_once_and_read_back(gta5, tmp_path, monkeypatch):
    calls = []

    def counting(dataset, num_classes):
        calls.append(dataset.name)
        return source_class_prior(dataset, num_classes)

    monkeypatch.setattr(priors, "source_class_prior", counting)
    first = cached_source_class_prior(gta5, 19, tmp_path / "cache")
    [cache_file] = (tmp_path / "cache").glob("class_prior-gta5-*.json")
    assert json.loads(cache_file.read_text())["class_prior"] == list(first)
    second = cached_source_class_prior(gta5, 19, tmp_path / "cache")
    assert calls == ["gta5"] and second == first


def test_cache_key_changes_with_the_file_list(gta5, tmp_path):
    (tmp_path / "one.txt").write_text("00001.png\n")
    subset = gta5_dataset(gta5.root, str(tmp_path / "one.txt"), 19, size=(4, 2))
    cache = tmp_path / "cache"
    assert priors.prior_cache_path(subset, 19, cache) != priors.prior_cache_path(gta5, 19, cache)
    assert cached_source_class_prior(subset, 19, cache) != cached_source_class_prior(gta5, 19, cache)
    assert len(list(cache.glob("*.json"))) == 2


def test_build_domain_data_reuses_the_cache(tmp_path, monkeypatch):
    config = gta5_cityscapes(tmp_path)
    first = build_domain_data(config, cache_dir=tmp_path / "cache")
    monkeypatch.setattr(priors, "source_class_prior", lambda *args: pytest.fail("recomputed p_s"))
    second = build_domain_data(config, cache_dir=tmp_path / "cache")
    assert second.class_prior == first.class_prior and sum(first.class_prior) == pytest.approx(1.0)


def test_source_without_a_scored_pixel_is_an_error(tmp_path):
    gta5_tree(tmp_path / "gta5", [np.zeros((2, 4), dtype=np.uint8)])
    dataset = gta5_dataset(tmp_path / "gta5", None, 19, size=(4, 2))
    with pytest.raises(DataError, match=str(tmp_path / "gta5")):
        source_class_prior(dataset, 19)


def test_cache_on_a_storage_uri_is_reused(gta5, tmp_path, monkeypatch):
    cache = f"file://{tmp_path}/storage/.cache"  # the same path as s3://bucket/sweeps/.cache takes
    first = cached_source_class_prior(gta5, 19, cache)
    assert len(list((tmp_path / "storage" / ".cache").glob("class_prior-gta5-*.json"))) == 1
    monkeypatch.setattr(priors, "source_class_prior", lambda *args: pytest.fail("recomputed p_s"))
    assert cached_source_class_prior(gta5, 19, cache) == first
