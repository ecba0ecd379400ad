"""Scoring segmenters on labelled target data, as the official eval_UDA.py does.

Logits are upsampled (bilinear, align_corners=True) to the label's full resolution
before the argmax. Several segmenters with weights give the paper's ensemble
("AdvEnt+MinEnt": main-head logits of two models summed with weights 0.5/0.5).
A SYNTHIA → Cityscapes model (the 16-class protocol) is also scored on the paper's
13 classes (mIoU*) from the same predictions, as ``target_miou_13``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from contextlib import nullcontext
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from advent_sweep.advent.losses import entropy_map
from advent_sweep.advent.metrics import ConfusionMatrix
from advent_sweep.data.labels import MIOU_13_CLASS_NAMES, scores_miou_13

Segmenter = Callable[[Tensor], tuple[Tensor | None, Tensor]]


@torch.no_grad()
def evaluate_segmenters(
    segmenters: Sequence[tuple[Segmenter, float]],
    loader: Iterable,
    num_classes: int,
    class_names: Sequence[str],
    device: torch.device,
    to_device: Callable[[Tensor], Tensor] = lambda x: x,
    autocast: Callable[[], Any] = nullcontext,
) -> dict[str, float]:
    """mIoU and per-class IoU in percent, and the mean normalised entropy of the prediction.

    ``target_entropy`` needs no labels: it is the label-free model-selection signal.
    ``target_miou_13`` (mIoU*, the nan-mean over the 16 classes less wall, fence, pole) is
    there if and only if ``class_names`` are exactly the SYNTHIA 16-class protocol's.
    """
    confusion = ConfusionMatrix(num_classes)
    entropy_sum, pixel_count = 0.0, 0
    for batch in loader:
        images, labels = batch[0], batch[1]
        images = to_device(images.to(device))
        logits = None
        for segmenter, weight in segmenters:
            with autocast():
                main = segmenter(images)[1]
            main = F.interpolate(main.float(), size=labels.shape[-2:], mode="bilinear", align_corners=True)
            logits = weight * main if logits is None else logits + weight * main
        probabilities = F.softmax(logits, dim=1)
        entropy = entropy_map(probabilities)
        entropy_sum += float(entropy.sum())
        pixel_count += entropy.numel()
        confusion.update(labels.to(device).long(), probabilities.argmax(dim=1))
    iou = confusion.per_class_iou() * 100
    metrics = {"target_miou": confusion.mean_iou() * 100, "target_entropy": entropy_sum / max(pixel_count, 1)}
    if scores_miou_13(class_names):
        miou_13_classes = [index for index, name in enumerate(class_names) if name in MIOU_13_CLASS_NAMES]
        metrics["target_miou_13"] = confusion.mean_iou(miou_13_classes) * 100
    metrics.update({f"iou.{name}": float(value) for name, value in zip(class_names, iou)})
    return metrics
