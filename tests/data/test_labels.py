"""Label tables: raw ids in real label files come out as the protocol's class indices."""

import numpy as np
import pytest
from PIL import Image

from advent_sweep.data.cityscapes import cityscapes_dataset
from advent_sweep.data.config import DataConfig
from advent_sweep.data.gta5 import gta5_dataset
from advent_sweep.data.labels import (
    CITYSCAPES_CLASS_NAMES,
    CITYSCAPES_IDS,
    MIOU_13_CLASS_NAMES,
    MIOU_13_TRAIN_IDS,
    protocol_class_names,
)
from advent_sweep.data.synthia import synthia_dataset
from advent_sweep.errors import ConfigError
from advent_sweep.validation import validate
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


# SYNTHIA id → (class under the 16-class protocol, whether that class counts in mIoU*)
SYNTHIA_CASES = {
    3: (0, True),  # road
    4: (1, True),  # sidewalk
    21: (3, False),  # wall: trained and scored in mIoU, left out of mIoU*
    7: (5, False),  # pole: likewise
    15: (6, True),  # traffic light
    1: (9, True),  # sky
    8: (12, True),  # car
    11: (15, True),  # bicycle
    16: (255, False),  # terrain: not in the 16-class protocol
    0: (255, False),  # void
}


def test_synthia_16_bit_first_channel_maps_to_protocol(tmp_path):
    ids = np.array([list(SYNTHIA_CASES)], dtype=np.uint16)
    synthia_tree(tmp_path, [ids])
    assert Image.open(tmp_path / "GT" / "LABELS" / "0000000.png").mode == "RGB"  # Pillow sees 8-bit RGB...
    assert np.asarray(Image.open(tmp_path / "GT" / "LABELS" / "0000000.png"))[..., 0].max() == 0  # ...of zeros
    label = synthia_dataset(tmp_path, None, 16, size=(ids.shape[1], 1)).load_label(0)
    assert label.ravel().tolist() == [class_index for class_index, _ in SYNTHIA_CASES.values()]


def test_miou_13_is_the_16_classes_less_wall_fence_pole():
    assert MIOU_13_TRAIN_IDS == (0, 1, 2, 6, 7, 8, 10, 11, 12, 13, 15, 17, 18)
    sixteen = protocol_class_names(16)
    assert MIOU_13_CLASS_NAMES == tuple(name for name in sixteen if name not in ("wall", "fence", "pole"))
    for class_index, counted in SYNTHIA_CASES.values():
        if class_index != 255:
            assert (sixteen[class_index] in MIOU_13_CLASS_NAMES) == counted, sixteen[class_index]


def test_protocols_keep_cityscapes_order():
    assert protocol_class_names(19) == CITYSCAPES_CLASS_NAMES
    sixteen = protocol_class_names(16)
    assert len(sixteen) == 16 and not {"terrain", "truck", "train"} & set(sixteen)
    assert (sixteen[9], sixteen[15]) == ("sky", "bicycle")


def test_protocol_13_is_a_config_error_pointing_to_target_miou_13(tmp_path):
    values = {"source": "synthia", "target": "cityscapes", "source_root": str(tmp_path), "target_root": str(tmp_path)}
    assert validate(DataConfig, values, "run.yaml").resolved_protocol == 16
    with pytest.raises(ConfigError, match=r"run.yaml: .*\n  protocol: .*trains one 16-class model.*target_miou_13"):
        validate(DataConfig, {**values, "protocol": 13}, "run.yaml")
