"""Images in, pixels out: the one image loader of the codec, training and benchmarks.

Every image that enters aecodec goes through :func:`prepare_image`: EXIF orientation applied,
palettes expanded, 16-bit and float images converted to 8-bit with a warning, gray kept gray
(coded as R = G = B). :func:`to_image` is its inverse for decoded pixels. :data:`IMAGE_SUFFIXES`
and :func:`image_files` say which files of a folder are images.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import Iterable, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import CodecError, one_line
from .format import Layout

__all__ = ["IMAGE_SUFFIXES", "ImageLike", "image_files", "open_image", "prepare_image", "load_rgb", "to_image",
           "png_plane"]

ImageLike = Union[Image.Image, np.ndarray, str, os.PathLike]
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".ppm", ".pgm", ".pnm",
                            ".gif"})
_ARRAY_MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}  # channels of a uint8 array → Pillow mode


def image_files(folders: Iterable[str | os.PathLike], *, recursive: bool = False) -> list[Path]:
    """The image files (by suffix, :data:`IMAGE_SUFFIXES`) in ``folders``, sorted."""
    found = []
    for folder in folders:
        paths = Path(folder).rglob("*") if recursive else Path(folder).iterdir()
        found += [p for p in paths if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]
    return sorted(found)


def open_image(image: ImageLike) -> Image.Image:
    """A loaded PIL image from a PIL image, a uint8 array ``(H, W[, 1|2|3|4])`` or a path/file."""
    if isinstance(image, Image.Image):
        return image
    if isinstance(image, np.ndarray):
        arr = image
        if arr.dtype != np.uint8:
            raise CodecError(f"numpy images must be uint8, got {arr.dtype}")
        if arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in _ARRAY_MODES):
            mode = _ARRAY_MODES[1 if arr.ndim == 2 else arr.shape[2]]
            return Image.fromarray(arr.reshape(arr.shape[0], arr.shape[1], -1).squeeze(-1) if mode == "L" else arr, mode)
        raise CodecError(f"numpy image of shape {arr.shape} is not (H, W[, 1|2|3|4])")
    try:
        with Image.open(image) as im:
            im.load()
            return im
    except FileNotFoundError:
        raise CodecError(f"{image}: no such file") from None
    except IsADirectoryError:
        raise CodecError(f"{image}: is a directory") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise CodecError(f"{image}: cannot read image ({one_line(exc)})") from None


def _to_8bit(arr: np.ndarray, mode: str) -> np.ndarray:
    if arr.dtype == np.uint8:
        return arr
    if np.issubdtype(arr.dtype, np.floating):
        warnings.warn(f"{mode} image (floating point) clipped to 0–255 and converted to 8-bit", stacklevel=3)
        return np.clip(np.nan_to_num(arr), 0, 255).round().astype(np.uint8)
    warnings.warn(f"{mode} image converted from 16-bit to 8-bit", stacklevel=3)
    return np.clip(np.round(arr.astype(np.float64) / 257.0), 0, 255).astype(np.uint8)


_CONVERT = {"P": None, "PA": "RGBA", "1": "L", "CMYK": "RGB", "YCbCr": "RGB", "LAB": "RGB", "HSV": "RGB",
            "La": "LA", "RGBa": "RGBA"}  # None: RGBA if the palette has transparency, else RGB


def prepare_image(image: ImageLike) -> tuple[np.ndarray, np.ndarray | None, int]:
    """Return ``(rgb (H, W, 3) uint8, alpha (H, W) uint8 or None, layout)``.

    EXIF orientation is applied; palettes are expanded; 16-bit and float images are converted
    to 8-bit with a warning; gray stays gray (coded as R = G = B, returned as L on decode).
    """
    im = open_image(image)
    try:
        im = ImageOps.exif_transpose(im)
    except Exception:  # malformed EXIF must not stop an encode
        pass
    if im.mode in _CONVERT:
        im = im.convert(_CONVERT[im.mode] or ("RGBA" if "transparency" in im.info else "RGB"))

    if im.mode in ("I", "F") or im.mode.startswith("I;16"):
        gray = _to_8bit(np.asarray(im), im.mode)
        alpha, layout = None, Layout.GRAY
    elif im.mode in ("L", "LA"):
        arr = np.asarray(im)
        gray = arr if im.mode == "L" else arr[..., 0]
        alpha = None if im.mode == "L" else np.ascontiguousarray(arr[..., 1])
        layout = Layout.GRAY if im.mode == "L" else Layout.GRAY_ALPHA
    elif im.mode in ("RGB", "RGBA", "RGBX"):
        arr = np.asarray(im)
        rgb = np.ascontiguousarray(arr[..., :3])
        alpha = np.ascontiguousarray(arr[..., 3]) if im.mode == "RGBA" else None
        return rgb, alpha, (Layout.RGBA if im.mode == "RGBA" else Layout.RGB)
    else:
        try:
            return prepare_image(im.convert("RGBA" if "A" in im.mode else "RGB"))
        except ValueError:
            raise CodecError(f"unsupported image mode {im.mode}") from None
    gray = np.ascontiguousarray(gray)
    return np.repeat(gray[..., None], 3, axis=2), alpha, layout


def load_rgb(image: ImageLike) -> np.ndarray:
    """The image's pixels as ``(H, W, 3)`` uint8 (gray replicated, alpha dropped), read as the codec reads it."""
    return prepare_image(image)[0]


def to_image(rgb: np.ndarray, alpha: np.ndarray | None, layout: int) -> Image.Image:
    """The PIL image of ``layout`` (mode L, LA, RGB or RGBA) from ``(H, W, 3)`` pixels and an alpha
    plane: the inverse of :func:`prepare_image`. Gray layouts take Pillow's luma of the three
    channels (exactly the gray value where R = G = B)."""
    img = Image.fromarray(np.ascontiguousarray(rgb), "RGB")
    if layout in Layout.GRAYS:
        img = img.convert("L")
    if layout in Layout.WITH_ALPHA:
        img.putalpha(Image.fromarray(np.ascontiguousarray(alpha), "L"))
    return img


def png_plane(plane: np.ndarray | None) -> bytes | None:
    """An 8-bit plane (the alpha channel) as the container stores it: a lossless gray PNG."""
    if plane is None:
        return None
    buf = io.BytesIO()
    Image.fromarray(plane, "L").save(buf, format="PNG", optimize=True)
    return buf.getvalue()
