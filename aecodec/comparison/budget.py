"""One image coded by aecodec and the classical codecs within one byte budget, decoded and measured.

The rule is :option:`aecodec encode --target-size`'s for every codec: the highest quality whose file
fits the budget. aecodec finds it with its own size search (:func:`aecodec.encode` with
``target_size``, to 0.05 of a quality step); a classical codec by bisection on its integer quality
setting through Pillow and its plugins (:func:`fit`). A codec that cannot run here (a plugin missing)
or whose smallest file is above the budget is left out, with the reason in one line; it is not an
error. Every file is then timed once more (encode, and decode after a warm-up), decoded, and
measured against the original in RGB (PSNR, MS-SSIM).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Sequence

from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import CodecError
from ..metrics import ms_ssim, psnr
from .codecs import CODECS, CodecUnavailable, get_codec
from .results import Coded, Comparison, CurvePoint

__all__ = ["DEFAULT_CODECS", "ALIASES", "MAX_PIXELS", "compare", "fit", "check_codecs", "search_values"]

DEFAULT_CODECS = ("aecodec", "jpeg-420", "webp", "avif", "jxl")
ALIASES = {"jpeg": "jpeg-420", "jpegxl": "jxl", "jpeg-xl": "jxl", "jp2": "jpeg2000", "heif": "heic"}
# A page carries every decode losslessly: a camera photo of 24 MP makes a page of ~250 MB that no
# browser tab holds comfortably. Larger images are refused before they are decoded.
MAX_PIXELS = 16_000_000



def check_codecs(names: Iterable[str]) -> list[str]:
    """The codec ids of ``names`` (aliases resolved, duplicates dropped, order kept), or
    :class:`CodecError` naming the unknown one and the choices."""
    ids: list[str] = []
    for raw in names:
        name = raw.strip().lower()
        name = ALIASES.get(name, name)
        if name not in CODECS:
            choices = ", ".join(sorted({*CODECS, *ALIASES}))
            raise CodecError(f"unknown codec {raw.strip()!r}; choose from {choices}")
        if name not in ids:
            ids.append(name)
    if not ids:
        raise CodecError("no codec to compare")
    return ids


def search_values(name: str) -> list[float]:
    """The quality settings a classical codec's search chooses from, worst to best: integers over
    the library's lossy range (for JPEG 2000 its target PSNR in dB, for PCA-8x8 its step, largest
    first). JPEG XL stops at 99: pillow-jxl-plugin keeps quality 100 for its lossless mode and
    refuses it without ``lossless=True``."""
    if name == "jpeg2000":
        return list(range(20, 61))
    if name == "pca-8x8":
        return list(range(255, 0, -1))
    low = 1 if name.startswith("jpeg") else 0
    return list(range(low, 100 if name == "jxl" else 101))


def fit(encode: Callable[[float], bytes], values: Sequence[float], budget: int) -> tuple[float, bytes] | None:
    """``(quality, file)``: the best of ``values`` (worst to best) whose file ``encode(quality)``
    is at most ``budget`` bytes, or None when even the worst one is larger.

    Size grows with quality, though not strictly for every codec (WebP and JPEG XL step back now
    and then): bisection finds the last fitting value assuming it does, then the next three values
    above are tried too, so that a small step back does not stop the search below a quality that fits.
    """
    files: dict[int, bytes] = {}

    def size(i: int) -> int:
        if i not in files:
            files[i] = encode(values[i])
        return len(files[i])

    if size(0) > budget:
        return None
    lo, hi = 0, len(values)  # size(lo) fits; everything from hi up is known not to (or is past the end)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if size(mid) <= budget:
            lo = mid
        else:
            hi = mid
    best = lo
    for i in range(lo + 1, min(lo + 4, len(values))):
        if size(i) <= budget:
            best = i
    return values[best], files[best]


def compare(image, *, size: int | None = None, bpp: float | None = None, quality: float | None = None,
            codecs: Iterable[str] | None = None, effort: int = 1, curves: bool = True, name: str | None = None,
            on_step: Callable[[str], None] | None = None) -> Comparison:
    """Code ``image`` (a path, PIL image or uint8 array) with each of ``codecs`` (default
    :data:`DEFAULT_CODECS`) within one byte budget: ``size`` bytes, ``bpp`` bits per pixel, or —
    with ``quality`` alone — the size of aecodec's file at that quality. Give one of the three
    (none: aecodec at quality 75). ``effort`` is aecodec's (1…9, as ``aecodec encode -e``; above 1
    its label says so, and its curve has three points, as in the benchmarks).
    ``curves`` also runs each codec's quality sweep on this image (its rate–distortion curve, a few
    seconds more). ``on_step`` is told what is being done (a progress bar's text).

    The comparison is of the RGB pixels (gray is compared as RGB, an alpha channel is left out).
    Raises :class:`CodecError` for a bad option or image, and when no codec fits the budget.
    """
    from ..codec.api import check_effort, check_quality, check_target
    from ..codec.images import load_rgb

    if sum(v is not None for v in (size, bpp, quality)) > 1:
        raise CodecError("give one of size, bpp or quality, not several")
    budget_of = check_target(size, bpp)
    q = check_quality(75 if quality is None else quality)
    effort = check_effort(effort)
    ids = check_codecs(DEFAULT_CODECS if codecs is None else codecs)
    if budget_of is None and "aecodec" not in ids:
        raise CodecError("without a size or bpp, the budget is aecodec's file at its quality: include aecodec")
    step = on_step or (lambda what: None)
    _check_pixels(image)
    original = Image.fromarray(load_rgb(image), "RGB")
    w, h = original.size
    label = name if name is not None else _name(image)

    runners = {}
    left_out: dict[str, str] = {}
    for cid in ids:
        # above effort 1, aecodec's curve is the benchmarks' three points (each encode is a search)
        codec = get_codec(f"aecodec-e{effort}" if cid == "aecodec" and effort > 1 else cid)
        try:
            codec.check()
        except CodecUnavailable as exc:
            left_out[cid] = str(exc)
            continue
        runners[cid] = codec

    coded: dict[str, Coded] = {}
    given: dict[str, tuple[float, bytes]] = {}  # a file the budget is taken from, not searched for
    if budget_of is None:
        given["aecodec"] = q, runners["aecodec"].encode(original, q)
        budget = len(given["aecodec"][1])
        target = f"aecodec at quality {q:g}"
    else:
        budget = budget_of(w, h)
        target = f"{budget} bytes" if size is not None else f"{bpp:g} bpp"
    for cid, codec in runners.items():
        step(f"{codec.label} within {budget} bytes")
        try:
            found = given.get(cid) or _fit_codec(cid, codec, original, budget)
        except CodecUnavailable as exc:
            left_out[cid] = str(exc)
            continue
        if isinstance(found, str):
            left_out[cid] = found
            continue
        coded[cid] = _measure(cid, codec, original, *found)
    if not coded:
        why = "; ".join(f"{CODECS[c].label}: {r}" for c, r in left_out.items())
        raise CodecError(f"{label}: no codec fits {budget} bytes ({why})")

    sweeps: dict[str, list[CurvePoint]] = {}
    if curves:
        for cid in coded:
            step(f"{runners[cid].label}: rate–distortion curve")
            sweeps[cid] = _sweep(runners[cid], original)
    return Comparison(name=label, original=original, budget=budget, target=target,
                      coded=[coded[c] for c in ids if c in coded], left_out=left_out, curves=sweeps,
                      labels={c: runners[c].label for c in sweeps})


def _name(image) -> str:
    """The file name of a path or of an opened PIL image; "image" for pixels without one."""
    path = image if isinstance(image, (str, os.PathLike)) else getattr(image, "filename", None)
    return Path(path).name if path else "image"


def _check_pixels(image) -> None:
    """Refuse an image above :data:`MAX_PIXELS` from its header, before its pixels are decoded."""
    w, h = _size(image)
    if w * h > MAX_PIXELS:
        raise CodecError(f"{_name(image)}: {w}×{h} = {w * h / 1e6:.1f} megapixels; aecodec compare takes up to "
                         f"{MAX_PIXELS / 1e6:.0f} (its page holds every decode losslessly): crop a region first")


def _size(image) -> tuple[int, int]:
    if isinstance(image, Image.Image):
        return image.size
    if isinstance(image, np.ndarray):
        return (image.shape[1], image.shape[0]) if image.ndim >= 2 else (0, 0)
    try:
        with Image.open(image) as im:
            return im.size
    except Exception:  # load_rgb says what is wrong with the file, in its words
        return 0, 0


def _fit_codec(cid: str, codec, original: Image.Image, budget: int):
    """``(quality, file)`` of the best file within ``budget``, or why there is none (a string).
    aecodec's own size search (``target_size``), at the effort of its wrapper ``codec``."""
    if cid == "aecodec":
        from ..codec.api import encode, info

        try:
            data = encode(original, target_size=budget, effort=codec.effort)
        except CodecError:
            smallest = len(codec.encode(original, 0))
            return f"its smallest file (quality 0) is {smallest} bytes, above the budget"
        return info(data)["quality"], data
    values = search_values(cid)
    try:
        found = fit(lambda v: codec.encode(original, v), values, budget)
    except Exception as exc:  # a library refusing this image (too large for WebP, …): that codec only
        return f"{codec.label} cannot code this image ({type(exc).__name__}: {exc})"
    if found is None:
        smallest = len(codec.encode(original, values[0]))
        return f"its smallest file (quality {values[0]:g}) is {smallest} bytes, above the budget"
    return found


def _measure(cid: str, codec, original: Image.Image, quality: float, data: bytes) -> Coded:
    """Time one more encode at ``quality`` and a decode of ``data`` (after a warm-up), and measure it."""
    start = time.perf_counter()
    codec.encode(original, quality)
    encode_s = time.perf_counter() - start
    codec.decode(data)  # warm-up: a library's first call loads it (aecodec: its model)
    start = time.perf_counter()
    rec = codec.decode(data)
    decode_s = time.perf_counter() - start
    rec = rec.convert("RGB")
    if rec.size != original.size:
        raise CodecError(f"{codec.label} decoded a {rec.size[0]}×{rec.size[1]} image from a "
                         f"{original.width}×{original.height} one")
    return Coded(codec=cid, label=codec.label, quality=float(quality), data=data, extension=codec.extension,
                 psnr=psnr(original, rec), ms_ssim=ms_ssim(original, rec), encode_s=encode_s, decode_s=decode_s,
                 reconstruction=rec)


def _sweep(codec, original: Image.Image) -> list[CurvePoint]:
    """The codec's benchmark sweep (:attr:`Codec.qualities`) on this image."""
    points = []
    for q in codec.qualities:
        try:
            r = codec.run(original, q)
        except Exception:  # a point the library refuses leaves a gap in the curve, not the comparison
            continue
        points.append(CurvePoint(quality=float(q), bytes=r.num_bytes, bpp=r.bpp,
                                 psnr=psnr(original, r.reconstruction.convert("RGB"))))
    return points
