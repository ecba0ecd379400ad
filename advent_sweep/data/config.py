"""Which source and target datasets a run uses, where they are, and at what size.

Sizes are (width, height), as in the official code's INPUT_SIZE_SOURCE/TARGET. Real
datasets are resized whole, never cropped, as the official pipeline does.
``source_val_list`` names held-out source images (same format as ``source_list``) for
source-val mIoU, a model-selection score that needs no target labels.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

SourceName = Literal["synthetic", "gta5", "synthia"]
TargetName = Literal["synthetic", "cityscapes"]
Size = tuple[int, int]
Level = Annotated[float, Field(ge=0.0, le=255.0)]  # a colour channel or a std, on 0–255
Gain = Annotated[float, Field(gt=0.0)]
RGB = tuple[Level, Level, Level]
PerClass = tuple[Level, Level, Level, Level, Level, Level, Level]  # the benchmark's 7 classes, in class order


class TargetStyle(BaseModel):
    """Overrides of the built-in target rendering style (``synthetic.Style``): the benchmark's shift, to calibrate.

    Every field left out keeps the built-in target value; the source style never changes, so
    a source-only model is the same under any target style.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    palette: tuple[RGB, RGB, RGB, RGB, RGB, RGB, RGB] | None = None  # mean colour of each class
    colour_jitter: PerClass | None = None  # per-image std of each class's colour
    texture: float | None = Field(None, ge=0.0)  # windows, paving, leaves, sky gradient (0 = flat)
    brightness: Gain | None = None
    contrast: float | None = Field(None, ge=0.0)  # around each image's mean; < 1 flattens
    gamma: Gain | None = None  # > 1 darkens mid-tones
    tint: tuple[Gain, Gain, Gain] | None = None  # per-channel gain
    blur: float | None = Field(None, ge=0.0)  # Gaussian sigma in pixels at 64 px height
    noise: Level | None = None  # std of per-pixel sensor noise


class SyntheticConfig(BaseModel):
    """The embedded benchmark: procedural street scenes in a source and a shifted target style."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int = 0
    size: Size = (64, 64)
    num_train: int = Field(200, ge=1)
    num_val: int = Field(50, ge=1)
    target_style: TargetStyle | None = None  # the built-in target style when left out


class DataConfig(BaseModel):
    """The domain pair of one run: source (labelled) → target (unlabelled in training)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: SourceName = "synthetic"
    target: TargetName = "synthetic"
    source_root: str | None = None
    target_root: str | None = None
    source_list: str | None = None
    source_val_list: str | None = None  # held out: none of its images may be in the training source
    target_list: str | None = None
    target_val_list: str | None = None
    target_split: str = "train"
    target_val_split: str = "val"
    protocol: Literal[19, 16] | None = None
    source_size: Size = (1280, 720)
    target_size: Size = (1024, 512)
    eval_size: Size = (1024, 512)
    synthetic: SyntheticConfig = SyntheticConfig()
    num_workers: int = Field(0, ge=0)

    @field_validator("protocol", mode="before")
    @classmethod
    def _no_13_class_training(cls, protocol: object) -> object:
        """The paper trains SYNTHIA on 16 classes and reads mIoU* off those predictions."""
        if protocol == 13:
            raise ValueError(
                "13 is not a training protocol: SYNTHIA → Cityscapes trains one 16-class model, as the paper "
                "does, and reports the 13-class mIoU* (the 16 less wall, fence, pole) from its predictions "
                "as the metric target_miou_13; allowed: 16 for synthia, 19 for gta5, or leave it out"
            )
        return protocol

    @model_validator(mode="after")
    def _consistent_pair(self) -> "DataConfig":
        if (self.source == "synthetic") != (self.target == "synthetic"):
            raise ValueError("source and target must both be 'synthetic' or both be real datasets")
        if self.source != "synthetic":
            for field in ("source_root", "target_root"):
                if getattr(self, field) is None:
                    raise ValueError(f"{field} is required for source {self.source!r} → target {self.target!r}")
            allowed = {"gta5": (19,), "synthia": (16,)}[self.source]
            if self.protocol is not None and self.protocol not in allowed:
                raise ValueError(f"protocol {self.protocol} is not defined for source {self.source!r}; allowed: {allowed}")
        else:
            for field in ("protocol", "source_val_list"):
                if getattr(self, field) is not None:
                    raise ValueError(f"{field} applies to real datasets only; leave it out for 'synthetic'")
        return self

    @property
    def resolved_protocol(self) -> int | None:
        """Number of trained and scored classes for real data (GTA5: 19, SYNTHIA: 16)."""
        if self.source == "synthetic":
            return None
        return self.protocol or {"gta5": 19, "synthia": 16}[self.source]
