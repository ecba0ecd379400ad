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

    palette: tuple[RGB, RGB, RGB, RGB, RGB, RGB, RGB] | None = Field(
        None, description="Mean RGB colour of each class (road, sidewalk, building, pole, vegetation, sky, car), on 0–255. "
        "Default: null (built-in)."
    )
    colour_jitter: PerClass | None = Field(
        None, description="Per-image std of each class's colour, per class, on 0–255. Default: null (built-in)."
    )
    texture: float | None = Field(
        None, ge=0.0, description="Strength of class textures (windows, paving, leaves, sky gradient; 0 = flat). Default: null (built-in)."
    )
    brightness: Gain | None = Field(None, description="Gain on every pixel (> 0). Default: null (built-in).")
    contrast: float | None = Field(
        None, ge=0.0, description="Contrast around each image's mean; < 1 flattens. Default: null (built-in)."
    )
    gamma: Gain | None = Field(None, description="Gamma (> 0); > 1 darkens mid-tones. Default: null (built-in).")
    tint: tuple[Gain, Gain, Gain] | None = Field(
        None, description="Per-channel (R, G, B) gain, each > 0. Default: null (built-in)."
    )
    blur: float | None = Field(
        None, ge=0.0, description="Gaussian blur sigma, in pixels at 64 px image height (scaled with the image). Default: null (built-in)."
    )
    noise: Level | None = Field(
        None, description="Std of per-pixel sensor noise, on 0–255. Default: null (built-in)."
    )


class SyntheticConfig(BaseModel):
    """The embedded benchmark: procedural street scenes in a source and a shifted target style."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int = Field(0, description="Seed of the generated scenes (the same seed makes the same images). Default: 0.")
    size: Size = Field((64, 64), description="Image size [width, height], in pixels. Default: [64, 64].")
    num_train: int = Field(200, ge=1, description="Training images per domain, in images. Default: 200.")
    num_val: int = Field(50, ge=1, description="Validation images per domain (target val; the held-out source val), in images. Default: 50.")
    target_style: TargetStyle | None = Field(
        None, description="Overrides of the target rendering style (the domain shift). Default: null (the built-in shift)."
    )


class DataConfig(BaseModel):
    """The domain pair of one run: source (labelled) → target (unlabelled in training)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: SourceName = Field(
        "synthetic", description="The labelled source dataset: synthetic, gta5 or synthia. Default: synthetic."
    )
    target: TargetName = Field(
        "synthetic", description="The target dataset (unlabelled in training): synthetic or cityscapes. Default: synthetic."
    )
    source_root: str | None = Field(
        None, description="Folder of the source dataset (GTA5: images/, labels/; SYNTHIA: RGB/, GT/LABELS/). Default: null; required for real data."
    )
    target_root: str | None = Field(
        None, description="Folder of Cityscapes (leftImg8bit/, gtFine/). Default: null; required for real data."
    )
    source_list: str | None = Field(
        None, description="A text file naming the source images to train on, one file name a line. Default: null (every image)."
    )
    source_val_list: str | None = Field(
        None, description="Held-out source images (same format as source_list) for source_val_miou; none may be in the "
        "training source. Default: null (none). Real data only."
    )
    target_list: str | None = Field(
        None, description="Target training images, one a line relative to leftImg8bit/<target_split>/. Default: null (every image)."
    )
    target_val_list: str | None = Field(
        None, description="Target-val images, one a line relative to leftImg8bit/<target_val_split>/. Default: null (every image)."
    )
    target_split: str = Field("train", description="The Cityscapes split trained on (unlabelled). Default: train.")
    target_val_split: str = Field("val", description="The Cityscapes split scored on. Default: val.")
    protocol: Literal[19, 16] | None = Field(
        None, description="Classes trained and scored: 19 (GTA5 → Cityscapes) or 16 (SYNTHIA → Cityscapes; mIoU* on 13 is "
        "reported too). Default: null (19 for gta5, 16 for synthia). Real data only."
    )
    source_size: Size = Field(
        (1280, 720), description="Source images resized whole to [width, height], in pixels. Default: [1280, 720]."
    )
    target_size: Size = Field((1024, 512), description="Target training images resized to [width, height], in pixels. Default: [1024, 512].")
    eval_size: Size = Field(
        (1024, 512), description="Target-val images resized to [width, height] before the forward pass, in pixels (labels "
        "stay at full resolution). Default: [1024, 512]."
    )
    synthetic: SyntheticConfig = Field(
        SyntheticConfig(), description="The synthetic benchmark's settings (used when source and target are synthetic). Default: each field's default."
    )
    num_workers: int = Field(0, ge=0, description="DataLoader worker processes per run, in processes. Default: 0 (load in the trainer's process).")

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
