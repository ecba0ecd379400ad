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

from advent_sweep.advent.metrics import ConfusionMatrix
from advent_sweep.advent.validators import LabelFreeValidators
from advent_sweep.data.labels import MIOU_13_CLASS_NAMES, scores_miou_13

Segmenter = Callable[[Tensor], tuple[Tensor | None, Tensor]]


@torch.no_grad()
def score_segmenters(
    segmenters: Sequence[tuple[Segmenter, float]],
    loader: Iterable,
    num_classes: int,
    device: torch.device,
    to_device: Callable[[Tensor], Tensor] = lambda x: x,
    autocast: Callable[[], Any] = nullcontext,
    validators: LabelFreeValidators | None = None,
    on_logits: Callable[[Tensor], None] | None = None,
) -> ConfusionMatrix:
    """The confusion matrix of the (weighted) segmenters' argmax on ``loader``.

    ``validators`` and ``on_logits`` (what saves predictions) see each batch's combined logits at label resolution.
    """
    confusion = ConfusionMatrix(num_classes)
    for batch in loader:
        images, labels = batch[0], batch[1]
        images = to_device(images.to(device))
        logits = None
        for segmenter, weight in segmenters:
            with autocast():
                main = segmenter(images)[1]
            main = F.interpolate(main.float(), size=labels.shape[-2:], mode="bilinear", align_corners=True)
            logits = weight * main if logits is None else logits + weight * main
        if validators is not None:
            validators.update(logits)
        if on_logits is not None:
            on_logits(logits)
        confusion.update(labels.to(device).long(), logits.max(dim=1).indices)  # argmax, at a third of its time on CPU
    return confusion


def evaluate_segmenters(
    segmenters: Sequence[tuple[Segmenter, float]],
    loader: Iterable,
    num_classes: int,
    class_names: Sequence[str],
    device: torch.device,
    to_device: Callable[[Tensor], Tensor] = lambda x: x,
    autocast: Callable[[], Any] = nullcontext,
    on_logits: Callable[[Tensor], None] | None = None,
) -> dict[str, float]:
    """mIoU and per-class IoU in percent, and the label-free validators, from one pass over target val.

    The validators (target_entropy, target_im, target_bnm, target_snd; advent_sweep/selection.py)
    read no labels. ``target_miou_13`` (mIoU*, the nan-mean over the 16 classes less wall, fence,
    pole) is there if and only if ``class_names`` are exactly the SYNTHIA 16-class protocol's.
    """
    validators = LabelFreeValidators(num_classes)
    confusion = score_segmenters(segmenters, loader, num_classes, device, to_device, autocast, validators, on_logits)
    iou = confusion.per_class_iou() * 100
    metrics = {"target_miou": confusion.mean_iou() * 100, **validators.scores()}
    if scores_miou_13(class_names):
        miou_13_classes = [index for index, name in enumerate(class_names) if name in MIOU_13_CLASS_NAMES]
        metrics["target_miou_13"] = confusion.mean_iou(miou_13_classes) * 100
    metrics.update({f"iou.{name}": float(value) for name, value in zip(class_names, iou)})
    return metrics
