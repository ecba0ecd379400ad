"""ADVENT's losses as pure functions (Vu et al., CVPR 2019, Sec. 3).

Notation: P_x ∈ [0, 1]^{C×H×W} is the softmax of the segmenter's logits for image x,
C the number of classes. Every function works on a batch N×C×H×W and computes in
float32, so AMP-produced probabilities cannot underflow the log.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

IGNORE_LABEL = 255
_LOG_EPSILON = 1e-30


def self_information_map(probabilities: Tensor) -> Tensor:
    """Weighted self-information I_x = −P_x · log2(P_x) / log2(C), N×C×H×W.

    The discriminator's input in AdvEnt (Eq. 4); summed over classes it is the
    normalised entropy map, so each map lies in [0, 1].
    """
    probabilities = probabilities.float()
    num_classes = probabilities.shape[1]
    return -probabilities * torch.log2(probabilities + _LOG_EPSILON) / math.log2(num_classes)


def entropy_map(probabilities: Tensor) -> Tensor:
    """Normalised entropy E_x^{(h,w)} = Σ_c I_x^{(h,w,c)} ∈ [0, 1], N×H×W."""
    return self_information_map(probabilities).sum(dim=1)


def entropy_range_mask(entropy: Tensor, low: float, high: float) -> Tensor:
    """Pixels whose normalised entropy lies in [e_lo, e_hi] (both ends included).

    Only these target pixels contribute to the target losses; e_lo = 0, e_hi = 1 keeps all.
    The entropy is clamped to [0, 1] first: a near-uniform float32 prediction over 19
    classes sums to 1.0000001 and would otherwise fall out of the plain method's range.
    """
    entropy = entropy.clamp(0.0, 1.0)
    return (entropy >= low) & (entropy <= high)


def entropy_loss(probabilities: Tensor, mask: Tensor | None = None) -> Tensor:
    """MinEnt's L_ent = mean over (in-range) target pixels of E_x (Eq. 3); 0 when no pixel is in range."""
    entropy = entropy_map(probabilities)
    if mask is None:
        return entropy.mean()
    return (entropy * mask).sum() / mask.sum().clamp(min=1)


def class_ratio_prior_loss(
    probabilities: Tensor, source_prior: Sequence[float] | Tensor, mu: float, mask: Tensor | None = None
) -> Tensor:
    """L_cp = Σ_c max(0, μ·p_s(c) − p_t(c)) (Sec. 3.3).

    p_s is the L1-normalised source label histogram, p_t the mean predicted class
    probability over the (in-range) target pixels of the batch. It penalises only classes
    the target prediction under-represents, pushing against entropy minimisation's bias
    towards easy, frequent classes; μ = 0 turns it off.
    """
    probabilities = probabilities.float()
    prior = torch.as_tensor(source_prior, dtype=torch.float32, device=probabilities.device)
    if mask is None:
        predicted = probabilities.mean(dim=(0, 2, 3))
    else:
        weights = mask.unsqueeze(1).float()
        predicted = (probabilities * weights).sum(dim=(0, 2, 3)) / weights.sum().clamp(min=1)
    return torch.clamp(mu * prior - predicted, min=0).sum()


def adversarial_loss(discriminator_logits: Tensor, domain_label: float) -> Tensor:
    """BCE-with-logits against a constant domain label (source 0, target 1), as the official bce_loss."""
    target = torch.full_like(discriminator_logits, float(domain_label))
    return F.binary_cross_entropy_with_logits(discriminator_logits.float(), target)


def segmentation_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Pixel-wise cross-entropy on source labels, ignoring 255; 0 when no pixel is labelled."""
    valid = labels != IGNORE_LABEL
    if not bool(valid.any()):
        return logits.sum() * 0.0
    return F.cross_entropy(logits.float(), labels, ignore_index=IGNORE_LABEL)
