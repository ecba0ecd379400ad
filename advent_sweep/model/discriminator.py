"""The ADVENT discriminator D: tells source from target by their weighted self-information maps.

Fully convolutional (DCGAN-like, as valeoai/ADVENT's ``get_fc_discriminator``): each
4×4 conv with stride 2 halves the map, so D judges patches rather than whole images
and its logits keep a spatial layout (a 512×1024 input gives 16×32 logits).
"""

from __future__ import annotations

from torch import nn

CHANNELS = (64, 128, 256, 512)


def build_discriminator(num_classes: int) -> nn.Module:
    """D: C→64→128→256→512→1 channels, 4×4 convs stride 2 padding 1, LeakyReLU(0.2) between.

    Input: the C-channel map I_x = −P_x·log2(P_x)/log2(C) (one per output level); output: one
    logit per patch, fed to BCE-with-logits (source 0, target 1).

    >>> d = build_discriminator(19)
    >>> d(torch.rand(1, 19, 512, 1024)).shape  # torch.Size([1, 1, 16, 32])
    """
    layers: list[nn.Module] = []
    in_channels = num_classes
    for out_channels in CHANNELS:
        layers.append(nn.Conv2d(in_channels, out_channels, kernel_size=4, stride=2, padding=1))
        layers.append(nn.LeakyReLU(0.2, inplace=True))
        in_channels = out_channels
    layers.append(nn.Conv2d(in_channels, 1, kernel_size=4, stride=2, padding=1))
    return nn.Sequential(*layers)
