"""Images in, pixels out: the one image loader of the codec, training and benchmarks.

Every image that enters aecodec goes through :func:`prepare_image`: the first frame is read (a
warning says how many frames there are when there are more), the EXIF orientation applied, and
the pixels turned into 8-bit RGB or gray, with or without alpha, by one rule per Pillow mode:

===========================  ===================================================  =========================
Pillow mode                  becomes                                              warning
===========================  ===================================================  =========================
L, LA                        gray, gray + alpha (coded as R = G = B)              —
RGB, RGBA                    themselves                                           —
L, RGB with a transparent    LA, RGBA (that colour's pixels get alpha 0)          —
colour (PNG tRNS)
1                            L (0 / 255)                                          —
P, PA                        RGB, or RGBA where the palette has transparency;     —
                             PA → RGBA
La, RGBa (premultiplied)     LA, RGBA                                             —
RGBX                         RGB                                                  —
YCbCr, LAB, HSV              RGB                                                  —
CMYK                         RGB, by Pillow's formula (no colour profile)         yes, says so
I;16, I;16B, I;16L, I;16N    gray: value ÷ 257, rounded                           yes: 16-bit converted
I (32-bit signed integer)    values within 0–255: gray, as they are               —
                             values within 0–65535: as 16-bit (÷ 257, rounded)    yes, with the maximum
                             other values: min…max stretched linearly to 0–255    yes, with the range
F (32-bit float)             gray: NaN → 0, clipped to 0–255, rounded             when that loses anything
                                                                                  (NaN, values outside
                                                                                  0–255, fractions): which
any other                    a :class:`~aecodec.errors.CodecError` naming
                             the mode
===========================  ===================================================  =========================

Pillow opens 16-bit PNGs as I;16 and 32-bit integer TIFFs as I. A file that cannot be read —
whatever Pillow raises — is a one-line :class:`~aecodec.errors.CodecError`; one above
Pillow's decompression-bomb limit (``PIL.Image.MAX_IMAGE_PIXELS``) is read with a warning that its
encode takes long and much memory. :func:`to_image` is the inverse for decoded pixels.
:data:`IMAGE_SUFFIXES` and :func:`image_files` say which files of a folder are images.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import BinaryIO, Iterable, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import CodecError, one_line
from .format import Layout

__all__ = ["IMAGE_SUFFIXES", "ImageLike", "image_files", "open_image", "prepare_image", "load_rgb", "to_image",
           "png_plane"]

ImageLike = Union[Image.Image, np.ndarray, str, os.PathLike, BinaryIO]
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".ppm", ".pgm", ".pnm",
                            ".gif"})
_ARRAY_MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}  # channels of a uint8 array → Pillow mode
_CONVERT = {"1": "L", "PA": "RGBA", "La": "LA", "RGBa": "RGBA", "RGBX": "RGB", "CMYK": "RGB", "YCbCr": "RGB",
            "LAB": "RGB", "HSV": "RGB"}  # the table's plain conversions; P is converted by its palette
_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N")
# What the warning for a very large image quotes: the encoder's measured memory and time per
# megapixel (the measurements: docs/performance.md).
_COST = "measured at effort 1: about 1 GiB + 40 MiB per megapixel, and 5 s per megapixel on 2 CPU cores"


def image_files(folders: Iterable[str | os.PathLike], *, recursive: bool = False) -> list[Path]:
    """The image files (by suffix, :data:`IMAGE_SUFFIXES`) in ``folders``, sorted."""
    found = []
    for folder in folders:
        paths = Path(folder).rglob("*") if recursive else Path(folder).iterdir()
        found += [p for p in paths if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]
    return sorted(found)


def _name(image: ImageLike) -> str:
    """How messages name a path or file source: the path, else the file's ``name``, else "input"."""
    if isinstance(image, (str, os.PathLike)):
        return os.fsdecode(image)
    name = getattr(image, "name", None)
    return name if isinstance(name, str) else "input"


def _is_empty(image: ImageLike) -> bool:
    """Whether a path or a seekable file holds no bytes at all."""
    try:
        if isinstance(image, (str, os.PathLike)):
            return os.path.isfile(image) and os.path.getsize(image) == 0
        image.seek(0)
        return not image.read(1)
    except (OSError, ValueError, AttributeError):
        return False


def _reason(exc: Exception) -> str:
    """What went wrong, in one line: Pillow's words, after the exception's type where they may say little."""
    if isinstance(exc, (OSError, SyntaxError, ValueError, Image.DecompressionBombError)):
        return one_line(exc)
    kind = type(exc)
    kind = kind.__name__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__name__}"  # struct.error
    return f"{kind}: {one_line(exc)}" if str(exc).strip() else kind


