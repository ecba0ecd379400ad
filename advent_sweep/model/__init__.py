"""Model layer: the DeepLab-V2 segmenter (several backbones) and ADVENT's discriminator."""

from advent_sweep.model.backbones import BACKBONES
from advent_sweep.model.deeplabv2 import DeepLabV2, build_segmenter
from advent_sweep.model.discriminator import build_discriminator

__all__ = ["BACKBONES", "DeepLabV2", "build_discriminator", "build_segmenter"]
