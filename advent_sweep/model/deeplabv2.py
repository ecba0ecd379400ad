"""DeepLab-V2 segmenter of ADVENT: an atrous backbone and ASPP classifiers at two levels.

The official model (valeoai/ADVENT, advent/model/deeplabv2.py) is reproduced for the
"resnet101" backbone: 44,601,560 parameters multi-level (19 classes), BN affine frozen,
output stride 8. The segmenter normalises its own input as its weights require, so the
data layer hands it RGB in [0, 1] whatever the backbone.
"""

from __future__ import annotations

import re
import socket
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor, nn
from torchvision.models import WeightsEnum, get_weight

from advent_sweep.errors import ConfigError
from advent_sweep.model.backbones import BACKBONES, Trunk

CAFFE_MEAN_BGR = (104.00699, 116.66877, 122.67891)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
ASPP_RATES = (6, 12, 18, 24)

Normalization = Literal["caffe_bgr", "imagenet_rgb"]
CAFFE: tuple[Normalization, tuple[float, ...], tuple[float, ...]] = ("caffe_bgr", CAFFE_MEAN_BGR, (1.0, 1.0, 1.0))
IMAGENET: tuple[Normalization, tuple[float, ...], tuple[float, ...]] = ("imagenet_rgb", IMAGENET_MEAN, IMAGENET_STD)


class ASPPClassifier(nn.Module):
    """DeepLab-V2 ASPP: parallel 3×3 convs dilated 6, 12, 18, 24, their logits summed.

    All four branches are summed as in valeoai/ADVENT (AdaptSegNet's copy returned
    after the second). Weights drawn from N(0, 0.01) as there; the names
    (``conv2d_list``) are the official ones.
    """

    def __init__(self, in_channels: int, num_classes: int, rates: tuple[int, ...] = ASPP_RATES) -> None:
        super().__init__()
        self.conv2d_list = nn.ModuleList(
            nn.Conv2d(in_channels, num_classes, kernel_size=3, padding=r, dilation=r, bias=True) for r in rates
        )
        for conv in self.conv2d_list:
            nn.init.normal_(conv.weight, 0.0, 0.01)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv2d_list[0](x)
        for conv in self.conv2d_list[1:]:
            out = out + conv(x)
        return out


