"""Label-free validators of a snapshot, accumulated batch by batch over target val.

Nothing per pixel is kept for the whole set: entropy and p̄ are running sums, BNM reads
the C×C Gram matrix G = Σ_n p_n p_nᵀ (‖P‖_* = Σ_k √λ_k(G)), and SND keeps a fixed-size
reservoir of pixels. The reservoir's random keys depend only on each pixel's position in
the stream and a fixed seed, so every snapshot of a run is scored on the same pixels.
Names and directions: advent_sweep/selection.py.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


SND_PIXELS = 1024
SND_TEMPERATURE = 0.05  # Saito et al.'s τ
SND_SEED = 0


def normalised_entropy(probabilities: Tensor) -> Tensor:
    """H(p) / log C along the last dimension, for a stack of distributions."""
    p = probabilities.double()
    return -(p * torch.log(p.clamp_min(1e-30))).sum(-1) / math.log(p.shape[-1])


def bnm_from_gram(gram: Tensor, pixels: int) -> float:
    """‖P‖_* / N from G = PᵀP: the singular values of P are the square roots of G's eigenvalues (NaN from NaN)."""
    if not bool(gram.isfinite().all()):
        return math.nan
    return float(torch.linalg.eigvalsh(gram.double()).clamp_min(0).sqrt().sum()) / max(pixels, 1)


def soft_neighbourhood_density(probabilities: Tensor, temperature: float = SND_TEMPERATURE) -> float:
    """SND of M probability vectors (M×C): mean entropy (natural log) of each row of softmax(cos / τ), self left out."""
    features = F.normalize(probabilities.double(), dim=1)
    similarity = features @ features.T / temperature
    similarity.fill_diagonal_(-math.inf)
    neighbours = F.softmax(similarity, dim=1)
    return float(-(neighbours * torch.log(neighbours.clamp_min(1e-300))).sum(1).mean())


class LabelFreeValidators:
    """Streams target-val logits (N×C×H×W) into entropy, IM, BNM and SND; ``scores()`` at the end."""

    def __init__(self, num_classes: int, snd_pixels: int = SND_PIXELS, seed: int = SND_SEED) -> None:
        self.num_classes = num_classes
        self.entropy_sum = 0.0
        self.pixels = 0
        self.probability_sum = torch.zeros(num_classes, dtype=torch.float64)
        self.gram = torch.zeros(num_classes, num_classes, dtype=torch.float64)
        self.snd_pixels = snd_pixels
        self.generator = torch.Generator().manual_seed(seed)
        self.sample_keys = torch.empty(0)
        self.sample = torch.empty(0, num_classes)

    def update(self, logits: Tensor) -> None:
        """Add a batch; its softmax stays on its device, only sums, C×C and M×C values leave it.

        Σ_n H(p_n) is −⟨P, log P⟩ with log P from log_softmax: one dot product, finite where p underflows to 0.
        """
        log_probabilities = F.log_softmax(logits.float(), dim=1)
        probabilities = log_probabilities.exp()
        self.entropy_sum -= float(torch.dot(probabilities.reshape(-1), log_probabilities.reshape(-1))) / math.log(self.num_classes)
        per_image = probabilities.reshape(probabilities.shape[0], self.num_classes, -1)  # N×C×HW, a view
        self.pixels += per_image.shape[0] * per_image.shape[2]
        self.probability_sum += per_image.sum((0, 2)).double().cpu()
        self.gram += (per_image @ per_image.transpose(1, 2)).sum(0).double().cpu()
        self._sample(per_image)

    def _sample(self, per_image: Tensor) -> None:
        """Reservoir sampling by random keys: keep the SND_PIXELS pixels with the smallest keys seen so far."""
        held, count = self.sample_keys.numel(), per_image.shape[0] * per_image.shape[2]
        new_keys = torch.rand(count, generator=self.generator)
        candidates = torch.arange(count)
        if held == self.snd_pixels:  # full: only keys below the largest kept one can enter
            candidates = (new_keys < self.sample_keys.max()).nonzero().squeeze(1)
        keys = torch.cat([self.sample_keys, new_keys[candidates]])
        kept = keys.topk(min(self.snd_pixels, keys.numel()), largest=False).indices
        old, new = kept[kept < held], candidates[kept[kept >= held] - held]
        image, pixel = (new // per_image.shape[2]).to(per_image.device), (new % per_image.shape[2]).to(per_image.device)
        self.sample = torch.cat([self.sample[old], per_image[image, :, pixel].float().cpu()])
        self.sample_keys = torch.cat([self.sample_keys[old], new_keys[new]])

    def scores(self) -> dict[str, float]:
        """target_entropy, target_im, target_bnm, target_snd of everything streamed so far."""
        mean_entropy = self.entropy_sum / max(self.pixels, 1)
        mean_probability = self.probability_sum / max(self.pixels, 1)
        return {
            "target_entropy": mean_entropy,
            "target_im": float(normalised_entropy(mean_probability)) - mean_entropy,
            "target_bnm": bnm_from_gram(self.gram, self.pixels),
            "target_snd": soft_neighbourhood_density(self.sample) if len(self.sample) > 1 else math.nan,
        }
