"""DeepLab-V2 backbones: torchvision networks made atrous, cut at two levels.

Every builder returns a :class:`Trunk` whose parameter names are torchvision's
(``conv1``, ``layer3.0.conv2``, ``features.24``, ...), so ImageNet weights and the
Caffe-converted DeepLab file load by name. Adding a backbone is one entry in
:data:`BACKBONES`.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn
from torchvision import models
from torchvision.models import WeightsEnum


class Trunk(nn.Module):
    """A backbone run stage by stage, returning the features for the aux and main heads.

    ``order`` lists the dotted names of the stages in execution order; the output of
    ``aux_after`` feeds the auxiliary classifier (the multi-level variant of ADVENT),
    the last stage feeds the main one. ``new_layers`` are name prefixes of layers that
    no pretrained ImageNet file holds (VGG's atrous fc6/fc7), so loading does not
    require them. ``weights_enum`` is the torchvision weight family that fits.
    """

    def __init__(
        self,
        stages: dict[str, nn.Module],
        order: list[str],
        aux_after: str,
        aux_channels: int,
        main_channels: int,
        weights_enum: type[WeightsEnum],
        new_layers: tuple[str, ...] = (),
    ) -> None:
        super().__init__()
        for name, module in stages.items():
            self.add_module(name, module)
        self.order = order
        self.aux_after = aux_after
        self.aux_channels = aux_channels
        self.main_channels = main_channels
        self.weights_enum = weights_enum
        self.new_layers = new_layers

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        aux = None
        for name in self.order:
            x = self.get_submodule(name)(x)
            if name == self.aux_after:
                aux = x
        return aux, x


def dilate(stage: nn.Module, dilation: int) -> None:
    """Atrous conversion (DeepLab): stride 1 everywhere in ``stage``, every k×k conv dilated.

    Keeps the feature map at the resolution it enters with and grows the receptive
    field instead; padding d·(k−1)/2 keeps the size. DeepLab-V2 dilates every block
    of a stage, the first one included.
    """
    for conv in stage.modules():
        if isinstance(conv, nn.Conv2d):
            conv.stride = (1, 1)
            if conv.kernel_size[0] > 1:
                conv.dilation = (dilation, dilation)
                conv.padding = (dilation * (conv.kernel_size[0] - 1) // 2,) * 2


def _resnet_trunk(net: models.ResNet, aux_channels: int, weights_enum: type[WeightsEnum]) -> Trunk:
    """Aux head on layer3 (C4), main head on layer4 (C5, twice the channels); avgpool and fc dropped."""
    names = ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"]
    return Trunk({n: getattr(net, n) for n in names}, names, "layer3", aux_channels, 2 * aux_channels, weights_enum)


def resnet101_deeplab() -> Trunk:
    """The official DeepLab-V2 ResNet-101: ResNet v1, output stride 8.

    Differs from torchvision's v1.5 in three places, all taken from valeoai/ADVENT:
    the stride-2 of layer2 sits on the first 1×1 conv (not the 3×3), max-pool rounds
    up (ceil_mode), and layer3/layer4 are dilated 2/4 in every block (stride 1).
    Random init is torchvision's (Kaiming); the official N(0, 0.01) is overwritten by
    the DeepLab file anyway.
    """
    net = models.resnet101()
    net.maxpool.ceil_mode = True
    net.layer2[0].conv1.stride, net.layer2[0].conv2.stride = (2, 2), (1, 1)
    dilate(net.layer3, 2)
    dilate(net.layer4, 4)
    return _resnet_trunk(net, 1024, models.ResNet101_Weights)


def resnet101_torchvision() -> Trunk:
    """Torchvision's ResNet-101 v1.5 with its own dilation rule (as in its DeepLabV3)."""
    net = models.resnet101(replace_stride_with_dilation=[False, True, True])
    return _resnet_trunk(net, 1024, models.ResNet101_Weights)


def resnet18() -> Trunk:
    """Small CPU backbone; torchvision refuses to dilate BasicBlocks, so do it here."""
    net = models.resnet18()
    dilate(net.layer3, 2)
    dilate(net.layer4, 4)
    return _resnet_trunk(net, 256, models.ResNet18_Weights)


def vgg16_deeplab() -> Trunk:
    """DeepLab-V2 VGG-16 of the UDA literature (AdaptSegNet's DeeplabVGG, wasidennis/AdaptSegNet).

    pool4 and pool5 removed (Identity keeps torchvision's indices, hence its weight
    names), conv5 dilated 2, then fc6 and fc7 as 3×3 convs dilated 4 (512→1024→1024),
    freshly initialised. Output stride 8 (pool1–3, floor rounding). Aux head on
    relu4_3 (512 ch), main head on fc7 (1024 ch).
    """
    features = models.vgg16().features
    features[23] = nn.Identity()  # pool4
    features[30] = nn.Identity()  # pool5
    dilate(features[24:30], 2)
    stages = {
        "features": features,
        "fc6": nn.Conv2d(512, 1024, kernel_size=3, padding=4, dilation=4),
        "relu6": nn.ReLU(inplace=True),
        "fc7": nn.Conv2d(1024, 1024, kernel_size=3, padding=4, dilation=4),
        "relu7": nn.ReLU(inplace=True),
    }
    order = [f"features.{i}" for i in range(len(features))] + ["fc6", "relu6", "fc7", "relu7"]
    return Trunk(stages, order, "features.22", 512, 1024, models.VGG16_Weights, new_layers=("fc6.", "fc7."))


def mobilenet_v3() -> Trunk:
    """MobileNetV3-Large at output stride 8: blocks 7–12 (C4) dilated 2, blocks 13–16 (C5) dilated 4.

    Aux head on block 12 (112 ch), main head on the last 1×1 conv (960 ch).
    """
    features = models.mobilenet_v3_large().features
    dilate(features[7:13], 2)
    dilate(features[13:], 4)
    order = [f"features.{i}" for i in range(len(features))]
    return Trunk({"features": features}, order, "features.12", 112, 960, models.MobileNet_V3_Large_Weights)


BACKBONES: dict[str, Callable[[], Trunk]] = {
    "resnet101": resnet101_deeplab,
    "resnet101_torchvision": resnet101_torchvision,
    "vgg16": vgg16_deeplab,
    "resnet18": resnet18,
    "mobilenet_v3": mobilenet_v3,
}
