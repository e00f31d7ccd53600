"""The codec API: images ↔ .aec bytes.

``encode(image, quality) -> bytes`` and ``decode(bytes) -> PIL.Image`` are the whole codec;
``encode_file``/``decode_file`` add atomic file handling (temp file + rename, never a partial
output, never an overwrite unless asked). Uint8 pixels at the boundary; conversion, padding to
the model's stride, cropping and rounding all happen in here.
"""

from __future__ import annotations

import io
import math
import os
import tempfile
import warnings
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from . import format as fmt
from .format import Container, FormatError, Layout

__all__ = ["encode", "decode", "encode_with", "encode_within", "decode_with", "decode_latents", "encode_file", "decode_file", "info", "CodecError",
           "prepare_image", "quality_to_level", "DEFAULT_QUALITY"]

DEFAULT_QUALITY = 75.0
ImageLike = Union[Image.Image, np.ndarray, str, os.PathLike]


class CodecError(ValueError):
    """Bad input to the codec (unreadable image, bad option); one-line message."""


# ----------------------------------------------------------------------------- input images
def _open(image: ImageLike) -> Image.Image:
    if isinstance(image, Image.Image):
        return image
    if isinstance(image, np.ndarray):
        arr = image
        if arr.dtype != np.uint8:
            raise CodecError(f"numpy images must be uint8, got {arr.dtype}")
        if arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (1, 2, 3, 4)):
            mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[1 if arr.ndim == 2 else arr.shape[2]]
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
        raise CodecError(f"{image}: cannot read image ({_one_line(exc)})") from None


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else exc.__class__.__name__


def _to_8bit(arr: np.ndarray, mode: str) -> np.ndarray:
    if arr.dtype == np.uint8:
        return arr
    if np.issubdtype(arr.dtype, np.floating):
        warnings.warn(f"{mode} image (floating point) clipped to 0–255 and converted to 8-bit", stacklevel=3)
        return np.clip(np.nan_to_num(arr), 0, 255).round().astype(np.uint8)
    warnings.warn(f"{mode} image converted from 16-bit to 8-bit", stacklevel=3)
    return np.clip(np.round(arr.astype(np.float64) / 257.0), 0, 255).astype(np.uint8)


def prepare_image(image: ImageLike) -> tuple[np.ndarray, np.ndarray | None, int]:
    """Return ``(rgb (H, W, 3) uint8, alpha (H, W) uint8 or None, layout)``.

    EXIF orientation is applied; palettes are expanded; 16-bit and float images are converted
    to 8-bit with a warning; gray stays gray (coded as R = G = B, returned as L on decode).
    """
    im = _open(image)
    try:
        im = ImageOps.exif_transpose(im)
    except Exception:  # malformed EXIF must not stop an encode
        pass
    if im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif im.mode == "PA":
        im = im.convert("RGBA")
    elif im.mode == "1":
        im = im.convert("L")
    elif im.mode in ("CMYK", "YCbCr", "LAB", "HSV"):
        im = im.convert("RGB")
    elif im.mode == "La":
        im = im.convert("LA")
    elif im.mode == "RGBa":
        im = im.convert("RGBA")

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


def quality_to_level(quality: float, num_levels: int) -> float:
    """Quality 0…100 onto the model's continuous gain level 0…L−1 (linear)."""
    return quality / 100.0 * (num_levels - 1)


def _check_quality(quality: float) -> float:
    try:
        q = float(quality)
    except (TypeError, ValueError):
        raise CodecError(f"quality must be a number, got {quality!r}") from None
    if not 0.0 <= q <= 100.0 or math.isnan(q):
        raise CodecError(f"quality must be between 0 and 100, got {quality}")
    return round(q, 2)


def _device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise CodecError(f"unknown device {device!r} (auto, cpu or cuda)")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise CodecError("--device cuda requested but no CUDA GPU is available")
    return device


