"""DeepLab-V2: the official ResNet-101 numbers, output strides, frozen BN, SGD groups, weights."""

from collections import Counter

import pytest
import torch
from torch import nn
from torchvision import models
from torchvision.models import WeightsEnum

from advent_sweep.errors import ConfigError
from advent_sweep.model import BACKBONES, DeepLabV2, build_segmenter


@pytest.fixture(scope="module")
def resnet101() -> DeepLabV2:
    torch.manual_seed(0)
    return build_segmenter("resnet101", num_classes=19)


def count(module: nn.Module, trainable: bool = False) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable)


def test_backbone_table_has_the_contract_names():
    assert {"resnet101", "resnet101_torchvision", "vgg16", "resnet18", "mobilenet_v3"} <= set(BACKBONES)


def test_resnet101_parameter_counts_match_official(resnet101):
    assert count(resnet101) == 44_601_560
    assert count(resnet101, trainable=True) == 44_496_216
    assert count(build_segmenter("resnet101", 19, multi_level=False)) == 43_901_068


def test_resnet101_is_resnet_v1_dilated_everywhere(resnet101):
    trunk = resnet101.backbone
    assert trunk.maxpool.ceil_mode
    assert trunk.layer2[0].conv1.stride == (2, 2) and trunk.layer2[0].conv2.stride == (1, 1)
    for layer, d in ((trunk.layer3, 2), (trunk.layer4, 4)):
        assert layer[0].downsample is not None and layer[0].downsample[0].stride == (1, 1)
        assert {(b.conv2.dilation, b.conv2.padding, b.conv2.stride) for b in layer} == {((d, d), (d, d), (1, 1))}
    assert all(layer[0].downsample is not None for layer in (trunk.layer1, trunk.layer2))


def test_resnet101_logits_at_output_stride_8_with_ceil_rounding(resnet101):
    # 64 → conv1 32 → ceil-mode maxpool 17 → layer2 (stride on the 1×1) 9; torchvision's v1.5 gives 8.
    with torch.no_grad():
        aux, main = resnet101.eval()(torch.rand(1, 3, 64, 64))
    assert aux.shape == main.shape == (1, 19, 9, 9)


@pytest.mark.slow
def test_resnet101_321_input_gives_41x41(resnet101):
    with torch.no_grad():
        aux, main = resnet101.eval()(torch.rand(1, 3, 321, 321))
    assert aux.shape == main.shape == (1, 19, 41, 41)


def test_resnet101_torchvision_is_v15_with_torchvision_dilation():
    seg = build_segmenter("resnet101_torchvision", 19)
    assert count(seg) == 44_601_560
    trunk = seg.backbone
    assert not trunk.maxpool.ceil_mode
    assert trunk.layer2[0].conv2.stride == (2, 2)
    assert [b.conv2.dilation[0] for b in trunk.layer4] == [2, 4, 4]
    with torch.no_grad():
        _, main = seg.eval()(torch.rand(1, 3, 64, 64))
    assert main.shape == (1, 19, 8, 8)


def test_vgg16_deeplab_structure_and_shapes():
    seg = build_segmenter("vgg16", 19).eval()
    trunk = seg.backbone
    assert isinstance(trunk.features[23], nn.Identity) and isinstance(trunk.features[30], nn.Identity)
    assert {trunk.features[i].dilation for i in (24, 26, 28)} == {(2, 2)}
    assert (trunk.fc6.in_channels, trunk.fc6.out_channels, trunk.fc6.dilation) == (512, 1024, (4, 4))
    assert (trunk.fc7.in_channels, trunk.fc7.out_channels, trunk.fc7.dilation) == (1024, 1024, (4, 4))
    convs = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)  # torchvision's vgg16.features indices
    assert {k for k in trunk.state_dict() if k.startswith("features.")} == {
        f"features.{i}.{w}" for i in convs for w in ("weight", "bias")
    }
    assert seg.aux_head.conv2d_list[0].in_channels == 512 and seg.main_head.conv2d_list[0].in_channels == 1024
    with torch.no_grad():
        aux, main = seg(torch.rand(1, 3, 97, 97))
    assert aux.shape == main.shape == (1, 19, 12, 12)  # 97 → 48 → 24 → 12 (pool1–3, floor)


@pytest.mark.parametrize("backbone, aux_channels", [("resnet18", 256), ("mobilenet_v3", 112)])
def test_small_backbones_have_output_stride_8(backbone, aux_channels):
    seg = build_segmenter(backbone, 5).eval()
    assert seg.aux_head.conv2d_list[0].in_channels == aux_channels
    with torch.no_grad():
        aux, main = seg(torch.rand(2, 3, 64, 96))
    assert aux.shape == main.shape == (2, 5, 8, 12)


