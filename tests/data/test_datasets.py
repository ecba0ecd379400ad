"""Real datasets: what list files select, the sizes items come in, held-out source, and that DomainData pickles."""

import pickle

import numpy as np
import pytest
import torch

from advent_sweep.data import DataConfig, build_domain_data
from advent_sweep.data.gta5 import gta5_dataset
from advent_sweep.data.synthia import synthia_dataset
from advent_sweep.errors import DataError
from tests.data.trees import cityscapes_tree, gta5_cityscapes, gta5_tree, street_ids, synthia_tree, write_ids


def held_out(tmp_path, train, val, **overrides):
    """gta5_cityscapes with source_list ``train`` (None: no list) and source_val_list ``val``."""
    if train is not None:
        (tmp_path / "train.txt").write_text("".join(f"{name}\n" for name in train))
    (tmp_path / "val.txt").write_text("".join(f"{name}\n" for name in val))
    source_list = None if train is None else str(tmp_path / "train.txt")
    return gta5_cityscapes(tmp_path, source_list=source_list, source_val_list=str(tmp_path / "val.txt"), **overrides)


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


def test_real_domain_data_with_source_val_pickles_and_loads_the_same(tmp_path):
    data = build_domain_data(held_out(tmp_path, ["00001.png"], ["00002.png"]))
    copy = pickle.loads(pickle.dumps(data))
    for original, loaded in zip(data.source_val[0], copy.source_val[0]):
        assert torch.equal(original, loaded)


def test_source_val_list_holds_exactly_the_listed_images_at_source_size(tmp_path):
    data = build_domain_data(held_out(tmp_path, ["00001.png"], ["00003.png", "00002.png"], source_size=(12, 6)))
    assert [data.source_val.image_path(i).name for i in range(len(data.source_val))] == ["00003.png", "00002.png"]
    assert [data.source.image_path(i).name for i in range(len(data.source))] == ["00001.png"]
    image, label = data.source_val[1]
    assert image.shape == (3, 6, 12) and label.shape == (6, 12)
    reference = gta5_dataset(tmp_path / "gta5", str(tmp_path / "val.txt"), 19, size=(12, 6))
    assert torch.equal(label, reference[1][1])


def test_without_source_val_list_source_val_is_none(tmp_path):
    assert build_domain_data(gta5_cityscapes(tmp_path)).source_val is None


def test_source_val_sharing_images_with_source_list_is_refused(tmp_path):
    config = held_out(tmp_path, ["00001.png", "00002.png"], ["00003.png", "00002.png"])
    with pytest.raises(DataError) as caught:
        build_domain_data(config)
    assert str(caught.value) == (
        f"{tmp_path / 'val.txt'}: 1 of its 2 held-out images are also in source_list {tmp_path / 'train.txt'}, "
        "e.g. 00002.png; give a source_list without them"
    )


def test_source_val_without_source_list_is_refused(tmp_path):
    with pytest.raises(DataError) as caught:
        build_domain_data(held_out(tmp_path, None, ["00002.png", "00003.png"]))
    images = (tmp_path / "gta5").resolve() / "images"
    assert str(caught.value) == (
        f"{tmp_path / 'val.txt'}: 2 of its 2 held-out images are also in the training source (every image under "
        f"{images}, as no source_list is given), e.g. 00002.png; give a source_list without them"
    )


def test_source_val_entry_without_its_file_is_refused(tmp_path):
    config = held_out(tmp_path, ["00001.png"], ["00002.png", "00009.png"])
    with pytest.raises(DataError) as caught:
        build_domain_data(config)
    missing = (tmp_path / "gta5").resolve() / "images" / "00009.png"
    assert str(caught.value) == f"{tmp_path / 'val.txt'}: line 2: {missing} not found"


def test_source_val_labels_are_decoded_at_validation(tmp_path):
    config = held_out(tmp_path, ["00001.png"], ["00003.png"])
    path = tmp_path / "gta5" / "labels" / "00003.png"  # not trained on, so p_s never reads it
    write_ids(path, np.array([[7, 40], [26, 26]]), palette=True)
    with pytest.raises(DataError) as caught:
        build_domain_data(config)
    assert str(path) in str(caught.value) and "label ids 40 are not Cityscapes label ids" in str(caught.value)


def test_synthia_source_val_list(tmp_path):
    names = synthia_tree(tmp_path / "synthia", [np.full((8, 16), index + 1, dtype=np.uint16) for index in range(3)])
    cityscapes_tree(tmp_path / "cityscapes", "train", [street_ids(10)])
    cityscapes_tree(tmp_path / "cityscapes", "val", [street_ids(20)], city="lindau")
    (tmp_path / "train.txt").write_text(f"{names[0]}\n{names[1]}\n")
    (tmp_path / "val.txt").write_text(f"{names[2]}\n")
    config = DataConfig(source="synthia", target="cityscapes", source_root=str(tmp_path / "synthia"),
                        target_root=str(tmp_path / "cityscapes"), source_list=str(tmp_path / "train.txt"),
                        source_val_list=str(tmp_path / "val.txt"), source_size=(8, 4), target_size=(8, 4),
                        eval_size=(8, 4))  # fmt: skip
    data = build_domain_data(config)
    assert (len(data.source), len(data.source_val)) == (2, 1)
    assert data.source_val.image_path(0) == tmp_path / "synthia" / "RGB" / names[2]
    image, label = data.source_val[0]
    assert image.shape == (3, 4, 8) and label.shape == (4, 8) and (label == 0).all()  # id 3: road
