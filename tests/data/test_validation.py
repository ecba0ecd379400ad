"""Every data problem is a DataError that names the path, raised by build_domain_data before training."""

import shutil

import numpy as np
import pytest
from PIL import Image

from advent_sweep.data import build_domain_data
from advent_sweep.errors import DataError
from tests.data.trees import gta5_cityscapes, write_ids, write_rgb


def expect_error(config, *fragments):
    with pytest.raises(DataError) as caught:
        build_domain_data(config)
    for fragment in fragments:
        assert str(fragment) in str(caught.value)
    return str(caught.value)


def test_missing_root(tmp_path):
    config = gta5_cityscapes(tmp_path, source_root=str(tmp_path / "nowhere"))
    expect_error(config, tmp_path / "nowhere", "no such folder")


def test_missing_split_folder(tmp_path):
    config = gta5_cityscapes(tmp_path, target_val_split="test")
    expect_error(config, tmp_path / "cityscapes" / "leftImg8bit" / "test", "no such folder")


def test_image_without_label(tmp_path):
    config = gta5_cityscapes(tmp_path)
    (tmp_path / "gta5" / "labels" / "00002.png").unlink()
    expect_error(config, tmp_path / "gta5" / "labels" / "00002.png", "label not found")


def test_label_without_image(tmp_path):
    config = gta5_cityscapes(tmp_path)
    label = next((tmp_path / "cityscapes" / "gtFine" / "train").rglob("*_gtFine_labelIds.png"))
    image_name = label.name.replace("gtFine_labelIds", "leftImg8bit")
    (tmp_path / "cityscapes" / "leftImg8bit" / "train" / label.parent.name / image_name).unlink()
    expect_error(config, label, "has no image")


@pytest.mark.parametrize("damage", ["truncated", "not_an_image", "bad_crc"])
def test_corrupt_file(tmp_path, damage):
    config = gta5_cityscapes(tmp_path)
    path = tmp_path / "cityscapes" / "leftImg8bit" / "val" / "lindau" / "lindau_000001_000019_leftImg8bit.png"
    data = bytearray(path.read_bytes())
    if damage == "truncated":
        data = data[: len(data) // 2]
    elif damage == "not_an_image":
        data = bytearray(b"<html>not found</html>")
    else:
        data[60] ^= 0xFF  # a byte inside the image data: its chunk's CRC no longer matches
    path.write_bytes(bytes(data))
    expect_error(config, path, "corrupt")


def test_unknown_label_id_in_source(tmp_path):
    config = gta5_cityscapes(tmp_path)
    path = tmp_path / "gta5" / "labels" / "00003.png"
    write_ids(path, np.array([[7, 40], [41, 26]]), palette=True)
    expect_error(config, path, "label ids 40, 41 are not Cityscapes label ids", "0..33, 255")


def test_colour_label_instead_of_ids(tmp_path):
    config = gta5_cityscapes(tmp_path)
    path = next((tmp_path / "cityscapes" / "gtFine" / "val").rglob("*_gtFine_labelIds.png"))
    write_rgb(path, Image.open(path).size)
    expect_error(config, path, "mode RGB")


def test_empty_dataset(tmp_path):
    config = gta5_cityscapes(tmp_path)
    for folder in ("images", "labels"):
        shutil.rmtree(tmp_path / "gta5" / folder)
        (tmp_path / "gta5" / folder).mkdir()
    expect_error(config, tmp_path / "gta5" / "images", "no images")


def test_missing_list_file(tmp_path):
    config = gta5_cityscapes(tmp_path, source_list=str(tmp_path / "all.txt"))
    expect_error(config, tmp_path / "all.txt", "list file not found")


def test_empty_list_file(tmp_path):
    (tmp_path / "all.txt").write_text("\n\n")
    config = gta5_cityscapes(tmp_path, source_list=str(tmp_path / "all.txt"))
    expect_error(config, tmp_path / "all.txt", "names no images")


def test_list_entry_without_its_file(tmp_path):
    (tmp_path / "val.txt").write_text("lindau/lindau_000000_000019_leftImg8bit.png\nlindau/missing_leftImg8bit.png\n")
    config = gta5_cityscapes(tmp_path, target_val_list=str(tmp_path / "val.txt"))
    missing = tmp_path / "cityscapes" / "leftImg8bit" / "val" / "lindau" / "missing_leftImg8bit.png"
    expect_error(config, tmp_path / "val.txt", "line 2", missing)
