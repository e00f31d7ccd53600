"""Rate-based anomaly ranking: which images of a folder cost the most bits.

A model trained on normal photos spends many bits where an image is unlike them, so the most
expensive images at one quality come first — a simple anomaly detector. Each image is measured
by :func:`aecodec.inspection.inspect`.
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

from .codec.api import DEFAULT_QUALITY
from .codec.format import FormatError
from .codec.images import IMAGE_SUFFIXES, image_files
from .errors import CodecError
from .inspection import Inspection, finite, inspect

__all__ = ["Ranking", "rank"]


@dataclass
class Ranking:
    """What :func:`rank` found: ``rows`` highest bpp first, the top inspections, skipped files."""

    folder: str
    quality: float
    rows: list[dict]
    top: list[Inspection]
    skipped: list[dict] = field(default_factory=list)

    COLUMNS = ("rank", "file", "width", "height", "bpp", "file_bpp", "bytes", "mse", "psnr", "ssim")

    def to_csv(self) -> str:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=self.COLUMNS, lineterminator="\n")
        w.writeheader()
        for row in self.rows:
            w.writerow({k: ("" if row[k] is None else row[k]) for k in self.COLUMNS})
        return buf.getvalue()

    def to_dict(self) -> dict:
        return {"folder": self.folder, "quality": self.quality,
                "score": "bpp: bits of the coded y and z sections per pixel, highest (most unusual) first",
                "images": self.rows, "skipped": self.skipped}


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


def rank(folder: str | os.PathLike, quality: float = DEFAULT_QUALITY, *, top: int = 10,
         model: str | os.PathLike | None = None, device: str = "cpu",
         progress: Optional[Callable[[str], None]] = None) -> Ranking:
    """Score every image in ``folder`` (not recursive) by the bits per pixel the codec spends on
    it at ``quality``, most expensive — most unusual for the model — first.

    The score ``bpp`` counts the coded y and z sections (the header and an alpha plane say nothing
    about the content); ``file_bpp``, reconstruction ``mse``, ``psnr`` and ``ssim`` come along.
    Unreadable images are skipped with a warning. The ``top`` inspections are kept for
    :func:`render_contact_sheet`.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise CodecError(f"{folder}: not a directory")
    if top < 1:
        raise CodecError(f"top must be at least 1, got {top}")
    files = image_files([folder])
    skipped = []
    for path, reason in not_files(folder):
        skipped.append({"file": path.name, "reason": reason})
        warnings.warn(f"{path}: skipped ({reason})", stacklevel=2)
    if not files:
        raise CodecError(f"{folder}: no images found")
    rows, heap = [], []
    for n, path in enumerate(files):
        if progress is not None:
            progress(str(path))
        try:
            r = inspect(path, quality, model=model, device=device)
        except (CodecError, FormatError) as exc:
            skipped.append({"file": path.name, "reason": str(exc)})
            warnings.warn(f"{path.name}: skipped ({exc})", stacklevel=2)
            continue
        rows.append({"file": path.name, "width": r.width, "height": r.height, "bpp": r.payload_bpp,
                     "file_bpp": r.bpp, "bytes": r.file_bytes, "mse": r.mse, "psnr": finite(r.psnr),
                     "ssim": r.ssim})
        item = (r.payload_bpp, -n, r)  # ties: the earlier file name ranks higher
        if len(heap) < top:
            heapq.heappush(heap, item)
        else:
            heapq.heappushpop(heap, item)
    if not rows:
        raise CodecError(f"{folder}: none of the {len(files)} images could be read")
    rows.sort(key=lambda row: (-row["bpp"], row["file"]))
    rows = [{"rank": i, **row} for i, row in enumerate(rows, 1)]
    best = [r for _, _, r in sorted(heap, key=lambda t: (-t[0], -t[1]))]
    return Ranking(folder=str(folder), quality=round(float(quality), 2), rows=rows, top=best, skipped=skipped)
