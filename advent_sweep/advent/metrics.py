"""Segmentation metrics: a confusion matrix → per-class IoU and mIoU (official nan-mean rule)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from advent_sweep.advent.losses import IGNORE_LABEL


class ConfusionMatrix:
    """Accumulates an n×n matrix (rows: label, columns: prediction) over a whole val set."""

    def __init__(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64)

    def update(self, labels: Tensor, predictions: Tensor) -> None:
        """One bincount of n·label + prediction over the labelled pixels (255 left out)."""
        n = self.num_classes
        labels = labels.reshape(-1)
        predictions = predictions.reshape(-1)
        valid = (labels != IGNORE_LABEL) & (labels >= 0) & (labels < n)
        counts = torch.bincount(n * labels[valid] + predictions[valid], minlength=n * n)
        self.matrix += counts.reshape(n, n).cpu()

    def per_class_iou(self) -> Tensor:
        """IoU_c = TP / (TP + FP + FN); NaN for a class absent from labels and predictions."""
        matrix = self.matrix.double()
        true_positive = matrix.diag()
        union = matrix.sum(0) + matrix.sum(1) - true_positive
        return torch.where(union > 0, true_positive / union.clamp(min=1), torch.full_like(union, float("nan")))

    def mean_iou(self, classes: Sequence[int] | None = None) -> float:
        """mIoU = nan-mean of per-class IoU, so a class never seen nor predicted is left out.

        ``classes`` restricts the mean to those class indices (SYNTHIA's 13-class mIoU*).
        """
        iou = self.per_class_iou()
        if classes is not None:
            iou = iou[list(classes)]
        return float(iou.nanmean()) if bool((~iou.isnan()).any()) else float("nan")
