"""The one ADVENT trainer that scripts, notebooks and every Ray trial drive the same way.

``train_step`` follows valeoai/ADVENT's train_UDA.py update order:
segmenter on source (CE) → target losses with the discriminators frozen → discriminators
on detached source and target maps (losses halved) → optimizer steps. It knows nothing
of Ray or Optuna.
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Iterable, Sequence
from contextlib import nullcontext
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from advent_sweep.advent import losses
from advent_sweep.advent.batches import BatchStream
from advent_sweep.advent.config import TrainConfig
from advent_sweep.advent.evaluation import evaluate_segmenters, score_segmenters
from advent_sweep.advent.optim import RepeatedSGD
from advent_sweep.advent.run_logger import RunLogger, entropy_panel, image_panel, label_panel
from advent_sweep.data.palette import palette_for
from advent_sweep.errors import ConfigError, TrainingDiverged
from advent_sweep.model import build_discriminator, build_segmenter

SOURCE_DOMAIN, TARGET_DOMAIN = 0.0, 1.0
LEVELS = ("aux", "main")
EVAL_PANEL_IMAGES = 2  # the first target-val images drawn at each evaluation, the same ones every time


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when present; asking for CUDA on a machine without it is a ConfigError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device: {name!r} asked for but CUDA is not available here; use 'cpu' or 'auto'")
    return torch.device(name)


def resolve_threads(threads: int | None) -> int:
    """A run's torch thread count: the config's, or (None) torch's current one: all cores unless OMP_NUM_THREADS says fewer."""
    return threads or torch.get_num_threads()


def use_deterministic_cuda(enabled: bool) -> None:
    """Deterministic cuDNN and torch CUDA kernels, or the fast defaults back; process-wide, so it outlives the trainer.

    Ops without a deterministic CUDA kernel warn instead of failing (see TrainConfig.deterministic).
    cuBLAS reads CUBLAS_WORKSPACE_CONFIG when it starts in a process; a value already set is kept.
    """
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = enabled
    torch.use_deterministic_algorithms(enabled, warn_only=True)


def poly_factor(iteration: int, horizon: int, power: float) -> float:
    """Poly schedule (1 − i/T)^power with T the poly horizon (250k officially, past the 120k stop)."""
    return (1.0 - iteration / horizon) ** power


