"""Anomaly ranking: which images of a folder hold something the model has not learned.

What a model trained on ordinary photos cannot represent costs it bits and comes back wrong, so
each image is measured by :func:`aecodec.inspection.inspect` (its rate map and its error map, the
decoder's own) and scored one of three ways (``by``):

- ``error`` (the default): the worst-reconstructed region — the highest mean squared error of any
  window of :data:`REGION_BLOCKS` × :data:`REGION_BLOCKS` latent positions (48 × 48 pixels) —
  divided by the reference's 99th percentile of the same windows. The textbook autoencoder
  anomaly score, made local, so that a small pasted object is not averaged away by the photo
  around it.
- ``peak``: the same for the rate map — the most expensive region's bits per pixel against the
  reference's 99th percentile.
- ``mean``: the bits per pixel of the whole image (y and z sections), as ``rank`` always did: the
  most detailed images first, not the ones holding something odd.

The reference is what is usual: the folder itself (anomalies are few, so its percentile is that of
its normal images), or a folder of known-normal images (``reference``). A score above 1 means a
region beyond nearly every region of the reference. Each image's **region** is the window that
scored, grown over the neighbouring latent positions that stand at least halfway between the
image's median and that window's value, and reported as pixel coordinates.

Why ``error`` is the default (``python -m benchmarks.rank_anomaly``, docs/usage.md): on eight Kodak
photos plus kodim23 with a 96 × 96 patch of pixel noise, or with a black-on-white text label, both
2 % of the image, the error score puts the doctored image first with a wide margin, while the rate
map saturates — the shipped model spends about 3 bits per pixel on its busiest natural texture and
no more on noise — so ``peak`` does not separate them, and ``mean`` ranks the busiest photos first.
"""

from __future__ import annotations

import csv
import heapq
import io
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from .codec.api import DEFAULT_QUALITY
from .codec.format import FormatError
from .codec.images import IMAGE_SUFFIXES, image_files
from .errors import CodecError
from .inspection import Inspection, finite, inspect

__all__ = ["Ranking", "rank", "SCORES", "DEFAULT_SCORE", "REGION_BLOCKS", "local_peak", "reference_level"]

SCORES = ("error", "peak", "mean")  # what --by chooses from
DEFAULT_SCORE = "error"
BLOCK = 16  # pixels per latent position (the rate map's resolution)
REGION_BLOCKS = 3  # a region's window, in latent positions: 48 × 48 pixels
PERCENTILE = 99.0  # of the reference's windows: "what is usual" stops here
# The quantiles kept of each image's window values, for the folder's percentile: 257 levels, half of
# them above the 95th percentile, where the score's reference lies.
SKETCH_LEVELS = np.unique(np.concatenate([np.linspace(0, 1, 129), np.linspace(0.95, 1, 129)]))
SCORE_TEXT = {
    "error": "error: the worst-reconstructed 48x48 region's mean squared error / the reference's "
             "99th percentile of such regions, highest (most unusual) first",
    "peak": "peak: the most expensive 48x48 region's bits per pixel / the reference's 99th percentile "
            "of such regions, highest (most unusual) first",
    "mean": "mean: bits of the coded y and z sections per pixel, highest (most detailed) first",
}


@dataclass
class Ranking:
    """What :func:`rank` found: ``rows`` by score, highest first; the top inspections and their
    rows; skipped files; the reference's level of each map (``reference``)."""

    folder: str
    quality: float
    by: str
    rows: list[dict]
    top: list[Inspection]
    skipped: list[dict] = field(default_factory=list)
    reference: dict = field(default_factory=dict)  # {"source", "images", "error", "peak"}: the 99th percentiles

    COLUMNS = ("rank", "file", "score", "width", "height", "bpp", "file_bpp", "bytes", "mse", "psnr", "ssim",
               "peak_bpp", "peak_mse", "region_x0", "region_y0", "region_x1", "region_y1")

    def row_of(self, inspection: Inspection) -> dict:
        """The row of one of the top inspections."""
        name = Path(inspection.source).name
        return next(row for row in self.rows if row["file"] == name)

    def to_csv(self) -> str:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=self.COLUMNS, lineterminator="\n")
        w.writeheader()
        for row in self.rows:
            w.writerow({k: ("" if row[k] is None else row[k]) for k in self.COLUMNS})
        return buf.getvalue()

    def to_dict(self) -> dict:
        return {"folder": self.folder, "quality": self.quality, "by": self.by, "score": SCORE_TEXT[self.by],
                "reference": self.reference, "images": self.rows, "skipped": self.skipped}