def test_single_level_returns_no_aux_logits():
    multi, single = build_segmenter("resnet18", 19), build_segmenter("resnet18", 19, multi_level=False)
    assert single.aux_head is None
    assert count(multi) - count(single) == 4 * (256 * 19 * 9 + 19)
    aux, main = single(torch.rand(1, 3, 64, 64))
    assert aux is None and main.shape == (1, 19, 8, 8)


def test_aspp_weights_are_normal_0_01(resnet101):
    weights = torch.cat([c.weight.flatten() for c in resnet101.main_head.conv2d_list])
    assert abs(weights.mean().item()) < 1e-4 and weights.std().item() == pytest.approx(0.01, rel=0.02)
    assert [c.dilation[0] for c in resnet101.main_head.conv2d_list] == [6, 12, 18, 24]


@pytest.mark.parametrize("backbone", ["resnet18", "mobilenet_v3"])
def test_bn_affine_frozen_but_running_stats_follow_train_mode(backbone):
    seg = build_segmenter(backbone, 3)
    bns = [m for m in seg.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and not any(p.requires_grad for bn in bns for p in bn.parameters())
    bn = bns[0]
    before = bn.running_mean.clone()
    seg.train()(torch.rand(2, 3, 64, 64))
    assert bn.training and not torch.equal(bn.running_mean, before) and bn.num_batches_tracked.item() == 1
    after_train = bn.running_mean.clone()
    with torch.no_grad():
        seg.eval()(torch.rand(2, 3, 64, 64))
    assert torch.equal(bn.running_mean, after_train)


def test_resnet101_bn_frozen(resnet101):
    bn_params = [p for m in resnet101.modules() if isinstance(m, nn.BatchNorm2d) for p in m.parameters()]
    assert sum(p.numel() for p in bn_params) == 44_601_560 - 44_496_216
    assert not any(p.requires_grad for p in bn_params)


def test_official_parameter_groups_repeat_backbone_params(resnet101):
    backbone, heads = resnet101.parameter_groups(2.5e-4, "official")
    assert backbone["lr"] == 2.5e-4 and heads["lr"] == pytest.approx(2.5e-3)
    names = {id(p): n for n, p in resnet101.named_parameters()}
    repeats = {names[id(p)]: r for p, r in zip(backbone["params"], backbone["repeats"], strict=True)}
    assert repeats["backbone.conv1.weight"] == 1
    assert repeats["backbone.layer1.0.conv1.weight"] == repeats["backbone.layer4.2.conv3.weight"] == 3
    assert {repeats[f"backbone.layer{i}.0.downsample.0.weight"] for i in (1, 2, 3, 4)} == {4}
    assert len(backbone["params"]) == len(repeats) == 1 + 33 * 3 + 4  # each trainable tensor once (BN frozen)
    assert sum(backbone["repeats"]) == 1 + 33 * 3 * 3 + 4 * 4 == 314  # what valeoai/ADVENT's optim_parameters lists
    assert Counter(repeats.values()) == {1: 1, 3: 99, 4: 4}
    trainable = [n for n, p in resnet101.backbone.named_parameters(prefix="backbone") if p.requires_grad]
    assert list(repeats) == trainable  # the order of "unique"
    assert len(heads["params"]) == len({id(p) for p in heads["params"]}) == 2 * 4 * 2 and set(heads["repeats"]) == {1}


def test_unique_parameter_groups_list_each_trainable_param_once(resnet101):
    backbone, heads = resnet101.parameter_groups(1e-3, "unique")
    assert (backbone["lr"], heads["lr"]) == (1e-3, pytest.approx(1e-2))
    assert len(backbone["params"]) == len({id(p) for p in backbone["params"]}) == 104
    assert backbone["repeats"] == [1] * 104 and heads["repeats"] == [1] * len(heads["params"])
    assert sum(p.numel() for group in (backbone, heads) for p in group["params"]) == 44_496_216


def test_unknown_param_repeats_is_a_config_error(resnet101):
    with pytest.raises(ConfigError, match="param_repeats"):
        resnet101.parameter_groups(1e-3, "twice")


def test_normalization_caffe_bgr_on_a_known_pixel(resnet101):
    assert resnet101.input_normalization == "caffe_bgr"
    pixel = torch.tensor([1.0, 0.5, 0.0]).view(1, 3, 1, 1)  # RGB
    expected = [0.0 - 104.00699, 127.5 - 116.66877, 255.0 - 122.67891]  # BGR × 255 − Caffe mean
    assert resnet101.normalize(pixel).flatten().tolist() == pytest.approx(expected, abs=1e-4)
    assert not any("input_" in k for k in resnet101.state_dict())


def test_normalization_imagenet_rgb_on_a_known_pixel():
    seg = build_segmenter("resnet18", 19)
    assert seg.input_normalization == "imagenet_rgb"
    pixel = torch.tensor([1.0, 0.5, 0.0]).view(1, 3, 1, 1)
    expected = [(1.0 - 0.485) / 0.229, (0.5 - 0.456) / 0.224, (0.0 - 0.406) / 0.225]
    assert seg.normalize(pixel).flatten().tolist() == pytest.approx(expected, abs=1e-5)


def test_unknown_backbone_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown backbone 'resnet50'.*resnet101"):
        build_segmenter("resnet50", 19)


@pytest.fixture(scope="module")
def resnet18_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(1)
    return models.resnet18().state_dict()  # includes fc.*, which the segmenter ignores


def test_loads_deeplab_file_with_scale_prefix(tmp_path, resnet18_state):
    path = tmp_path / "DeepLab_resnet_pretrained_imagenet.pth"
    state = {f"Scale.{k}": v for k, v in resnet18_state.items()}
    state["Scale.layer5.conv2d_list.0.weight"] = torch.zeros(21, 512, 3, 3)  # the VOC classifier, skipped
    torch.save(state, path)
    seg = build_segmenter("resnet18", 19, weights=str(path))
    assert seg.input_normalization == "caffe_bgr"
    assert torch.equal(seg.backbone.layer4[1].conv2.weight, resnet18_state["layer4.1.conv2.weight"])
    assert torch.equal(seg.backbone.bn1.running_var, resnet18_state["bn1.running_var"])
    assert not seg.backbone.bn1.weight.requires_grad
    assert seg.main_head.conv2d_list[0].weight.std().item() == pytest.approx(0.01, rel=0.05)


def test_loads_plain_state_dict_file_with_imagenet_normalization(tmp_path, resnet18_state):
    path = tmp_path / "resnet18.pth"
    torch.save(resnet18_state, path)
    seg = build_segmenter("resnet18", 19, weights=str(path))
    assert seg.input_normalization == "imagenet_rgb"
    assert torch.equal(seg.backbone.conv1.weight, resnet18_state["conv1.weight"])


def test_missing_weights_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="nowhere.pth.*no such file"):
        build_segmenter("resnet18", 19, weights=str(tmp_path / "nowhere.pth"))