def open_image(image: ImageLike) -> Image.Image:
    """A loaded PIL image from a PIL image, a uint8 array ``(H, W[, 1|2|3|4])`` or a path/file (its
    first frame). Whatever reading a file raises becomes a one-line :class:`CodecError`."""
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
    name = _name(image)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # said below, in aecodec's words
            with Image.open(image) as im:
                frames = getattr(im, "n_frames", 1)  # before load: counting may seek through the file
                im.load()
    except FileNotFoundError:
        raise CodecError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise CodecError(f"{name}: is a directory") from None
    except UnidentifiedImageError:
        what = "empty input" if _is_empty(image) else "cannot read image (unknown format or corrupt file)"
        raise CodecError(f"{name}: {what}") from None
    except MemoryError:
        raise CodecError(f"{name}: not enough memory to read the image") from None
    except Exception as exc:  # Pillow raises many kinds for bad files: struct.error, EOFError, KeyError…
        raise CodecError(f"{name}: cannot read image ({_reason(exc)})") from None
    if frames > 1 and im.format not in ("MPO", "PSD"):  # not frames: an MPO's previews or stereo view, PSD layers
        warnings.warn(f"{name}: {frames} frames; only the first is encoded")
    if Image.MAX_IMAGE_PIXELS and im.width * im.height > Image.MAX_IMAGE_PIXELS:
        warnings.warn(f"{name}: {im.width}×{im.height} = {im.width * im.height / 1e6:.1f} megapixels, above Pillow's "
                      f"decompression-bomb limit ({Image.MAX_IMAGE_PIXELS / 1e6:.1f}): encoding it takes long and "
                      f"much memory ({_COST})")
    return im


def _gray8(im: Image.Image, label: str) -> np.ndarray:
    """The 8-bit gray plane of an I;16*, I or F image, by the rules of the module's table."""
    arr = np.asarray(im)
    if im.mode == "F":
        values = np.nan_to_num(arr, nan=0.0)  # ±inf become ±the largest float: clipped below
        lost = [what for what, found in (("NaN set to 0", np.isnan(arr).any()),
                                         ("values outside 0–255 clipped", ((values < 0) | (values > 255)).any()),
                                         ("fractions rounded", (values != np.round(values)).any())) if found]
        if lost:
            warnings.warn(f"{label}32-bit float image converted to 8-bit: {', '.join(lost)}")
        return np.clip(values, 0, 255).round().astype(np.uint8)
    lo, hi = int(arr.min()), int(arr.max())
    if im.mode == "I" and 0 <= lo and hi <= 255:
        return arr.astype(np.uint8)
    if im.mode != "I" or (0 <= lo and hi <= 65535):
        what = "16-bit image" if im.mode != "I" else f"32-bit integer image with values up to {hi} treated as 16-bit,"
        warnings.warn(f"{label}{what} converted to 8-bit (÷ 257, rounded)")
        return np.round(arr / 257.0).astype(np.uint8)
    warnings.warn(f"{label}32-bit integer image with values {lo}…{hi}: that range stretched linearly to 0–255")
    return np.round((arr - float(lo)) * (255.0 / max(hi - lo, 1))).astype(np.uint8)


def _pixels(im: Image.Image, label: str) -> tuple[np.ndarray, np.ndarray | None, int]:
    """:func:`prepare_image` of a loaded image; ``label`` starts its warnings ("name: " or "")."""
    try:
        im = ImageOps.exif_transpose(im)
    except Exception as exc:  # malformed EXIF must not stop an encode
        warnings.warn(f"{label}EXIF orientation unreadable ({one_line(exc)}); the image is used as stored")
    if im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif im.mode in _CONVERT:
        if im.mode == "CMYK":
            warnings.warn(f"{label}CMYK image converted to RGB without a colour profile: colours may be off")
        im = im.convert(_CONVERT[im.mode])
    if im.mode in ("L", "RGB") and "transparency" in im.info:  # a transparent colour (PNG tRNS)
        im = im.convert(im.mode + "A")

    if im.mode in ("I", "F") or im.mode in _SIXTEEN_BIT:
        gray, alpha, layout = _gray8(im, label), None, Layout.GRAY
    elif im.mode in ("L", "LA"):
        arr = np.asarray(im)
        gray = arr if im.mode == "L" else arr[..., 0]
        alpha = None if im.mode == "L" else np.ascontiguousarray(arr[..., 1])
        layout = Layout.GRAY if im.mode == "L" else Layout.GRAY_ALPHA
    elif im.mode in ("RGB", "RGBA"):
        arr = np.asarray(im)
        alpha = np.ascontiguousarray(arr[..., 3]) if im.mode == "RGBA" else None
        return np.ascontiguousarray(arr[..., :3]), alpha, (Layout.RGBA if im.mode == "RGBA" else Layout.RGB)
    else:
        raise CodecError(f"{label}unsupported image mode {im.mode}")
    gray = np.ascontiguousarray(gray)
    return np.repeat(gray[..., None], 3, axis=2), alpha, layout


def prepare_image(image: ImageLike) -> tuple[np.ndarray, np.ndarray | None, int]:
    """Return ``(rgb (H, W, 3) uint8, alpha (H, W) uint8 or None, layout)``.

    The first frame, EXIF orientation applied, each Pillow mode converted by the rule of the
    module's table (gray stays gray: coded as R = G = B, returned as L on decode). Bad input, or a
    conversion that fails, is a one-line :class:`CodecError`.
    """
    im = open_image(image)
    label = "" if isinstance(image, (Image.Image, np.ndarray)) else f"{_name(image)}: "
    try:
        return _pixels(im, label)
    except CodecError:
        raise
    except MemoryError:
        raise CodecError(f"{label}not enough memory to convert the {im.mode} image") from None
    except Exception as exc:  # Pillow's conversions can fail on odd files too
        raise CodecError(f"{label}cannot convert the {im.mode} image ({_reason(exc)})") from None


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
