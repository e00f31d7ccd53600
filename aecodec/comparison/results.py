"""What a comparison holds: each codec's file at one byte budget, decoded and measured, and this
image's rate–distortion curves. Plain data — :mod:`.compare` fills it, :mod:`.page` draws it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from PIL import Image

from ..metrics import ms_ssim_db

__all__ = ["Coded", "CurvePoint", "Comparison"]


@dataclass(frozen=True)
class Coded:
    """One codec's file: the highest quality that fits the budget, its bytes and what they decode to."""

    codec: str  # stable id, a key of codecs.CODECS: "aecodec", "jpeg-420", "webp", "avif", "jxl", …
    label: str  # what a reader sees: "aecodec", "JPEG 4:2:0", "WebP", …
    quality: float  # the codec's own quality setting that produced `data`
    data: bytes  # the file, exactly as the encoder wrote it
    extension: str  # ".aec", ".jpg", ".webp", ".avif", ".jxl", …
    psnr: float  # dB, RGB, against the original as compared
    ms_ssim: float | None  # None when the image is too small for MS-SSIM's five scales
    encode_s: float  # one encode at `quality` (not the search for it), seconds
    decode_s: float  # one decode of `data`, seconds
    reconstruction: Image.Image  # mode "RGB", the original's size: what the codec's decoder gives

    @property
    def num_bytes(self) -> int:
        return len(self.data)

    @property
    def ms_ssim_db(self) -> float | None:
        return ms_ssim_db(self.ms_ssim)

    def bpp(self, pixels: int) -> float:
        return 8 * len(self.data) / pixels

    def to_dict(self, pixels: int) -> dict:
        return {"codec": self.codec, "label": self.label, "quality": self.quality, "bytes": self.num_bytes,
                "bpp": self.bpp(pixels), "psnr": _finite(self.psnr), "ms_ssim": self.ms_ssim,
                "ms_ssim_db": _finite(self.ms_ssim_db), "encode_s": self.encode_s, "decode_s": self.decode_s,
                "extension": self.extension}


@dataclass(frozen=True)
class CurvePoint:
    """One point of a codec's quality sweep on this image."""

    quality: float
    bytes: int
    bpp: float
    psnr: float


@dataclass
class Comparison:
    """One image coded by several codecs within the same byte budget."""

    name: str  # the image's file name (titles, page names)
    original: Image.Image  # mode "RGB": the pixels every codec was given and is measured against
    budget: int  # bytes: every file in `coded` is at most this large
    target: str  # how the budget was set, in words: "20 000 bytes", "0.5 bpp", "aecodec at quality 75"
    coded: list[Coded]  # in the order asked for
    left_out: dict[str, str] = field(default_factory=dict)  # codec id -> why, one line
    curves: dict[str, list[CurvePoint]] = field(default_factory=dict)  # codec id -> sweep; {} if not asked
    labels: dict[str, str] = field(default_factory=dict)  # codec id -> label, for every codec in `curves`

    @property
    def width(self) -> int:
        return self.original.width

    @property
    def height(self) -> int:
        return self.original.height

    @property
    def pixels(self) -> int:
        return self.original.width * self.original.height

    @property
    def budget_bpp(self) -> float:
        return 8 * self.budget / self.pixels

    def to_dict(self) -> dict:
        """The numbers, JSON-ready (no pixels, no bytes)."""
        return {"image": self.name, "width": self.width, "height": self.height, "budget_bytes": self.budget,
                "budget_bpp": self.budget_bpp, "target": self.target,
                "codecs": [c.to_dict(self.pixels) for c in self.coded], "left_out": dict(self.left_out),
                "curves": {k: [vars(p) for p in v] for k, v in self.curves.items()}}


def _finite(x: float | None) -> float | None:
    """JSON has no infinity: an identical reconstruction's PSNR is written as null."""
    return None if x is None or math.isinf(x) else x
