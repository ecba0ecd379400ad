"""Label tables: raw ids in real label files come out as the protocol's class indices."""

import numpy as np
import pytest
from PIL import Image

from advent_sweep.data.cityscapes import cityscapes_dataset
from advent_sweep.data.gta5 import gta5_dataset
from advent_sweep.data.labels import CITYSCAPES_CLASS_NAMES, CITYSCAPES_IDS, protocol_class_names
from advent_sweep.data.synthia import synthia_dataset
from tests.data.trees import cityscapes_tree, gta5_tree, synthia_tree


def test_cityscapes_ids_map_to_train_ids(tmp_path):
    ids = np.array([[7, 26, 0, 33], [8, 11, 255, 1]])
    cityscapes_tree(tmp_path, "val", [ids])
    dataset = cityscapes_dataset(tmp_path, "val", None, 19, image_size=(4, 2), label_size=None)
    assert dataset.load_label(0).tolist() == [[0, 13, 255, 18], [1, 2, 255, 255]]
    _, label = dataset[0]
    assert label.tolist() == [[0, 13, 255, 18], [1, 2, 255, 255]]


def test_gta5_palette_labels_map_like_cityscapes(tmp_path):
    every_id = np.arange(34).reshape(2, 17)
    gta5_tree(tmp_path, [every_id])
    assert Image.open(tmp_path / "labels" / "00001.png").mode == "P"
    label = gta5_dataset(tmp_path, None, 19, size=(17, 2)).load_label(0).ravel()
    expected = [CITYSCAPES_IDS.to_train_id.get(label_id, 255) for label_id in range(34)]
    assert label.tolist() == expected
    assert sorted(set(expected) - {255}) == list(range(19))


# SYNTHIA id → (class under protocol 16, class under protocol 13)
SYNTHIA_CASES = {
    3: (0, 0),  # road
    4: (1, 1),  # sidewalk
    21: (3, 255),  # wall: not scored under 13
    7: (5, 255),  # pole: not scored under 13
    15: (6, 3),  # traffic light
    1: (9, 6),  # sky
    8: (12, 9),  # car
    11: (15, 12),  # bicycle
    16: (255, 255),  # terrain: not scored by either
    0: (255, 255),  # void
}


@pytest.mark.parametrize("protocol", [16, 13])
def test_synthia_16_bit_first_channel_maps_to_protocol(tmp_path, protocol):
    ids = np.array([list(SYNTHIA_CASES)], dtype=np.uint16)
    synthia_tree(tmp_path, [ids])
    assert Image.open(tmp_path / "GT" / "LABELS" / "0000000.png").mode == "RGB"  # Pillow sees 8-bit RGB...
    assert np.asarray(Image.open(tmp_path / "GT" / "LABELS" / "0000000.png"))[..., 0].max() == 0  # ...of zeros
    label = synthia_dataset(tmp_path, None, protocol, size=(ids.shape[1], 1)).load_label(0)
    column = 0 if protocol == 16 else 1
    assert label.ravel().tolist() == [cases[column] for cases in SYNTHIA_CASES.values()]


def test_protocols_keep_cityscapes_order():
    assert protocol_class_names(19) == CITYSCAPES_CLASS_NAMES
    sixteen = protocol_class_names(16)
    assert len(sixteen) == 16 and not {"terrain", "truck", "train"} & set(sixteen)
    thirteen = protocol_class_names(13)
    assert thirteen == tuple(name for name in sixteen if name not in ("wall", "fence", "pole"))