class Trainer:
    """ADVENT training of a DeepLab-V2 segmenter (and its discriminators) on one domain pair.

    ``source`` and ``target`` are datasets of (image in [0, 1], label); the target's labels
    are never read in training. ``class_prior`` is p_s, needed when μ > 0 (μ is ignored by
    source_only, which never looks at the target).

    ``logger`` (advent/run_logger.py) receives the losses every ``config.log_interval`` iterations,
    image panels every ``config.viz_interval`` and each evaluation, at the trainer iteration; it may
    be set or replaced later (``trainer.logger = ...``); None logs nothing.
    """

    def __init__(
        self,
        config: TrainConfig,
        source: Dataset,
        target: Dataset,
        *,
        num_classes: int = 19,
        class_names: Sequence[str] | None = None,
        class_prior: Sequence[float] | None = None,
        logger: RunLogger | None = None,
    ) -> None:
        if config.class_prior_mu > 0 and class_prior is None:
            raise ConfigError("class_prior_mu > 0 needs the source class prior p_s; pass class_prior")
        if class_prior is not None and len(class_prior) != num_classes:
            raise ConfigError(
                f"class_prior has {len(class_prior)} entries but num_classes is {num_classes}; "
                "p_s needs one entry per class"
            )
        # Before anything is built: the thread count fixes the float summation order (see TrainConfig.threads).
        self.threads = resolve_threads(config.threads)
        torch.set_num_threads(self.threads)
        self.config = config.model_copy(update={"threads": self.threads})
        self.num_classes = num_classes
        self.class_names = tuple(class_names) if class_names else tuple(str(c) for c in range(num_classes))
        self.class_prior = None if class_prior is None else torch.tensor(class_prior, dtype=torch.float32)
        self.device = resolve_device(config.device)
        if self._cuda:
            use_deterministic_cuda(config.deterministic)
        self.iteration = 0
        self.logger = logger
        self.palette = palette_for(self.class_names)
        torch.manual_seed(config.seed)

        self.segmenter = build_segmenter(config.backbone, num_classes, config.multi_level, config.weights).to(self.device)
        if config.bn_momentum is not None:
            for module in self.segmenter.modules():
                if isinstance(module, nn.BatchNorm2d):
                    module.momentum = config.bn_momentum
        self.segmenter.train()
        levels = LEVELS if config.multi_level else ("main",)
        self.discriminators = nn.ModuleDict(
            {level: build_discriminator(num_classes) for level in levels} if config.uses_discriminator else {}
        ).to(self.device)
        self.discriminators.train()
        if self._cuda and config.channels_last:
            self.segmenter.to(memory_format=torch.channels_last)

        # "official" updates backbone params several times per step, as valeoai/ADVENT's optimizer does (DESIGN.md).
        self.optimizer = RepeatedSGD(
            self.segmenter.parameter_groups(config.lr, config.param_repeats),
            lr=config.lr,
            momentum=config.momentum,
            weight_decay=config.weight_decay,
        )
        self.discriminator_optimizers = {
            level: torch.optim.Adam(d.parameters(), lr=config.lr_discriminator, betas=(0.9, 0.99))
            for level, d in self.discriminators.items()
        }
        schedule = lambda i: poly_factor(i, config.poly_horizon, config.poly_power)  # noqa: E731
        self.schedulers = [torch.optim.lr_scheduler.LambdaLR(o, schedule) for o in self._optimizers]
        self.scaler = torch.amp.GradScaler("cuda", enabled=self._cuda and config.amp == "fp16")
        self.forward = torch.compile(self.segmenter) if config.compile else self.segmenter

        workers, pin = config.data.num_workers, self._cuda
        self.source_batches = BatchStream(source, config.batch_size_source, config.seed, workers, pin)
        self.target_batches = BatchStream(target, config.batch_size_target, config.seed + 1, workers, pin)

    @property
    def _cuda(self) -> bool:
        return self.device.type == "cuda"

    @property
    def _optimizers(self) -> list[torch.optim.Optimizer]:
        return [self.optimizer, *self.discriminator_optimizers.values()]

    def _autocast(self) -> Any:
        if not self._cuda or self.config.amp == "off":
            return nullcontext()
        return torch.autocast("cuda", dtype=torch.bfloat16 if self.config.amp == "bf16" else torch.float16)

    def _to_device(self, images: Tensor) -> Tensor:
        images = images.to(self.device, non_blocking=True)
        return images.contiguous(memory_format=torch.channels_last) if self._cuda and self.config.channels_last else images

    def _predict(self, images: Tensor) -> dict[str, Tensor]:
        """Logits of each output level, upsampled (bilinear, align_corners) to the input size."""
        with self._autocast():
            aux, main = self.forward(images)
        size = images.shape[-2:]
        outputs = {"main": main} if aux is None else {"aux": aux, "main": main}
        return {level: F.interpolate(x.float(), size=size, mode="bilinear", align_corners=True) for level, x in outputs.items()}

    def _backward(self, loss: Tensor) -> None:
        if loss.requires_grad:
            self.scaler.scale(loss).backward()

    def _set_discriminators_trainable(self, trainable: bool) -> None:
        for parameter in self.discriminators.parameters():
            parameter.requires_grad_(trainable)

    def train_step(self, source_images: Tensor, source_labels: Tensor, target_images: Tensor) -> dict[str, float]:
        """One iteration in the official order; returns this iteration's losses as floats."""
        config = self.config
        weight = {"seg": {"main": config.lambda_seg_main, "aux": config.lambda_seg_aux},
                  "ent": {"main": config.lambda_ent_main, "aux": config.lambda_ent_aux},
                  "adv": {"main": config.lambda_adv_main, "aux": config.lambda_adv_aux}}
        for optimizer in self._optimizers:
            optimizer.zero_grad(set_to_none=True)
        self._set_discriminators_trainable(False)
        step_losses: dict[str, Tensor] = {}
        probes: dict[str, Tensor] = {}  # logged beside the losses on logging steps
        panels: dict[str, Tensor] = {}  # what the panels draw, on panel steps
        logs, draws = self._logging_due()

        # 1. supervised segmentation on source
        source_labels = source_labels.to(self.device, non_blocking=True)
        source_logits = self._predict(self._to_device(source_images))
        for level, logits in source_logits.items():
            step_losses[f"loss_seg_src_{level}"] = losses.segmentation_loss(logits, source_labels)
        self._backward(sum(weight["seg"][level] * step_losses[f"loss_seg_src_{level}"] for level in source_logits))
        if draws:
            panels.update(source_image=source_images[0], source_label=source_labels[0],
                          source_prediction=source_logits["main"][0].detach().argmax(dim=0))

        if config.method == "source_only":  # no target forward: its target panels come at evaluation only
            return self._finish(step_losses, probes if logs else None, panels)

        # 2. target losses, discriminators frozen: MinEnt, AdvEnt (fool D: call target "source"), L_cp
        target_logits = self._predict(self._to_device(target_images))
        target_maps: dict[str, Tensor] = {}
        target_loss = torch.zeros((), device=self.device)
        for level, logits in target_logits.items():
            probabilities = F.softmax(logits, dim=1)
            information = losses.self_information_map(probabilities)
            in_range = losses.entropy_range_mask(information.sum(dim=1).detach(), config.entropy_low, config.entropy_high)
            target_maps[level] = information
            if config.uses_entropy_loss:
                step_losses[f"loss_ent_trg_{level}"] = losses.entropy_loss(probabilities, in_range)
                target_loss = target_loss + weight["ent"][level] * step_losses[f"loss_ent_trg_{level}"]
            if config.uses_discriminator:
                masked = torch.where(in_range.unsqueeze(1), information, information.detach())
                step_losses[f"loss_adv_trg_{level}"] = losses.adversarial_loss(self.discriminators[level](masked), SOURCE_DOMAIN)
                target_loss = target_loss + weight["adv"][level] * step_losses[f"loss_adv_trg_{level}"]
            if level == "main" and config.class_prior_mu > 0:
                step_losses["loss_class_prior"] = losses.class_ratio_prior_loss(
                    probabilities, self.class_prior, config.class_prior_mu, in_range
                )
                target_loss = target_loss + step_losses["loss_class_prior"]
        self._backward(target_loss)
        if draws:
            panels.update(target_image=target_images[0], target_prediction=target_logits["main"][0].detach().argmax(dim=0),
                          target_entropy=target_maps["main"][0].detach().sum(dim=0))

        # 3. discriminators on detached maps: source → 0, target → 1, each loss halved
        if config.uses_discriminator:
            self._set_discriminators_trainable(True)
            for level, discriminator in self.discriminators.items():
                source_map = losses.self_information_map(F.softmax(source_logits[level].detach(), dim=1))
                source_out, target_out = discriminator(source_map), discriminator(target_maps[level].detach())
                loss_source = losses.adversarial_loss(source_out, SOURCE_DOMAIN) / 2
                loss_target = losses.adversarial_loss(target_out, TARGET_DOMAIN) / 2
                self._backward(loss_source + loss_target)
                step_losses[f"loss_d_{level}"] = loss_source + loss_target
                if logs:
                    probes[f"discriminator/source_{level}"] = torch.sigmoid(source_out.detach()).mean()
                    probes[f"discriminator/target_{level}"] = torch.sigmoid(target_out.detach()).mean()
        return self._finish(step_losses, probes if logs else None, panels)

    def _logging_due(self) -> tuple[bool, bool]:
        """Whether the iteration about to run logs its scalars, and whether it draws panels (steps count from 1)."""
        if self.logger is None:
            return False, False
        step, config = self.iteration + 1, self.config
        return (config.log_interval > 0 and step % config.log_interval == 0,
                config.viz_interval > 0 and step % config.viz_interval == 0)

    def _finish(self, step_losses: dict[str, Tensor], probes: dict[str, Tensor] | None = None,
                panels: dict[str, Tensor] | None = None) -> dict[str, float]:
        """Check for divergence before any weight moves, then step every optimizer and schedule, then log.

        ``probes`` (None: not a logging step) are read in the same device sync as the losses.
        """
        names = list(step_losses)
        probe_names = list(probes or {})
        values = torch.stack([step_losses[name].detach().float() for name in names]
                             + [probes[name].float() for name in probe_names]).tolist()
        reported = dict(zip(names, values))
        if not all(math.isfinite(v) for v in values[:len(names)]):
            raise TrainingDiverged(self.iteration, reported)
        learning_rates = self._learning_rates() if probes is not None else {}
        for optimizer in self._optimizers:
            self.scaler.step(optimizer)
        self.scaler.update()
        for scheduler in self.schedulers:
            scheduler.step()
        self.iteration += 1
        if probes is not None:
            self.logger.scalars(self.iteration, {**{f"loss/{name.removeprefix('loss_')}": value for name, value in reported.items()},
                                                 **learning_rates, **dict(zip(probe_names, values[len(names):]))})
        if panels:
            self.logger.images(self.iteration, self._draw(panels, "train/"))
        return reported

    def _learning_rates(self) -> dict[str, float]:
        """The learning rates this step uses (the schedules move them after it)."""
        rates = {"lr/segmenter": self.optimizer.param_groups[0]["lr"], "lr/segmenter_heads": self.optimizer.param_groups[-1]["lr"]}
        if self.discriminator_optimizers:
            rates["lr/discriminator"] = next(iter(self.discriminator_optimizers.values())).param_groups[0]["lr"]
        return rates

    def _draw(self, panels: dict[str, Tensor], prefix: str) -> dict[str, np.ndarray]:
        """Images, label maps (in the dataset's colours) and entropy maps as H×W×3 uint8 panels, tagged by name."""
        drawn = {}
        for name, tensor in panels.items():
            if name.endswith("image"):
                drawn[prefix + name] = image_panel(tensor)
            elif name.endswith("entropy"):
                drawn[prefix + name] = entropy_panel(tensor)
            else:
                drawn[prefix + name] = label_panel(tensor, self.palette)
        return drawn

    def step(self) -> dict[str, float]:
        """Draw the next source and target batches and run one ``train_step``."""
        source_images, source_labels = self.source_batches.next()[:2]
        target_images = self.target_batches.next()[0]
        return self.train_step(source_images, source_labels, target_images)

    def evaluate(self, data: Dataset | Iterable, source_val: Dataset | Iterable | None = None) -> dict[str, float]:
        """Target mIoU, per-class IoU (0–100) and the label-free validators on ``data`` (target val).

        SYNTHIA → Cityscapes (the 16-class protocol) adds ``target_miou_13``, the paper's mIoU*.
        ``source_val`` (held-out labelled source images) adds ``source_val_miou``.

        Weights can turn non-finite in the update after the last finite loss; their predictions
        are no evaluation (argmax of NaN is class 0 everywhere), so a non-finite entropy raises
        TrainingDiverged instead of reporting an mIoU.
        """
        self.segmenter.train(False)
        try:
            metrics = evaluate_segmenters([(self.forward, 1.0)], self._eval_loader(data), self.num_classes,
                                          self.class_names, self.device, self._to_device, self._autocast)
            if source_val is not None and math.isfinite(metrics["target_entropy"]):
                confusion = score_segmenters([(self.forward, 1.0)], self._eval_loader(source_val), self.num_classes,
                                             self.device, self._to_device, self._autocast)
                metrics["source_val_miou"] = confusion.mean_iou() * 100
        finally:
            self.segmenter.train()
        if not math.isfinite(metrics["target_entropy"]):
            raise TrainingDiverged(self.iteration, {"target_entropy": metrics["target_entropy"]})
        if self.logger is not None:
            self.logger.scalars(self.iteration, {(f"iou/{name[4:]}" if name.startswith("iou.") else f"eval/{name}"): value
                                                 for name, value in metrics.items()})
            if self.config.viz_interval > 0:
                self.logger.images(self.iteration, self._evaluation_panels(data))
        return metrics

    @torch.no_grad()
    def _evaluation_panels(self, data: Dataset | Iterable) -> dict[str, np.ndarray]:
        """Image, label, prediction and entropy of the first EVAL_PANEL_IMAGES target-val images, predicted as
        ``evaluate`` does (BN statistics, logits upsampled to the label's size)."""
        panels: dict[str, Tensor] = {}
        self.segmenter.train(False)
        try:
            for images, labels, *_ in self._eval_loader(data):
                count = min(len(images), EVAL_PANEL_IMAGES - len(panels) // 4)
                with self._autocast():
                    main = self.forward(self._to_device(images[:count]))[1]
                logits = F.interpolate(main.float(), size=labels.shape[-2:], mode="bilinear", align_corners=True)
                entropy = losses.self_information_map(F.softmax(logits, dim=1)).sum(dim=1)
                for offset in range(count):
                    k = len(panels) // 4
                    panels.update({f"{k}/image": images[offset], f"{k}/label": labels[offset],
                                   f"{k}/prediction": logits[offset].argmax(dim=0), f"{k}/entropy": entropy[offset]})
                if len(panels) // 4 >= EVAL_PANEL_IMAGES:
                    break
        finally:
            self.segmenter.train()
        return self._draw(panels, "val/")

    def _eval_loader(self, data: Dataset | Iterable) -> Iterable:
        if isinstance(data, (DataLoader, list)):
            return data
        return DataLoader(data, batch_size=self.config.eval_batch_size, num_workers=self.config.data.num_workers,
                          pin_memory=self._cuda)

    def state_dict(self) -> dict[str, Any]:
        """Everything an exact resume needs, as a plain dict that ``torch.load`` opens."""
        return {
            "config": self.config.model_dump(mode="json"),
            "iteration": self.iteration,
            "segmenter": self.segmenter.state_dict(),
            "discriminators": {k: d.state_dict() for k, d in self.discriminators.items()},
            "optimizer": self.optimizer.state_dict(),
            "discriminator_optimizers": {k: o.state_dict() for k, o in self.discriminator_optimizers.items()},
            "schedulers": [s.state_dict() for s in self.schedulers],
            "scaler": self.scaler.state_dict(),
            "data_order": {"source": self.source_batches.state_dict(), "target": self.target_batches.state_dict()},
            "rng": {
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if self._cuda else [],
                "numpy": np.random.get_state(),
                "python": random.getstate(),
            },
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a ``state_dict()``: weights, optimizers, schedules, scaler, data order and RNGs."""
        self.iteration = state["iteration"]
        self.segmenter.load_state_dict(state["segmenter"])
        for level, d in self.discriminators.items():
            d.load_state_dict(state["discriminators"][level])
        self.optimizer.load_state_dict(state["optimizer"])
        for level, o in self.discriminator_optimizers.items():
            o.load_state_dict(state["discriminator_optimizers"][level])
        for scheduler, saved in zip(self.schedulers, state["schedulers"]):
            scheduler.load_state_dict(saved)
        self.scaler.load_state_dict(state["scaler"])
        self.source_batches.load_state_dict(state["data_order"]["source"])
        self.target_batches.load_state_dict(state["data_order"]["target"])
        rng = state["rng"]
        torch.set_rng_state(rng["torch"])
        if self._cuda and rng["cuda"]:
            torch.cuda.set_rng_state_all(rng["cuda"])
        np.random.set_state(rng["numpy"])
        random.setstate(rng["python"])
