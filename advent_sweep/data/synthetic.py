"""The embedded benchmark: procedural street scenes in a "source" and a shifted "target" style.

Both domains draw their scenes from the SAME layout distribution (horizon, road in
perspective, sidewalks, building blocks, trees, poles, cars), so what a model learns
about class geometry transfers; they differ only in how the scene is rendered
(:class:`Style`: palette, textures, illumination, tint, blur, noise), so a model
trained on source colours and textures alone loses much of its accuracy on target —
the gap that adaptation should partly close. :data:`STYLES` holds every rendering
parameter in one place; ``data.synthetic.target_style`` overrides the target's from a
config file, to calibrate that gap.

Same config → byte-identical data: each (domain, split) has its own random stream,
derived from the seed with NumPy's SeedSequence. All work is vectorised over the
images; the default set (2 domains × (200 train + 50 val) at 64×64) takes well under
a second. Pixels are kept as uint8 tensors so the datasets pickle small and fast
into Ray's object store; items are converted to float on access.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
from scipy.ndimage import gaussian_filter
from torch.utils.data import Dataset

from advent_sweep.data.config import SyntheticConfig

# Class indices of the benchmark, in Cityscapes train-id order; names are Cityscapes names.
SYNTHETIC_CLASS_NAMES = ("road", "sidewalk", "building", "pole", "vegetation", "sky", "car")
ROAD, SIDEWALK, BUILDING, POLE, VEGETATION, SKY, CAR = range(len(SYNTHETIC_CLASS_NAMES))

DOMAINS = ("source", "target")
CHUNK = 64  # scenes made at once: bounds memory at large sizes (the data depend on it, like on the seed)
SPLITS = ("train", "val")

RGB = tuple[float, float, float]


@dataclass(frozen=True)
class Style:
    """How a scene is rendered. Colours and noise are on 0–255; per-class tuples follow the class order."""

    palette: tuple[RGB, ...]  # mean colour of each class
    colour_jitter: tuple[float, ...]  # per-image std of each class's colour (cars vary most)
    texture: float  # strength of class textures: windows, paving, leaves, sky gradient (0 = flat)
    brightness: float  # gain on every pixel
    contrast: float  # around each image's mean; < 1 flattens
    gamma: float  # > 1 darkens mid-tones
    tint: RGB  # per-channel gain (colour cast of the light)
    blur: float  # Gaussian sigma in pixels at 64 px height (scaled with the image)
    noise: float  # std of per-pixel sensor noise


STYLES: dict[str, Style] = {
    # Clear day: saturated colours, crisp textures.
    "source": Style(
        palette=((95, 95, 100), (175, 160, 150), (150, 110, 90), (70, 70, 75),
                 (70, 135, 55), (110, 165, 235), (40, 70, 170)),
        colour_jitter=(8, 10, 15, 8, 10, 10, 50),
        texture=1.0, brightness=1.0, contrast=1.0, gamma=1.0, tint=(1.0, 1.0, 1.0), blur=0.0, noise=4.0,
    ),
    # Dusk in another city, through a cheap camera: every class's colour shifted a little, flat surfaces
    # (no windows, paving joints or leaf texture), darker, flatter contrast, warm cast, soft focus, sensor
    # noise. Measured with benchmarks/synthetic_gap.py at the quickstart budget (the table is in the README):
    # most of the gap is one of appearance statistics, which the target batches' BN statistics close.
    "target": Style(
        palette=((105, 95, 90), (165, 160, 160), (130, 110, 105), (80, 75, 70),
                 (85, 130, 50), (130, 165, 215), (70, 60, 160)),
        colour_jitter=(8, 10, 15, 8, 10, 10, 50),
        texture=0.0, brightness=0.8, contrast=0.7, gamma=1.0, tint=(1.1, 1.0, 0.85), blur=1.2, noise=14.0,
    ),
}  # fmt: skip


def sample_layouts(rng: np.random.Generator, count: int, size: tuple[int, int]) -> np.ndarray:
    """``count`` street-scene label maps (uint8, N×H×W) of ``size`` (width, height).

    Per-image values are N×1×1 arrays that broadcast against the row (1×H×1) and
    column (1×1×W) grids; objects (blocks, trees, poles, cars) are drawn one index
    at a time for all images at once.
    """
    width, height = size
    y = ((np.arange(height) + 0.5) / height)[None, :, None]  # normalised rows, 0 = top
    x = ((np.arange(width) + 0.5) / width)[None, None, :]
    aspect = width / height  # turns an x distance into the y units of a round shape

    def per_image(low: float, high: float, objects: int = 1) -> np.ndarray:
        return rng.uniform(low, high, size=(objects, count, 1, 1))

    def chance(probability: float, objects: int = 1) -> np.ndarray:
        return rng.random((objects, count, 1, 1)) < probability

    [horizon], [vanish] = per_image(0.35, 0.55), per_image(0.35, 0.65)
    [road_bottom_left], [road_bottom_right] = per_image(-0.3, 0.2), per_image(0.8, 1.3)
    [walk_width] = per_image(0.15, 0.4)

    def left_line(offset: np.ndarray | float, depth: np.ndarray) -> np.ndarray:
        """x of a line from the vanishing point, ``offset`` outside the left road edge at the bottom."""
        return vanish + (road_bottom_left - offset - vanish) * depth

    def right_line(offset: np.ndarray | float, depth: np.ndarray) -> np.ndarray:
        return vanish + (road_bottom_right + offset - vanish) * depth

    def row_at(depth: np.ndarray) -> np.ndarray:
        return horizon + depth * (1 - horizon)

    labels = np.full((count, height, width), SKY, dtype=np.uint8)

    # Building blocks on each side; their tops fall towards the vanishing point; some blocks are gaps.
    distance = np.abs(x - vanish) / np.maximum(vanish, 1 - vanish)  # 0 at the vanishing point, ~1 at the edge
    blocks = 5
    for side_start, side_end in ((0.0, vanish - 0.04), (vanish + 0.04, 1.0)):
        cuts = np.sort(rng.uniform(0, 1, size=(blocks + 1, count, 1, 1)), axis=0)
        cuts[0], cuts[-1] = 0, 1
        edges = side_start + cuts * (side_end - side_start)
        tall, present = per_image(0.25, 1.0, blocks), chance(0.85, blocks)
        for block in range(blocks):
            top = horizon * (1 - tall[block] * (0.15 + 0.85 * distance))
            inside = (x >= edges[block]) & (x < edges[block + 1]) & present[block]
            labels[inside & (y >= top) & (y <= horizon)] = BUILDING

    # Ground: road between its edges, sidewalks beside it, then facades (or a hedge in some images).
    depth = np.clip((y - horizon) / (1 - horizon), 0, None)  # 0 at the horizon, 1 at the bottom row
    below = y > horizon
    walk_left, walk_right = left_line(walk_width, depth), right_line(walk_width, depth)
    roadside = below & ((x < walk_left) | (x >= walk_right))
    labels[roadside] = BUILDING
    labels[roadside & chance(0.35)[0]] = VEGETATION
    labels[below & (x >= walk_left) & (x < walk_right)] = SIDEWALK
    labels[below & (x >= left_line(0, depth)) & (x < right_line(0, depth))] = ROAD

    # Trees beside the road: a round crown above the horizon on a trunk, bigger nearer the image edge.
    trees = 3
    tree_x = np.where(chance(0.5, trees), per_image(0, 1, trees) * (vanish - 0.1),
                      vanish + 0.1 + per_image(0, 1, trees) * (0.9 - vanish))  # fmt: skip
    radius = 0.05 + 0.2 * np.abs(tree_x - vanish)
    tree_y = horizon - radius * per_image(0.4, 1.3, trees)
    tree_present = chance(0.6, trees)
    for tree in range(trees):
        cx, cy, r = tree_x[tree], tree_y[tree], radius[tree]
        crown = ((x - cx) * aspect) ** 2 + (y - cy) ** 2 < r**2
        trunk = (np.abs(x - cx) * aspect < 0.12 * r + 0.5 / height) & (y >= cy) & (y <= horizon + 0.6 * r)
        labels[(crown | trunk) & tree_present[tree]] = VEGETATION

    # Poles on the sidewalks: taller and wider when nearer.
    poles = 3
    pole_depth = per_image(0.1, 0.9, poles)
    pole_x = np.where(chance(0.5, poles), left_line(walk_width / 2, pole_depth), right_line(walk_width / 2, pole_depth))
    pole_half_width = np.maximum(0.6 / width, 0.015 * pole_depth)
    pole_present = chance(0.6, poles)
    for pole in range(poles):
        base = row_at(pole_depth[pole])
        upright = (y <= base) & (y >= base - (0.2 + 0.6 * pole_depth[pole]))
        labels[(np.abs(x - pole_x[pole]) < pole_half_width[pole]) & upright & pole_present[pole]] = POLE

    # Cars on the road, painted far to near so nearer cars hide farther ones.
    cars = 4
    car_depth = np.sort(per_image(0.1, 0.95, cars), axis=0)
    lane_left, lane_right = left_line(0, car_depth), right_line(0, car_depth)
    car_x = lane_left + per_image(0.15, 0.85, cars) * (lane_right - lane_left)
    car_width = 0.06 + 0.35 * car_depth
    car_present = chance(0.65, cars)
    for car in range(cars):
        base, w = row_at(car_depth[car]), car_width[car]
        roof = base - 0.35 * w * aspect  # body top, cabin bottom
        body = (np.abs(x - car_x[car]) < w / 2) & (y <= base) & (y > roof)
        cabin = (np.abs(x - car_x[car]) < 0.32 * w) & (y <= roof) & (y > roof - 0.25 * w * aspect)
        labels[(body | cabin) & car_present[car]] = CAR
    return labels


def render(labels: np.ndarray, style: Style, rng: np.random.Generator) -> np.ndarray:
    """Label maps (N×H×W) → uint8 images N×3×H×W in ``style``."""
    count, height, width = labels.shape
    scale = height / 64
    rows = np.arange(height)[None, :, None]
    cols = np.arange(width)[None, None, :]

    palette = np.asarray(style.palette, dtype=np.float32)[None]
    jitter = np.asarray(style.colour_jitter, dtype=np.float32)[None, :, None]
    colours = palette + jitter * rng.standard_normal((count, *palette.shape[1:]), dtype=np.float32)
    image = np.take_along_axis(colours, labels.reshape(count, -1)[:, :, None].astype(np.intp), axis=1)
    image = image.reshape(count, height, width, 3)

    # Class textures as a shading field: dark windows on facades, paving joints, leaves, a sky gradient.
    period = rng.integers(3, 7, size=(count, 1, 1)) * scale
    windows = ((cols % period) < period / 2) & ((rows % period) < period / 2)
    joints = ((cols % (2 * period)) < 1) | ((rows % (2 * period)) < 1)
    leaves = gaussian_filter(rng.standard_normal((count, height, width), dtype=np.float32), sigma=(0, scale, scale))
    shade = np.zeros((count, height, width), dtype=np.float32)
    shade += np.where((labels == BUILDING) & windows, -0.35, 0.0)
    shade += np.where((labels == SIDEWALK) & joints, -0.25, 0.0)
    shade += np.where(labels == VEGETATION, 1.2 * leaves, 0.0)
    shade += np.where(labels == SKY, 0.3 * (rows / height - 0.25), 0.0)
    image *= 1 + style.texture * shade[..., None]

    # Illumination and camera.
    image *= style.brightness
    mean = image.mean(axis=(1, 2, 3), keepdims=True)
    image = mean + (image - mean) * style.contrast
    image = 255 * (np.clip(image, 0, 255) / 255) ** style.gamma
    image *= np.asarray(style.tint, dtype=np.float32)
    if style.blur > 0:
        image = gaussian_filter(image, sigma=(0, style.blur * scale, style.blur * scale, 0))
    image += style.noise * rng.standard_normal(image.shape, dtype=np.float32)
    return np.clip(image, 0, 255).round().astype(np.uint8).transpose(0, 3, 1, 2)


class SyntheticScenes(Dataset):
    """One domain and split of the benchmark: item = (image float32 3×H×W in [0, 1], label int64 H×W)."""

    def __init__(self, name: str, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.name = name
        self.images = images  # uint8 N×3×H×W
        self.labels = labels  # uint8 N×H×W

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[index].float().div_(255.0), self.labels[index].long()

    def load_label(self, index: int) -> np.ndarray:
        """The label map of item ``index`` as uint8 class indices, like LabelledImages.load_label."""
        return self.labels[index].numpy()


def domain_style(config: SyntheticConfig, domain: str) -> Style:
    """How ``domain`` is rendered: its built-in style, with the config's ``target_style`` overrides on target."""
    if domain == "target" and config.target_style is not None:
        return replace(STYLES["target"], **config.target_style.model_dump(exclude_none=True))
    return STYLES[domain]


def synthetic_split(config: SyntheticConfig, domain: str, split: str) -> SyntheticScenes:
    """Scenes of one ``domain`` ("source" or "target") and ``split`` ("train" or "val")."""
    stream = np.random.SeedSequence(config.seed, spawn_key=(DOMAINS.index(domain), SPLITS.index(split)))
    rng = np.random.Generator(np.random.PCG64(stream))
    count = config.num_train if split == "train" else config.num_val
    style = domain_style(config, domain)
    labels, images = [], []
    for start in range(0, count, CHUNK):
        labels.append(sample_layouts(rng, min(CHUNK, count - start), config.size))
        images.append(render(labels[-1], style, rng))
    return SyntheticScenes(
        f"synthetic/{domain}/{split}", torch.from_numpy(np.concatenate(images)), torch.from_numpy(np.concatenate(labels))
    )
