"""Real datasets: what list files select, the sizes items come in, and that DomainData pickles."""

import pickle

import numpy as np
import torch

from advent_sweep.data import build_domain_data
from advent_sweep.data.gta5 import gta5_dataset
from advent_sweep.data.synthia import synthia_dataset
from tests.data.trees import gta5_cityscapes, gta5_tree, street_ids, synthia_tree


def test_list_file_selects_exactly_the_listed_images(tmp_path):
    names = gta5_tree(tmp_path, [street_ids(seed) for seed in range(5)])
    (tmp_path / "all.txt").write_text(f"{names[3]}\n\n  {names[1]}  \n")
    dataset = gta5_dataset(tmp_path, str(tmp_path / "all.txt"), 19, size=(8, 4))
    assert [dataset.image_path(i).name for i in range(len(dataset))] == [names[3], names[1]]
    labels = [dataset.label_path(i) for i in range(len(dataset))]
    assert labels == [tmp_path / "labels" / names[3], tmp_path / "labels" / names[1]]


def test_cityscapes_list_names_images_under_the_split(tmp_path):
    (tmp_path / "val.txt").write_text("lindau/lindau_000001_000019_leftImg8bit.png\n")
    data = build_domain_data(gta5_cityscapes(tmp_path, target_val_list=str(tmp_path / "val.txt")))
    assert len(data.target_val) == 1 and len(data.target) == 2
    assert data.target_val.label_path(0).name == "lindau_000001_000019_gtFine_labelIds.png"


def test_items_are_resized_and_eval_labels_keep_full_resolution(tmp_path):
    config = gta5_cityscapes(tmp_path, source_size=(12, 6), target_size=(10, 4), eval_size=(8, 2))
    data = build_domain_data(config)
    image, label = data.source[0]
    assert image.shape == (3, 6, 12) and label.shape == (6, 12)
    image, label = data.target[0]
    assert image.shape == (3, 4, 10) and label.shape == (4, 10)
    image, label = data.target_val[0]
    assert image.shape == (3, 2, 8)
    assert label.shape == (8, 16)  # the label file's own size
    assert image.dtype == torch.float32 and 0 <= image.min() and image.max() <= 1
    assert label.dtype == torch.int64


def test_label_resize_is_nearest(tmp_path):
    ids = np.full((8, 16), 7)
    ids[:, 8:] = 26  # left half road, right half car
    gta5_tree(tmp_path, [ids])
    _, label = gta5_dataset(tmp_path, None, 19, size=(4, 2))[0]
    assert label.tolist() == [[0, 0, 13, 13], [0, 0, 13, 13]]


def test_synthia_item_is_resized(tmp_path):
    synthia_tree(tmp_path, [np.full((8, 16), 3, dtype=np.uint16)])
    image, label = synthia_dataset(tmp_path, None, 16, size=(8, 4))[0]
    assert image.shape == (3, 4, 8) and label.shape == (4, 8) and (label == 0).all()


def test_real_domain_data_pickles_and_loads_the_same(tmp_path):
    data = build_domain_data(gta5_cityscapes(tmp_path))
    copy = pickle.loads(pickle.dumps(data))
    assert copy.class_names == data.class_names and copy.num_classes == 19
    for original, loaded in zip(data.target_val[1], copy.target_val[1]):
        assert torch.equal(original, loaded)
