"""The data layer: datasets (GTA5, SYNTHIA, Cityscapes, the synthetic benchmark), label tables, p_s.

Items are (image float32 3×H×W RGB in [0, 1], label int64 H×W, 255 = ignore).

As the official ADVENT code does: folder layouts and list files; the Cityscapes id
table (GTA5 uses it too); the whole image resized, never cropped (bicubic image,
nearest label), no flip; target labels resized like their images; evaluation images
resized to the eval size with labels kept at full resolution.
Where we differ: RGB → BGR and the Caffe mean are the model's job (it knows its
weights); an id a dataset does not define is a DataError rather than silently
ignored; SYNTHIA (absent from the official ADVENT code) follows the authors' DADA
code; the class-ratio prior p_s (described in the paper, not in the code) is here.
"""

from advent_sweep.data.config import DataConfig, SyntheticConfig
from advent_sweep.data.domain import DomainData, build_domain_data
from advent_sweep.data.priors import cached_source_class_prior, source_class_prior

__all__ = [
    "DataConfig",
    "DomainData",
    "SyntheticConfig",
    "build_domain_data",
    "cached_source_class_prior",
    "source_class_prior",
]
