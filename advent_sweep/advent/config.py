"""TrainConfig: every hyperparameter of one ADVENT run, with the official defaults.

Defaults are those of valeoai/ADVENT (advent/domain_adaptation/config.py) for
GTA5 → Cityscapes with DeepLab-V2 ResNet-101; a YAML file with these keys (and a
``data`` section) is what ``advent-sweep train`` runs and ``advent-sweep best`` writes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from advent_sweep.data.config import DataConfig
from advent_sweep.validation import load_yaml

Method = Literal["source_only", "minent", "advent", "advent_minent"]
METHODS_WITH_DISCRIMINATOR = ("advent", "advent_minent")
METHODS_WITH_ENTROPY_LOSS = ("minent", "advent_minent")
OFFICIAL_REPEATS_BACKBONE = "resnet101"
# The official 1 costs more than 3% of a step on the quickstart (benchmarks/README.md, trainer_speed): the smallest that does not.
LOG_INTERVAL_DEFAULT = 1  # the official v1 DeepLab-V2 whose optim_parameters repeats parameters


class SourceWarmup(BaseModel):
    """A source-only model that every run with these settings starts from (see advent/warmup.py).

    It inherits the run's backbone, weights, source batch size, threads and data; its own
    iterations (with a poly schedule over them), learning rate and seed are set here.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    iterations: int = Field(ge=1)
    lr: float = Field(gt=0.0)
    seed: int = 0


