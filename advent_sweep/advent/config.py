"""TrainConfig: every hyperparameter of one ADVENT run, with the official defaults.

Defaults are those of valeoai/ADVENT (advent/domain_adaptation/config.py) for
GTA5 → Cityscapes with DeepLab-V2 ResNet-101; a YAML file with these keys (and a
``data`` section) is what ``advent-sweep train`` runs and ``advent-sweep best`` writes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from advent_sweep.advent.snapshots import DEFAULT_RULES, check_rules
from advent_sweep.data.config import DataConfig
from advent_sweep.validation import load_yaml

Method = Literal["source_only", "minent", "advent", "advent_minent"]
METHODS_WITH_DISCRIMINATOR = ("advent", "advent_minent")
METHODS_WITH_ENTROPY_LOSS = ("minent", "advent_minent")
OFFICIAL_REPEATS_BACKBONE = "resnet101"  # the official v1 DeepLab-V2 whose optim_parameters repeats parameters
# The official 1: logging every iteration costs well under 3% of a quickstart step (benchmarks/README.md, trainer_speed).
LOG_INTERVAL_DEFAULT = 1


class SourceWarmup(BaseModel):
    """A source-only model that every run with these settings starts from (see advent/warmup.py).

    It inherits the run's backbone, weights, source batch size, threads and data; its own
    iterations (with a poly schedule over them), learning rate and seed are set here.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    iterations: int = Field(ge=1, description="Source-only iterations of the warm-up, with a poly schedule over them. Required.")
    lr: float = Field(gt=0.0, description="The warm-up's segmenter learning rate (heads 10×). Required.")
    seed: int = Field(0, description="The warm-up's training seed. Default: 0.")