def test_unreadable_weights_file_is_a_config_error(tmp_path):
    path = tmp_path / "junk.pth"
    path.write_text("not a checkpoint")
    with pytest.raises(ConfigError, match="junk.pth.*cannot be read"):
        build_segmenter("resnet18", 19, weights=str(path))


def test_weights_with_missing_keys_list_some(tmp_path):
    path = tmp_path / "mobilenet.pth"
    torch.save(models.mobilenet_v3_large().state_dict(), path)
    with pytest.raises(ConfigError, match=r"mobilenet.pth.*'resnet18'.*backbone keys missing \(e.g. conv1.weight"):
        build_segmenter("resnet18", 19, weights=str(path))


def test_weights_with_wrong_shapes_list_some(tmp_path, resnet18_state):
    path = tmp_path / "bad.pth"
    torch.save({**resnet18_state, "conv1.weight": torch.zeros(64, 3, 3, 3)}, path)
    with pytest.raises(ConfigError, match=r"1 shapes differ \(e.g. conv1.weight \(64, 3, 3, 3\) != \(64, 3, 7, 7\)"):
        build_segmenter("resnet18", 19, weights=str(path))


@pytest.mark.parametrize(
    "name, message",
    [
        ("ResNet18_Weights.NOPE", "unknown torchvision weights 'ResNet18_Weights.NOPE'.*: ResNet18_Weights.IMAGENET1K"),
        ("Foo_Weights.X", "unknown torchvision weights 'Foo_Weights.X'"),
        ("ResNet101_Weights.IMAGENET1K_V1", "for another network; backbone 'resnet18' takes: ResNet18_Weights"),
        ("imagenet", "'imagenet': no such file, and not a torchvision weight name"),
    ],
)
def test_bad_weight_names_are_config_errors(name, message):
    with pytest.raises(ConfigError, match=message):
        build_segmenter("resnet18", 19, weights=name)


def test_torchvision_weight_name_resolves_and_sets_its_normalization(monkeypatch, resnet18_state):
    fetched = []

    def fake_download(self: WeightsEnum, *args, **kwargs) -> dict[str, torch.Tensor]:
        fetched.append(self)
        return resnet18_state

    monkeypatch.setattr(WeightsEnum, "get_state_dict", fake_download)  # no internet here
    seg = build_segmenter("resnet18", 19, weights="ResNet18_Weights.DEFAULT")
    assert fetched == [models.ResNet18_Weights.IMAGENET1K_V1]
    assert torch.equal(seg.backbone.conv1.weight, resnet18_state["conv1.weight"])
    assert seg.input_normalization == "imagenet_rgb"
    assert seg.input_mean.flatten().tolist() == pytest.approx([0.485, 0.456, 0.406])
    assert seg.input_std.flatten().tolist() == pytest.approx([0.229, 0.224, 0.225])
