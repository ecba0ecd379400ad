"""The label-free validators: one table of their names, directions and references.

A validator scores a snapshot without target labels, so that a sweep can choose
snapshots and configurations as unsupervised domain adaptation must. The trainer
computes them (advent/validators.py), a sweep may optimise one, and the analysis ranks
them against target mIoU; all three read this table, which needs neither torch nor Ray.
In the meanings, p_n is the softmax of target-val pixel n and H the entropy with log base C.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ACCURACY = "target_miou"  # the oracle every validator is measured against


@dataclass(frozen=True)
class Validator:
    """A label-free score of a snapshot and the direction in which it is better."""

    name: str
    mode: Literal["max", "min"]
    meaning: str
    reference: str


VALIDATORS = {
    validator.name: validator
    for validator in (
        Validator("target_entropy", "min", "mean_n H(p_n), the mean normalised prediction entropy on target val",
                  "Vu et al., CVPR 2019 (ADVENT minimises it)"),
        Validator("target_im", "max", "information maximisation H(p̄) − mean_n H(p_n), p̄ = mean_n p_n",
                  "Shi & Sha, ICML 2012; Liang et al. (SHOT), ICML 2020"),
        Validator("target_bnm", "max", "batch nuclear-norm ‖P‖_* / N of the N×C target prediction matrix",
                  "Cui et al., CVPR 2020; as a validator, Musgrave et al., 2022"),
        Validator("target_snd", "max", "soft neighbourhood density: mean entropy of softmax(cosine / 0.05) over sampled pixels",
                  "Saito et al., ICCV 2021"),
        Validator("source_val_miou", "max", "mIoU on a held-out labelled source split",
                  "the source-risk baseline of You et al., ICML 2019"),
    )
}

# How a trial's snapshot is chosen: its best report under the sweep's metric, its last one, or by a validator.
SELECTION_RULES = ("best", "last", *VALIDATORS)
