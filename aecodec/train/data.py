"""Photos → training crops: :func:`load_images` reads the photos with the codec's loader,
:class:`CropSampler` cuts a whole batch of random crops from pre-scaled copies in one gather."""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from ..codec.images import image_files, load_rgb
from ..errors import one_line
from .options import TrainError

__all__ = ["SCALES", "read_images", "load_images", "CropSampler"]

SCALES = (1.0, 0.84, 0.71, 0.59, 0.5)  # the pre-scaled copies a crop is cut from


def read_images(dirs: list[Path], min_side: int = 64, log: Callable[[str], object] = print,
                ) -> tuple[list[torch.Tensor], list[Path]]:
    """Every image below ``dirs`` (:func:`~aecodec.codec.images.image_files`, recursive) as a uint8
    (3, H, W) RGB tensor, read as the codec reads it (:func:`~aecodec.codec.images.load_rgb`: EXIF
    orientation applied, palettes expanded, 16-bit to 8-bit, gray replicated, alpha dropped);
    images with a side below ``min_side`` are left out. Returns the images and the files that
    could not be read, whatever the error, each skipped with a warning line through ``log`` (which
    also gets the loader's warnings, one line each); :class:`TrainError` if there are no images."""
    images, unreadable = [], []
    for path in image_files(dirs, recursive=True):
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                rgb = load_rgb(path)  # (H, W, 3) uint8
        except Exception as exc:  # the loader's one-line CodecError, or anything else: never a traceback
            unreadable.append(path)
            log(f"warning: skipped {path}: {one_line(exc).removeprefix(f'{path}: ')}")
            continue
        finally:
            for w in caught:  # the loader's start with the path; Pillow's do not
                log(f"warning: {path}: {str(w.message).removeprefix(f'{path}: ')}")
        if min(rgb.shape[:2]) >= min_side:
            images.append(torch.from_numpy(rgb.transpose(2, 0, 1).copy()))
    if not images:
        skipped = f" ({len(unreadable)} unreadable)" if unreadable else ""
        raise TrainError(f"no training images found in {', '.join(map(str, dirs))}{skipped}")
    return images, unreadable


def load_images(dirs: list[Path], min_side: int = 64, log: Callable[[str], object] = print) -> list[torch.Tensor]:
    """The images of :func:`read_images` (unreadable files skipped with a warning through ``log``)."""
    return read_images(dirs, min_side, log)[0]


def _resize(im: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """uint8 (3, H, W) → uint8 (3, h, w), bicubic with antialiasing (for the downscaled copies)."""
    x = F.interpolate(im[None].float(), size=(h, w), mode="bicubic", antialias=True, align_corners=False)
    return x[0].round_().clamp_(0, 255).to(torch.uint8)


class CropSampler:
    """Random training crops, a whole batch in one gather.

    Each photo is kept in a few pre-scaled copies, made once at start (factors :data:`SCALES`,
    those that still hold a crop; a photo smaller than a crop gets one copy scaled up to hold
    one), so that the JPEG block artefacts of the training photos can shrink below a pixel without
    a resize kernel per crop. All copies live as uint8 pixel rows in one flat buffer on the
    training device. A batch — a random photo, a random copy of it, a random position and a random
    horizontal flip per crop — is one index computation and one gather, drawn from torch's
    generator of that device (so, on CUDA, no host sync). ``sample`` returns (B, 3, crop, crop)
    floats in [0, 1], channels-last in memory.
    """

    def __init__(self, images: list[torch.Tensor], crop: int, device: torch.device, scales=SCALES):
        rows, bases, heights, widths, first, count = [], [], [], [], [], []
        size = 0
        for im in images:
            im = im.to(device)
            _, h, w = im.shape
            sizes = [(math.ceil(h * s), math.ceil(w * s)) for s in scales if min(h, w) * s >= crop]
            if not sizes:  # smaller than a crop: one copy, scaled up
                s = crop / min(h, w)
                sizes = [(max(crop, math.ceil(h * s)), max(crop, math.ceil(w * s)))]
            first.append(len(bases))
            count.append(len(sizes))
            for hh, ww in sizes:
                copy = im if (hh, ww) == (h, w) else _resize(im, hh, ww)
                rows.append(copy.permute(1, 2, 0).reshape(-1, 3))
                bases.append(size)
                heights.append(hh)
                widths.append(ww)
                size += hh * ww
        if not rows:
            raise TrainError("no training images to cut crops from")
        self.crop, self.device = crop, torch.device(device)
        self.pixels = torch.cat(rows)  # (P, 3) uint8
        as_tensor = lambda v: torch.tensor(v, dtype=torch.int64, device=device)
        self.base, self.height, self.width = as_tensor(bases), as_tensor(heights), as_tensor(widths)
        self.first, self.count = as_tensor(first), as_tensor(count)
        self.ramp = torch.arange(crop, device=device)

    @property
    def photos(self) -> int:
        return len(self.first)

    @property
    def copies(self) -> int:
        return len(self.base)

    def sample(self, batch: int) -> torch.Tensor:
        dev, c = self.device, self.crop
        u = torch.rand(5, batch, device=dev)  # photo, copy, top, left, flip
        i = (u[0] * len(self.first)).long()
        k = self.first[i] + (u[1] * self.count[i]).long()
        h, w = self.height[k], self.width[k]
        top = (u[2] * (h - c + 1)).long()
        left = (u[3] * (w - c + 1)).long()
        cols = torch.where(u[4, :, None] < 0.5, c - 1 - self.ramp, self.ramp) + left[:, None]  # (B, c)
        rows = top[:, None] + self.ramp  # (B, c)
        index = self.base[k, None, None] + rows[:, :, None] * w[:, None, None] + cols[:, None, :]
        return self.pixels[index].permute(0, 3, 1, 2).float().div_(255)  # (B, 3, c, c), channels-last