class TrainConfig(BaseModel):
    """One ADVENT training run (the symbols are the paper's: λ, μ, [e_lo, e_hi])."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: Method = "advent"
    backbone: str = "resnet101"
    weights: str | None = None
    # Start from a cached source-only model instead of `weights` alone: the shared pretrained start that
    # ADVENT papers assume, for backbones trained from scratch (the synthetic benchmark). None: no warm-up.
    source_warmup: SourceWarmup | None = None
    multi_level: bool = True
    param_repeats: Literal["official", "unique"] = "official"  # left out: official for resnet101, else unique

    lambda_seg_main: float = Field(1.0, ge=0.0)
    lambda_seg_aux: float = Field(0.1, ge=0.0)
    lambda_ent_main: float = Field(1e-3, ge=0.0)
    lambda_ent_aux: float = Field(2e-4, ge=0.0)
    lambda_adv_main: float = Field(1e-3, ge=0.0)
    lambda_adv_aux: float = Field(2e-4, ge=0.0)
    class_prior_mu: float = Field(0.0, ge=0.0, le=1.0)
    entropy_low: float = Field(0.0, ge=0.0, le=1.0)
    entropy_high: float = Field(1.0, ge=0.0, le=1.0)

    lr: float = Field(2.5e-4, gt=0.0)
    lr_discriminator: float = Field(1e-4, gt=0.0)
    momentum: float = Field(0.9, ge=0.0, lt=1.0)
    weight_decay: float = Field(5e-4, ge=0.0)
    poly_power: float = Field(0.9, ge=0.0)
    iterations: int = Field(120_000, ge=1)
    poly_horizon: int = Field(250_000, ge=1)
    batch_size_source: int = Field(1, ge=1)
    batch_size_target: int = Field(1, ge=1)
    eval_batch_size: int = Field(1, ge=1)
    eval_interval: int = Field(2_000, ge=1)
    log_interval: int = Field(LOG_INTERVAL_DEFAULT, ge=0, description=(
        "every how many trainer iterations the losses, learning rates and discriminator outputs go to the run's "
        f"logger (TensorBoard); default {LOG_INTERVAL_DEFAULT} (the official code logs every iteration); 0: never; "
        "unit: iterations"))
    viz_interval: int = Field(100, ge=0, description=(
        "every how many trainer iterations image panels (source and target image, ground truth, colourised "
        "prediction, entropy map) of the batch just trained on go to the run's logger; default 100 (the official "
        "TENSORBOARD_VIZRATE); 0: no panels, also none at evaluation; unit: iterations"))

    seed: int = 0
    device: str = "auto"
    amp: Literal["off", "bf16", "fp16"] = "off"
    channels_last: bool = True
    compile: bool = False
    # Momentum of the segmenter's BN running statistics, which evaluation uses. None keeps PyTorch's 0.1, as the
    # official code; a smaller value averages them over more batches (0.01: about the last 100), so that a
    # run's score depends less on its last few small target batches (the synthetic quickstart's noise floor).
    bn_momentum: float | None = Field(None, gt=0.0, le=1.0)
    # torch intra-op threads: the count sets the float summation order, so a rerun matches bit for bit only
    # with the same one. None: all of this machine's (what torch has when the Trainer is built); a sweep sets it
    # from resources.cpu, and the run's config.yaml records the count used.
    threads: int | None = Field(None, ge=1)
    # CUDA only (CPU runs are already deterministic given threads): deterministic cuDNN and torch kernels, at a
    # cost in speed. Warn-only, since torch has no deterministic CUDA kernel for three ops used here, which stay
    # non-deterministic: the backward of the logits' bilinear upsampling, the cross-entropy's nll_loss2d
    # (forward), and with mobilenet_v3 the backward of AdaptiveAvgPool2d (its squeeze-excitation blocks).
    deterministic: bool = False

    data: DataConfig = DataConfig()

    @field_validator("backbone")
    @classmethod
    def _known_backbone(cls, name: str) -> str:
        from advent_sweep.model import BACKBONES

        if name not in BACKBONES:
            raise ValueError(f"unknown backbone {name!r}; allowed: {', '.join(sorted(BACKBONES))}")
        return name

    @field_validator("device")
    @classmethod
    def _known_device(cls, device: str) -> str:
        if device not in ("auto", "cpu", "cuda") and not device.startswith("cuda:"):
            raise ValueError(f"unknown device {device!r}; allowed: auto, cpu, cuda, cuda:N")
        return device

    @model_validator(mode="before")
    @classmethod
    def _default_param_repeats(cls, values: Any) -> Any:
        """Only the official ResNet-101 recipe lists parameters repeatedly; other backbones list each once."""
        if isinstance(values, dict) and "param_repeats" not in values:
            backbone = values.get("backbone", OFFICIAL_REPEATS_BACKBONE)
            values = {**values, "param_repeats": "official" if backbone == OFFICIAL_REPEATS_BACKBONE else "unique"}
        return values

    @model_validator(mode="after")
    def _consistent(self) -> "TrainConfig":
        if self.amp == "fp16" and self.param_repeats == "official":
            raise ValueError(
                "amp: fp16 cannot be combined with param_repeats: official (the default for resnet101): the fp16 "
                "GradScaler unscales a gradient once per listing, so repeated parameters get wrong updates; "
                "allowed: amp: bf16 (or off) with official, or param_repeats: unique with fp16"
            )
        if self.entropy_low > self.entropy_high:
            raise ValueError(f"entropy_low ({self.entropy_low}) must not exceed entropy_high ({self.entropy_high})")
        if self.iterations > self.poly_horizon:
            raise ValueError(f"iterations ({self.iterations}) must not exceed poly_horizon ({self.poly_horizon})")
        return self

    @property
    def uses_discriminator(self) -> bool:
        """AdvEnt's discriminators D (one per level) are built: advent and advent_minent."""
        return self.method in METHODS_WITH_DISCRIMINATOR

    @property
    def uses_entropy_loss(self) -> bool:
        """MinEnt's L_ent is applied to target predictions: minent and advent_minent."""
        return self.method in METHODS_WITH_ENTROPY_LOSS

    @classmethod
    def from_yaml(cls, path: str | Path) -> "TrainConfig":
        """Load a run file; ConfigError names the file and every bad field."""
        return load_yaml(cls, path)