# ----------------------------------------------------------------------------- regions
def _blocks(m: np.ndarray) -> np.ndarray:
    """The mean of ``m`` over each BLOCK × BLOCK square (the edge squares over their pixels), without
    a copy of the map (a 50 MP image's is 400 MB)."""
    h, w = m.shape
    starts_r, starts_c = np.arange(0, h, BLOCK), np.arange(0, w, BLOCK)
    sums = np.add.reduceat(np.add.reduceat(m, starts_r, axis=0), starts_c, axis=1)
    return sums / np.outer(np.minimum(BLOCK, h - starts_r), np.minimum(BLOCK, w - starts_c))


def _windows(blocks: np.ndarray) -> tuple[np.ndarray, int]:
    """Every window's mean over REGION_BLOCKS × REGION_BLOCKS blocks (fewer on a small image), and its side."""
    k = min(REGION_BLOCKS, *blocks.shape)
    return np.lib.stride_tricks.sliding_window_view(blocks, (k, k)).mean((2, 3)), k


def local_peak(m: np.ndarray) -> tuple[float, tuple[int, int, int, int], np.ndarray, int]:
    """``(peak, region, sketch, windows)`` of a per-pixel map: the highest window mean, the region
    around it in pixels ``(x0, y0, x1, y1)`` (end exclusive), the quantiles of all the image's
    window means at :data:`SKETCH_LEVELS` (float32; its distribution, for the folder's percentile)
    and how many windows it has."""
    blocks = _blocks(m)
    windows, k = _windows(blocks)
    r, c = np.unravel_index(int(np.argmax(windows)), windows.shape)
    peak = float(windows[r, c])
    inside = np.zeros(blocks.shape, bool)
    inside[r:r + k, c:c + k] = True
    threshold = (float(np.median(blocks)) + peak) / 2
    grown = _grow(inside, blocks >= threshold)
    rows, cols = np.nonzero(grown)
    h, w = m.shape
    region = (int(cols.min()) * BLOCK, int(rows.min()) * BLOCK,
              min(w, (int(cols.max()) + 1) * BLOCK), min(h, (int(rows.max()) + 1) * BLOCK))
    sketch = np.quantile(windows, SKETCH_LEVELS).astype(np.float32)
    return peak, region, sketch, windows.size