class TrainConfig(BaseModel):
    """One ADVENT training run (the symbols are the paper's: λ, μ, [e_lo, e_hi])."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: Method = Field(
        "advent", description="source_only (L_seg only), minent (+ λ_ent · L_ent), advent (+ λ_adv · L_adv, discriminators D) or "
        "advent_minent (both jointly). Default: advent."
    )
    backbone: str = Field(
        "resnet101", description="The DeepLab-V2 backbone: resnet101 (the official ResNet v1), resnet101_torchvision, vgg16, "
        "or the small CPU backbones resnet18, mobilenet_v3. Default: resnet101."
    )
    weights: str | None = Field(
        None, description="Initial backbone weights: a torchvision weights name (e.g. ResNet101_Weights.IMAGENET1K_V1), a "
        "state-dict file (e.g. DeepLab_resnet_pretrained_imagenet.pth), or null (random init). Default: null."
    )
    # Start from a cached source-only model instead of `weights` alone: the shared pretrained start that
    # ADVENT papers assume, for backbones trained from scratch (the synthetic benchmark). None: no warm-up.
    source_warmup: SourceWarmup | None = Field(
        None, description="A cached source-only model every run with these settings starts from. Default: null (none)."
    )
    multi_level: bool = Field(
        True, description="Two output levels (auxiliary head on layer3, main on layer4), each with its own D. Default: true."
    )
    param_repeats: Literal["official", "unique"] = Field(
        "official", description="official: the backbone parameters listed as often as the official optim_parameters lists "
        "them (an effective ~3× backbone lr); unique: each once. Default: official for resnet101, else unique."
    )

    lambda_seg_main: float = Field(1.0, ge=0.0, description="λ_seg of the main head's source cross-entropy. Default: 1.0.")
    lambda_seg_aux: float = Field(0.1, ge=0.0, description="λ_seg of the auxiliary head's source cross-entropy. Default: 0.1.")
    lambda_ent_main: float = Field(1e-3, ge=0.0, description="λ_ent of the main head's target entropy loss L_ent (minent). Default: 1e-3.")
    lambda_ent_aux: float = Field(2e-4, ge=0.0, description="λ_ent of the auxiliary head's L_ent. Default: 2e-4.")
    lambda_adv_main: float = Field(1e-3, ge=0.0, description="λ_adv of the main head's adversarial loss L_adv (advent). Default: 1e-3.")
    lambda_adv_aux: float = Field(2e-4, ge=0.0, description="λ_adv of the auxiliary head's L_adv. Default: 2e-4.")
    class_prior_mu: float = Field(
        0.0, ge=0.0, le=1.0, description="μ of the class-ratio prior L_cp = Σ_c max(0, μ·p_s(c) − p_t(c)); 0 turns it off. "
        "Default: 0; in [0, 1]."
    )
    entropy_low: float = Field(
        0.0, ge=0.0, le=1.0, description="e_lo: only target pixels with normalised entropy in [e_lo, e_hi] feed the target "
        "losses. Default: 0; in [0, 1], <= entropy_high."
    )
    entropy_high: float = Field(1.0, ge=0.0, le=1.0, description="e_hi, the top of the entropy range. Default: 1 (the plain method); in [0, 1].")

    lr: float = Field(2.5e-4, gt=0.0, description="The segmenter's SGD learning rate for the backbone (the heads get 10×). Default: 2.5e-4.")
    lr_discriminator: float = Field(1e-4, gt=0.0, description="The discriminators' Adam learning rate. Default: 1e-4.")
    momentum: float = Field(0.9, ge=0.0, lt=1.0, description="The segmenter's SGD momentum. Default: 0.9; in [0, 1).")
    weight_decay: float = Field(5e-4, ge=0.0, description="The segmenter's SGD weight decay. Default: 5e-4.")
    poly_power: float = Field(0.9, ge=0.0, description="Power of the poly schedule lr · (1 − i / poly_horizon)^power. Default: 0.9.")
    iterations: int = Field(120_000, ge=1, description="When training stops (the official EARLY_STOP), in iterations. Default: 120000.")
    poly_horizon: int = Field(
        250_000, ge=1, description="Length of the poly schedule (the official MAX_ITERS), in iterations; >= iterations. Default: 250000."
    )
    batch_size_source: int = Field(1, ge=1, description="Source images per iteration. Default: 1.")
    batch_size_target: int = Field(1, ge=1, description="Target images per iteration. Default: 1.")
    eval_batch_size: int = Field(1, ge=1, description="Images per batch at evaluation. Default: 1.")
    eval_interval: int = Field(
        2_000, ge=1, description="Evaluate on target val (and report, in a sweep) every this many iterations. Default: 2000."
    )
    log_interval: int = Field(LOG_INTERVAL_DEFAULT, ge=0, description=(
        "Send the losses, learning rates and discriminator outputs to the run's logger (TensorBoard, trackers) every "
        f"this many iterations; 0: never. Default: {LOG_INTERVAL_DEFAULT} (the official code logs every iteration)."))
    viz_interval: int = Field(100, ge=0, description=(
        "Draw image panels (source and target image, ground truth, colourised prediction, entropy map) of the batch "
        "just trained on every this many iterations, and of two target-val images at each evaluation; 0: none. "
        "Default: 100 (the official TENSORBOARD_VIZRATE)."))

    seed: int = Field(0, description="The training seed (initialisation, data order). Default: 0.")
    device: str = Field("auto", description="auto (CUDA if there is a GPU, else CPU), cpu, cuda or cuda:N. Default: auto.")
    amp: Literal["off", "bf16", "fp16"] = Field(
        "off", description="Mixed precision on CUDA: off, bf16 or fp16 (fp16 needs param_repeats: unique). Default: off."
    )
    channels_last: bool = Field(True, description="channels_last memory format on CUDA. Default: true.")
    compile: bool = Field(False, description="torch.compile the segmenter. Default: false.")
    # Momentum of the segmenter's BN running statistics, which evaluation uses. None keeps PyTorch's 0.1, as the
    # official code; a smaller value averages them over more batches (0.01: about the last 100), so that a
    # run's score depends less on its last few small target batches (the synthetic quickstart's noise floor).
    bn_momentum: float | None = Field(
        None, gt=0.0, le=1.0, description="Momentum of the segmenter's BN running statistics (used at evaluation); 0.01 "
        "averages about the last 100 batches. Default: null (PyTorch's 0.1, as the official code); in (0, 1]."
    )
    # torch intra-op threads: the count sets the float summation order, so a rerun matches bit for bit only
    # with the same one. None: all of this machine's (what torch has when the Trainer is built); a sweep sets it
    # from resources.cpu, and the run's config.yaml records the count used.
    threads: int | None = Field(
        None, ge=1, description="torch intra-op threads (a rerun matches bit for bit only with the same count), in threads. "
        "Default: null (all of the machine's; a sweep sets it from resources.cpu)."
    )
    # CUDA only (CPU runs are already deterministic given threads): deterministic cuDNN and torch kernels, at a
    # cost in speed. Warn-only, since torch has no deterministic CUDA kernel for three ops used here, which stay
    # non-deterministic: the backward of the logits' bilinear upsampling, the cross-entropy's nll_loss2d
    # (forward), and with mobilenet_v3 the backward of AdaptiveAvgPool2d (its squeeze-excitation blocks).
    deterministic: bool = Field(
        False, description="Deterministic cuDNN and torch kernels on CUDA (warn-only; slower). Default: false."
    )
    keep_snapshots: tuple[str, ...] = Field(
        DEFAULT_RULES,
        description="Selection rules (best, last, or a label-free validator) whose preferred report the run keeps as a "
        "model-only snapshot in snapshots/ at each evaluation; best is by target_miou for `train`, by the sweep's metric "
        "in a sweep; [] keeps none. Default: [best].",
    )

    data: DataConfig = Field(DataConfig(), description="The domain pair (source → target). Default: the synthetic benchmark.")

    @field_validator("backbone")
    @classmethod
    def _known_backbone(cls, name: str) -> str:
        from advent_sweep.model import BACKBONES

        if name not in BACKBONES:
            raise ValueError(f"unknown backbone {name!r}; allowed: {', '.join(sorted(BACKBONES))}")
        return name

    @field_validator("keep_snapshots")
    @classmethod
    def _known_rules(cls, rules: tuple[str, ...]) -> tuple[str, ...]:
        return check_rules(rules)

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