def _png_bytes(plane: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(plane, "L").save(buf, format="PNG", optimize=True)
    return buf.getvalue()


# ----------------------------------------------------------------------------- encode / decode
DEFAULT_TILE = 1024
MARGIN = 64  # pixels of context around a tile: more than the receptive fields of g_a (61 px) and g_s


def _tile_rects(height: int, width: int, tile: int):
    """Tiles (y0, y1, x0, x1) over the image padded to the stride, raster order, with their
    context region (ry0, ry1, rx0, rx1) = the tile grown by MARGIN, clipped to the padded image."""
    rows, cols = fmt.tile_grid(width, height, tile)
    for r in range(rows):
        for c in range(cols):
            y0, y1 = r * tile, min(height, (r + 1) * tile)
            x0, x1 = c * tile, min(width, (c + 1) * tile)
            yield (y0, y1, x0, x1), (max(0, y0 - MARGIN), min(height, y1 + MARGIN),
                                     max(0, x0 - MARGIN), min(width, x1 + MARGIN))


def encode(image: ImageLike, quality: float | None = None, *, target_size: int | None = None,
           target_bpp: float | None = None, model: str | os.PathLike | None = None,
           device: str = "cpu", tile: int = DEFAULT_TILE) -> bytes:
    """Encode an image (PIL image, uint8 array or path) to .aec bytes.

    Give at most one of ``quality`` (0…100, default 75), ``target_size`` (bytes) or
    ``target_bpp`` (bits per pixel of the whole file): with a target, the result is the
    highest-quality file that is no larger (:func:`encode_within`); :class:`CodecError` if even
    quality 0 is larger. The image is coded in tiles of ``tile`` pixels (a multiple of 64): each
    tile's latent is computed from the tile plus a margin of context, so memory stays bounded.
    """
    from ..models import registry

    if sum(v is not None for v in (quality, target_size, target_bpp)) > 1:
        raise CodecError("give one of quality, target size or target bpp, not several")
    q = _check_quality(DEFAULT_QUALITY if quality is None else quality)
    if not isinstance(tile, int) or tile % fmt.TILE_UNIT or not fmt.TILE_UNIT <= tile <= 1024 * fmt.TILE_UNIT:
        raise CodecError(f"tile size must be a multiple of {fmt.TILE_UNIT} up to {1024 * fmt.TILE_UNIT}, got {tile}")
    budget = _check_target(target_size, target_bpp)
    rgb, alpha, layout = prepare_image(image)
    h, w = rgb.shape[:2]
    if h * w > fmt.DEFAULT_MAX_PIXELS or max(h, w) > fmt.MAX_SIDE:
        raise CodecError(f"image of {w}×{h} pixels is too large for this version of aecodec")
    net, model_id, digest = registry.load(model, device=_device(device))
    if budget is not None:
        return encode_within(net, model_id, digest, rgb, alpha, layout, budget(w, h), tile)
    return encode_with(net, model_id, digest, rgb, alpha, layout, q, tile)


def _check_target(target_size, target_bpp):
    """The byte budget as a function ``(width, height) -> bytes``, or None without a target;
    checked before the image is read."""
    if target_size is not None:
        if isinstance(target_size, bool) or not isinstance(target_size, int) or target_size <= 0:
            raise CodecError(f"target size must be a positive number of bytes, got {target_size!r}")
        return lambda w, h: target_size
    if target_bpp is not None:
        try:
            bpp = float(target_bpp)
        except (TypeError, ValueError):
            raise CodecError(f"target bpp must be a number, got {target_bpp!r}") from None
        if not 0 < bpp < 1e6 or math.isnan(bpp):
            raise CodecError(f"target bpp must be a positive number, got {target_bpp}")
        return lambda w, h: int(bpp * w * h / 8)
    return None


def _analyze_tiles(net, rgb: np.ndarray, tile: int):
    """g_a of each tile, computed from the tile plus its context and cropped to the tile's latent,
    before the gain; raster order. Pads ``rgb`` to the model's stride by replicating the border."""
    import torch

    h, w = rgb.shape[:2]
    dev = next(net.parameters()).device
    s, ls = net.config.stride, net.config.stride // 4  # 64 (z grid), 16 (y grid)
    hp, wp = h + (-h % s), w + (-w % s)
    if (hp, wp) != (h, w):  # replicate the border: no artificial edges to spend bits on
        rgb = np.pad(rgb, ((0, hp - h), (0, wp - w), (0, 0)), mode="edge")
    for (y0, y1, x0, x1), (ry0, ry1, rx0, rx1) in _tile_rects(hp, wp, tile):
        x = torch.from_numpy(np.array(rgb[ry0:ry1, rx0:rx1])).to(dev)  # a writable copy
        x = x.permute(2, 0, 1)[None].float().div_(255)
        yield net.analyze(x, None)[..., (y0 - ry0) // ls:(y1 - ry0) // ls, (x0 - rx0) // ls:(x1 - rx0) // ls]


def _pack_latents(net, model_id: str, weights_hash: str, width: int, height: int, layout: int,
                  quality: float, tile: int, latents, alpha_png: bytes | None) -> bytes:
    """Gain, entropy-code and pack the tiles' latents (from :func:`_analyze_tiles`)."""
    level = quality_to_level(quality, net.config.num_levels)
    tiles = []
    for y in latents:
        out = net.compress_latents(net.apply_gain(y, level))
        tiles.append((out["z"], out["y"]))
    return fmt.pack(Container(width=width, height=height, layout=layout, quality=quality, model_id=model_id,
                              weights_hash=weights_hash, tile=tile, tiles=tuple(tiles), alpha=alpha_png))


def encode_with(net, model_id: str, weights_hash: str, rgb: np.ndarray, alpha: np.ndarray | None,
                layout: int, quality: float, tile: int = DEFAULT_TILE) -> bytes:
    """Encode prepared pixels (:func:`prepare_image`) with a model already in memory — the one
    coding path, also used by training's evaluation. One tile's latent in memory at a time."""
    h, w = rgb.shape[:2]
    return _pack_latents(net, model_id, weights_hash, w, h, layout, quality, tile, _analyze_tiles(net, rgb, tile),
                         _png_bytes(alpha) if alpha is not None else None)


QUALITY_STEP = 0.05  # the rate search stops when the bracket is this narrow (the header keeps 0.01)


def encode_within(net, model_id: str, weights_hash: str, rgb: np.ndarray, alpha: np.ndarray | None,
                  layout: int, max_bytes: int, tile: int = DEFAULT_TILE) -> bytes:
    """The highest-quality file of at most ``max_bytes`` bytes (quality found to ``QUALITY_STEP``).

    g_a runs once; each trial re-applies the gain and entropy-codes — the very bytes
    :func:`encode_with` writes at that quality. The quality is found by regula falsi on
    log(size), which is smooth in quality, guarded to shrink the bracket by ≥ 10 % a trial; it
    stops early when a file fills ≥ 99.5 % of the budget. Raises :class:`CodecError` when even
    quality 0 is larger than ``max_bytes``.
    """
    h, w = rgb.shape[:2]
    latents = list(_analyze_tiles(net, rgb, tile))
    alpha_png = _png_bytes(alpha) if alpha is not None else None

    def at(q: float) -> bytes:
        return _pack_latents(net, model_id, weights_hash, w, h, layout, q, tile, latents, alpha_png)

    hi_q, hi = 100.0, at(100.0)
    if len(hi) <= max_bytes:
        return hi
    lo_q, lo = 0.0, at(0.0)
    if len(lo) > max_bytes:
        raise CodecError(f"cannot fit this {w}×{h} image into {max_bytes} bytes: the smallest file "
                         f"(quality 0) is {len(lo)} bytes ({8 * len(lo) / (w * h):.3f} bpp)")
    for _ in range(40):
        if hi_q - lo_q <= QUALITY_STEP or len(lo) >= 0.995 * max_bytes:
            break
        f = (math.log(max_bytes) - math.log(len(lo))) / (math.log(len(hi)) - math.log(len(lo)))
        q = round(lo_q + min(0.9, max(0.1, f)) * (hi_q - lo_q), 2)
        if not lo_q < q < hi_q:
            break
        d = at(q)
        if len(d) <= max_bytes:
            lo_q, lo = q, d
        else:
            hi_q, hi = q, d
    return lo


def _decode_alpha(data: bytes, width: int, height: int) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(data), formats=["PNG"]) as im:
            if im.size != (width, height) or im.mode != "L":
                raise FormatError("corrupt alpha section (wrong size or mode)")
            return np.asarray(im)
    except (OSError, SyntaxError, ValueError) as exc:
        if isinstance(exc, FormatError):
            raise
        raise FormatError("corrupt alpha section") from None


def _load_for(c: Container, device: str, model):
    from ..models import registry

    return registry.load(model if model is not None else c.model_id, device=_device(device),
                         weights_hash=c.weights_hash)[0]


def _latents(net, c: Container):
    """ŷ of the whole (padded) image, tile by tile."""
    import torch

    s, ls = net.config.stride, net.config.stride // 4
    hp, wp = -(-c.height // s) * s, -(-c.width // s) * s
    y_hat = torch.empty(1, net.config.M, hp // ls, wp // ls, device=next(net.parameters()).device)
    for ((y0, y1, x0, x1), _), (z_str, y_str) in zip(_tile_rects(hp, wp, c.tile), c.tiles):
        try:
            y_t = net.decompress_latents(y_str, z_str, ((y1 - y0) // s, (x1 - x0) // s))
        except (RuntimeError, ValueError) as exc:
            raise FormatError(f"corrupt latent data ({_one_line(exc)})") from None
        y_hat[..., y0 // ls:y1 // ls, x0 // ls:x1 // ls] = y_t
    return y_hat


def decode_latents(data: bytes, *, device: str = "cpu", model: str | os.PathLike | None = None):
    """The entropy-decoded latents ŷ ``(1, M, H/16, W/16)`` (padded) — bit-identical on every device."""
    c = fmt.unpack(bytes(data))
    return _latents(_load_for(c, device, model), c)


def _synthesize(net, c: Container, y_hat) -> np.ndarray:
    """Pixels (H, W, 3) uint8, tile by tile; each tile sees MARGIN pixels of neighbouring latents."""
    import torch

    ls = net.config.stride // 4
    hp, wp = y_hat.shape[-2] * ls, y_hat.shape[-1] * ls
    level = quality_to_level(c.quality, net.config.num_levels)
    out = np.empty((c.height, c.width, 3), np.uint8)
    for (y0, y1, x0, x1), (ry0, ry1, rx0, rx1) in _tile_rects(hp, wp, c.tile):
        if y0 >= c.height or x0 >= c.width:
            continue
        x_hat = net.synthesize(y_hat[..., ry0 // ls:ry1 // ls, rx0 // ls:rx1 // ls], level)
        if not torch.isfinite(x_hat).all():
            raise FormatError("corrupt latent data (decoded to invalid values)")
        y1, x1 = min(y1, c.height), min(x1, c.width)
        crop = x_hat[0, :, y0 - ry0:y1 - ry0, x0 - rx0:x1 - rx0]
        out[y0:y1, x0:x1] = crop.mul(255).round_().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return out


def decode(data: bytes, *, device: str = "cpu", max_pixels: int = fmt.DEFAULT_MAX_PIXELS,
           model: str | os.PathLike | None = None) -> Image.Image:
    """Decode .aec bytes to a PIL image (mode L, LA, RGB or RGBA as encoded)."""
    c = fmt.unpack(bytes(data), max_pixels=max_pixels)
    return decode_with(_load_for(c, device, model), c)


def decode_with(net, c: Container) -> Image.Image:
    """Decode a parsed container with a model already in memory (see :func:`encode_with`)."""
    img = Image.fromarray(_synthesize(net, c, _latents(net, c)), "RGB")
    if c.layout in (Layout.GRAY, Layout.GRAY_ALPHA):
        img = img.convert("L")
    if c.layout in Layout.WITH_ALPHA:
        img.putalpha(Image.fromarray(_decode_alpha(c.alpha, c.width, c.height), "L"))
    return img


def info(data: bytes) -> dict:
    """Header fields of an .aec file (validated; the payload is not decoded)."""
    c = fmt.unpack(bytes(data))
    rows, cols = fmt.tile_grid(c.width, c.height, c.tile)
    return {"format_version": c.version, "model_id": c.model_id, "weights_hash": c.weights_hash,
            "width": c.width, "height": c.height, "layout": Layout.NAMES[c.layout], "quality": c.quality,
            "bytes": len(data), "bpp": 8 * len(data) / (c.width * c.height),
            "tile": c.tile, "tiles": f"{cols}x{rows}",
            "sections": {"z": sum(len(z) for z, _ in c.tiles), "y": sum(len(y) for _, y in c.tiles),
                         "alpha": len(c.alpha or b"")}}


# ----------------------------------------------------------------------------- files
def write_atomic(path: str | os.PathLike, data: bytes | None = None, *, save=None, overwrite: bool = False) -> None:
    """Write ``data`` (or call ``save(tmp_path)``) to a temp file beside ``path``, then rename.

    Never leaves a partial file: on any error (or Ctrl-C) the temp file is removed.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise CodecError(f"{path}: output directory {path.parent} does not exist")
    if path.exists() and not overwrite:
        raise CodecError(f"{path}: already exists (use --force to overwrite)")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            if data is not None:
                f.write(data)
        if save is not None:
            save(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def encode_file(src: ImageLike, dst: str | os.PathLike, quality: float | None = None, *,
                overwrite: bool = False, **kwargs) -> bytes:
    data = encode(src, quality, **kwargs)
    write_atomic(dst, data, overwrite=overwrite)
    return data


_NO_ALPHA = {"JPEG", "BMP", "PPM"}


def save_image(img: Image.Image, dst: str | os.PathLike, *, overwrite: bool = False) -> None:
    """Save with the format chosen from the file name (PNG for unknown or no extension)."""
    ext = Path(dst).suffix.lower()
    fmt_name = Image.registered_extensions().get(ext, "PNG") if ext else "PNG"
    if fmt_name in _NO_ALPHA and img.mode in ("RGBA", "LA"):
        warnings.warn(f"{fmt_name} cannot store alpha; the alpha channel is dropped", stacklevel=2)
        img = img.convert("RGB" if img.mode == "RGBA" else "L")
    kwargs = {"quality": 95} if fmt_name in ("JPEG", "WEBP", "AVIF") else {}

    def save(tmp: str) -> None:
        img.save(tmp, format=fmt_name, **kwargs)

    try:
        write_atomic(dst, save=save, overwrite=overwrite)
    except (KeyError, OSError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise CodecError(f"{dst}: cannot write {fmt_name} ({_one_line(exc)})") from None


def read_file(src: str | os.PathLike) -> bytes:
    """The bytes of a file, with one-line errors for a missing file or a directory."""
    try:
        return Path(src).read_bytes()
    except FileNotFoundError:
        raise CodecError(f"{src}: no such file") from None
    except IsADirectoryError:
        raise CodecError(f"{src}: is a directory") from None


def decode_file(src: str | os.PathLike, dst: str | os.PathLike, *, overwrite: bool = False, **kwargs) -> Image.Image:
    img = decode(read_file(src), **kwargs)
    save_image(img, dst, overwrite=overwrite)
    return img