def _grow(seed: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """``seed`` grown over the 8-connected ``allowed`` cells that touch it."""
    grown = seed.copy()
    while True:
        near = grown.copy()
        near[1:, :] |= grown[:-1, :]
        near[:-1, :] |= grown[1:, :]
        near[:, 1:] |= near[:, :-1].copy()
        near[:, :-1] |= near[:, 1:].copy()
        near = grown | (near & allowed)
        if np.array_equal(near, grown):
            return grown
        grown = near


def reference_level(sketches: list[tuple[np.ndarray, int]]) -> float:
    """The :data:`PERCENTILE` of the window means pooled over images, from each image's sketch (its
    quantiles at :data:`SKETCH_LEVELS`) and its number of windows (each image weighs as many windows
    as it has): the value where the pooled distribution — each image's read off its sketch by linear
    interpolation — reaches the percentile, found by bisection."""
    weights = np.array([n for _, n in sketches], np.float64)
    weights /= weights.sum()

    def below(x: float) -> float:  # the pooled fraction of windows at or below x
        return float(sum(w * np.interp(x, s, SKETCH_LEVELS, left=0.0, right=1.0) for (s, _), w in zip(sketches, weights)))

    lo = float(min(s[0] for s, _ in sketches))
    hi = float(max(s[-1] for s, _ in sketches))
    target = PERCENTILE / 100
    for _ in range(60):
        mid = (lo + hi) / 2
        if below(mid) >= target:
            hi = mid
        else:
            lo = mid
    return hi


def not_files(folder: Path) -> list[tuple[Path, str]]:
    """The entries of ``folder`` named like images that are not files (and so not ranked), each
    with why: a dangling symbolic link, a loop of links, a directory, a device or pipe."""
    found = []
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in IMAGE_SUFFIXES or path.is_file():
            continue
        if path.is_symlink() and not path.exists():
            try:
                path.resolve(strict=True)
                reason = "an unreadable symbolic link"
            except FileNotFoundError:
                reason = "a dangling symbolic link"
            except (OSError, RuntimeError):
                reason = "a loop of symbolic links"
        else:
            reason = "a directory" if path.is_dir() else "not a regular file"
        found.append((path, reason))
    return found


def rank(folder: str | os.PathLike, quality: float = DEFAULT_QUALITY, *, by: str = DEFAULT_SCORE, top: int = 10,
         reference: str | os.PathLike | None = None, model: str | os.PathLike | None = None, device: str = "cpu",
         progress: Optional[Callable[[str], None]] = None) -> Ranking:
    """Score every image in ``folder`` (not recursive) at ``quality`` by ``by`` (:data:`SCORES`),
    most unusual first; ``reference``, a folder of normal images, sets what is usual for ``error``
    and ``peak`` (default: ``folder`` itself).

    Every row carries all the measures: ``bpp`` (y and z sections per pixel), ``file_bpp``,
    ``bytes``, ``mse``, ``psnr``, ``ssim``, the highest region means ``peak_bpp`` and ``peak_mse``,
    ``score`` (``by``'s) and the scoring map's region (``region_x0`` … ``region_y1``, pixels, end
    exclusive). Unreadable images are skipped with a warning. The ``top`` inspections are kept for
    :func:`~aecodec.reports.render_contact_sheet`. ``progress`` is called with each file's path
    before it is measured (the reference's first).
    """
    if by not in SCORES:
        raise CodecError(f"unknown score {by!r}; choose from {', '.join(SCORES)}")
    if reference is not None and by == "mean":
        raise CodecError("a reference sets what is usual for the error and peak scores, not for mean")
    folder = Path(folder)
    if not folder.is_dir():
        raise CodecError(f"{folder}: not a directory")
    if top < 1:
        raise CodecError(f"top must be at least 1, got {top}")
    files = _images(folder)
    reference_files = _images(Path(reference)) if reference is not None else None
    levels: dict = {}
    if reference_files is not None:
        measured = [m for m in (_measure(p, quality, model, device, progress, None) for p in reference_files) if m]
        if not measured:
            raise CodecError(f"{reference}: none of the {len(reference_files)} reference images could be read")
        levels = {"source": str(reference), "images": len(measured),
                  **{key: reference_level([m[key][2:] for m in measured]) for key in ("error", "peak")}}
    rows, heap, sketches, skipped = [], [], {"error": [], "peak": []}, []
    for path, reason in not_files(folder):
        skipped.append({"file": path.name, "reason": reason})
        warnings.warn(f"{path}: skipped ({reason})", stacklevel=2)
    for n, path in enumerate(files):
        m = _measure(path, quality, model, device, progress, skipped)
        if m is None:
            continue
        r = m["inspection"]
        for key in sketches:
            sketches[key].append(m[key][2:])
        region = m["peak" if by == "mean" else by][1]
        rows.append({"file": path.name, "score": None, "width": r.width, "height": r.height, "bpp": r.payload_bpp,
                     "file_bpp": r.bpp, "bytes": r.file_bytes, "mse": r.mse, "psnr": finite(r.psnr), "ssim": r.ssim,
                     "peak_bpp": m["peak"][0], "peak_mse": m["error"][0],
                     **dict(zip(("region_x0", "region_y0", "region_x1", "region_y1"), region))})
        key = {"mean": r.payload_bpp, "peak": m["peak"][0], "error": m["error"][0]}[by]  # the score's order
        item = (key, -n, r)  # ties: the earlier file name ranks higher
        if len(heap) < top:
            heapq.heappush(heap, item)
        else:
            heapq.heappushpop(heap, item)
    if not rows:
        raise CodecError(f"{folder}: none of the {len(files)} images could be read")
    if reference_files is None:
        levels = {"source": str(folder), "images": len(rows),
                  **{key: reference_level(found) for key, found in sketches.items()}}
    for row in rows:
        row["score"] = {"mean": row["bpp"], "peak": _ratio(row["peak_bpp"], levels["peak"]),
                        "error": _ratio(row["peak_mse"], levels["error"])}[by]
    rows.sort(key=lambda row: (-row["score"], row["file"]))
    rows = [{"rank": i, **row} for i, row in enumerate(rows, 1)]
    best = [r for _, _, r in sorted(heap, key=lambda t: (-t[0], -t[1]))]
    return Ranking(folder=str(folder), quality=round(float(quality), 2), by=by, rows=rows, top=best,
                   skipped=skipped, reference=levels)


def _images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise CodecError(f"{folder}: not a directory")
    files = image_files([folder])
    if not files:
        raise CodecError(f"{folder}: no images found")
    return files


def _measure(path: Path, quality: float, model, device: str, progress, skipped: Optional[list]) -> Optional[dict]:
    """One image's inspection and :func:`local_peak` of its error map and its rate map (each
    ``(peak, region, sketch, windows)``), or None when it cannot be read: a warning, and a row of
    ``skipped`` (a reference image is only warned of)."""
    if progress is not None:
        progress(str(path))
    try:
        r = inspect(path, quality, model=model, device=device)
    except (CodecError, FormatError) as exc:
        if skipped is not None:
            skipped.append({"file": path.name, "reason": str(exc)})
        warnings.warn(f"{path.name}: skipped ({exc})", stacklevel=3)
        return None
    return {"inspection": r, "error": local_peak(r.error_map), "peak": local_peak(r.rate_map)}


def _ratio(value: float, level: float) -> float:
    """``value`` in units of the reference's level (a reference of flat images, whose level is 0,
    counts as a level of 1e-9: anything above it is then very unusual, and still a finite number)."""
    return value / max(level, 1e-9)