class DeepLabV2(nn.Module):
    """Segmenter returning (aux logits or None, main logits) at output stride 8.

    ``input_normalization`` says how RGB in [0, 1] is mapped to what the weights were
    trained on: "caffe_bgr" is 255·x in BGR order minus the Caffe mean (no std), as the
    DeepLab ImageNet file expects; "imagenet_rgb" is (x − mean)/std with the torchvision
    weights' own mean and std.
    """

    def __init__(
        self,
        backbone: Trunk,
        num_classes: int,
        multi_level: bool,
        input_normalization: Normalization,
        input_mean: tuple[float, ...],
        input_std: tuple[float, ...],
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.aux_head = ASPPClassifier(backbone.aux_channels, num_classes) if multi_level else None
        self.main_head = ASPPClassifier(backbone.main_channels, num_classes)
        self.num_classes = num_classes
        self.multi_level = multi_level
        self.input_normalization = input_normalization
        self.input_scale = 255.0 if input_normalization == "caffe_bgr" else 1.0
        self.register_buffer("input_mean", torch.tensor(input_mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("input_std", torch.tensor(input_std).view(1, 3, 1, 1), persistent=False)

    def normalize(self, images: Tensor) -> Tensor:
        """RGB in [0, 1] → the backbone's input space (see ``input_normalization``)."""
        if self.input_normalization == "caffe_bgr":
            images = images.flip(1)
        return (images * self.input_scale - self.input_mean) / self.input_std

    def forward(self, images: Tensor) -> tuple[Tensor | None, Tensor]:
        """RGB in [0, 1], N×3×H×W → (aux logits or None, main logits) at output stride 8 (321 → 41)."""
        aux_features, main_features = self.backbone(self.normalize(images))
        aux = self.aux_head(aux_features) if self.aux_head is not None else None
        return aux, self.main_head(main_features)

    def parameter_groups(self, lr: float, repeats: Literal["official", "unique"] = "official") -> list[dict]:
        """SGD groups: backbone at ``lr``, classifier heads at 10·lr (trainable params only), each param once.

        ``repeats`` counts how often each param is updated per step (see advent.optim.RepeatedSGD).
        "official" counts what valeoai/ADVENT's ``optim_parameters`` lists: a backbone param
        once per module enclosing it below each top-level backbone module (a ResNet
        bottleneck conv 3 times, a downsample conv 4 times). "unique" updates each once.
        """
        if repeats == "official":
            listed = [p for top in self.backbone.children() for m in top.modules() for p in m.parameters()]
        elif repeats == "unique":
            listed = list(self.backbone.parameters())
        else:
            raise ConfigError(f"unknown param_repeats {repeats!r}; allowed: official, unique")
        backbone = Counter(p for p in listed if p.requires_grad)  # keys in first-listing order: backbone.parameters()'s
        heads = [p for h in (self.aux_head, self.main_head) if h is not None for p in h.parameters() if p.requires_grad]
        return [
            {"params": list(backbone), "repeats": list(backbone.values()), "lr": lr},
            {"params": heads, "repeats": [1] * len(heads), "lr": 10 * lr},
        ]


def build_segmenter(
    backbone: str, num_classes: int, multi_level: bool = True, weights: str | None = None
) -> DeepLabV2:
    """Build DeepLab-V2 on a named backbone, load its ImageNet weights, freeze BN affine.

    ``weights``: None (random init), a torchvision weight name such as
    "ResNet101_Weights.IMAGENET1K_V1", or a local state-dict file (the DeepLab
    "DeepLab_resnet_pretrained_imagenet.pth" with its "Scale." prefix included).
    Only the backbone is loaded; the ASPP heads stay freshly initialised.

    >>> seg = build_segmenter("resnet18", num_classes=19)
    >>> aux, main = seg(torch.rand(1, 3, 64, 64))  # both 1×19×8×8
    """
    if backbone not in BACKBONES:
        raise ConfigError(f"unknown backbone {backbone!r}; allowed: {', '.join(sorted(BACKBONES))}")
    trunk = BACKBONES[backbone]()
    if weights is None:
        normalization, mean, std = CAFFE if backbone == "resnet101" else IMAGENET
    else:
        state, (normalization, mean, std) = _read_weights(weights, backbone, trunk)
        _load_backbone(trunk, state, weights, backbone)
    for module in trunk.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.requires_grad_(False)
    return DeepLabV2(trunk, num_classes, multi_level, normalization, mean, std)


def check_weights(weights: str, backbone: str) -> None:
    """ConfigError unless ``build_segmenter(backbone, ..., weights)`` would load ``weights`` here.

    A file must exist on this machine, open as a state dict and fit the backbone; a torchvision
    name must name weights of the backbone's family (nothing is downloaded). What a sweep checks
    on its driver before any trial starts.
    """
    if backbone not in BACKBONES:
        raise ConfigError(f"unknown backbone {backbone!r}; allowed: {', '.join(sorted(BACKBONES))}")
    trunk = BACKBONES[backbone]()
    if Path(weights).expanduser().is_file():
        state, _ = _read_weights(weights, backbone, trunk)
        _check_fit(trunk, state, weights, backbone)
    else:
        _torchvision_weights(weights, backbone, trunk)


def _read_weights(
    weights: str, backbone: str, trunk: Trunk
) -> tuple[Mapping[str, Tensor], tuple[Normalization, tuple[float, ...], tuple[float, ...]]]:
    """Resolve ``weights`` to a backbone state dict and the input normalisation it needs."""
    path = Path(weights).expanduser()
    if path.is_file():
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:
            raise ConfigError(f"weights file {weights}: cannot be read as a PyTorch state dict ({err})") from err
        if not isinstance(state, Mapping):
            raise ConfigError(f"weights file {weights}: holds a {type(state).__name__}, not a state dict")
        if any(k.startswith("Scale.") for k in state):
            return _from_deeplab_file(state), CAFFE
        return state, IMAGENET
    enum = _torchvision_weights(weights, backbone, trunk)
    transform = enum.transforms()
    return enum.get_state_dict(progress=False), ("imagenet_rgb", tuple(transform.mean), tuple(transform.std))


def _torchvision_weights(weights: str, backbone: str, trunk: Trunk) -> WeightsEnum:
    """The torchvision weights named ``weights``, of ``trunk``'s family; ConfigError naming this host otherwise."""
    family = trunk.weights_enum
    names = ", ".join(f"{family.__name__}.{w.name}" for w in family)
    if not re.fullmatch(r"\w+_Weights\.\w+", weights):
        raise ConfigError(
            f"weights {weights!r}: no such file, and not a torchvision weight name (e.g. {names}); "
            f"looked for the file on host {socket.gethostname()}"
        )
    try:
        enum = get_weight(weights)
    except (ValueError, KeyError) as err:
        raise ConfigError(f"unknown torchvision weights {weights!r}; backbone {backbone!r} takes: {names}") from err
    if not isinstance(enum, family):
        raise ConfigError(f"weights {weights!r} are for another network; backbone {backbone!r} takes: {names}")
    return enum


def _from_deeplab_file(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The DeepLab Caffe conversion: drop the "Scale." prefix and its VOC classifier "layer5"."""
    return {
        k.split(".", 1)[1]: v for k, v in state.items() if k.startswith("Scale.") and not k.startswith("Scale.layer5.")
    }


def _check_fit(trunk: Trunk, state: Mapping[str, Tensor], source: str, backbone: str) -> None:
    """Every backbone tensor a pretrained file should hold must be there, shapes equal."""
    expected = trunk.state_dict()
    missing = [
        k for k in expected
        if k not in state and not k.startswith(trunk.new_layers) and not k.endswith("num_batches_tracked")
    ]
    mismatched = [
        f"{k} {tuple(v.shape)} != {tuple(expected[k].shape)}"
        for k, v in state.items()
        if k in expected and tuple(v.shape) != tuple(expected[k].shape)
    ]
    if missing or mismatched:
        problems = []
        if missing:
            problems.append(f"{len(missing)} backbone keys missing (e.g. {', '.join(missing[:4])})")
        if mismatched:
            problems.append(f"{len(mismatched)} shapes differ (e.g. {'; '.join(mismatched[:3])})")
        found = ", ".join(list(state)[:4])
        raise ConfigError(
            f"weights {source}: do not fit backbone {backbone!r}: {'; '.join(problems)}; file keys: {found}, ..."
        )


def _load_backbone(trunk: Trunk, state: Mapping[str, Tensor], source: str, backbone: str) -> None:
    """Load by name, after checking that ``state`` fits the backbone."""
    _check_fit(trunk, state, source, backbone)
    expected = trunk.state_dict()
    trunk.load_state_dict({k: v for k, v in state.items() if k in expected}, strict=False)
