"""Pictures of an inspection: the report of one image and the contact sheet of a ranking.

PNG bytes drawn with matplotlib on an Agg canvas (no pyplot state): :func:`render_report` shows
the original, the reconstruction, the rate map (bits per pixel) and the error map of an
:class:`~aecodec.inspection.Inspection`; :func:`render_contact_sheet` the top images of a
:class:`~aecodec.ranking.Ranking`, each beside the map that scored it, its region outlined.

matplotlib is the ``[plots]`` extra, not part of the runtime install: :func:`has_matplotlib` tells
a command whether it can draw, :func:`needs_matplotlib` says in one line what it cannot.
"""

from __future__ import annotations

import importlib.util
import io
import math
from pathlib import Path

import numpy as np

from .inspection import Inspection
from .ranking import Ranking

__all__ = ["render_report", "render_contact_sheet", "has_matplotlib", "needs_matplotlib", "PLOTS_HINT"]

PLOTS_HINT = "pip install 'aecodec[plots]'"


def has_matplotlib() -> bool:
    """Whether matplotlib (the ``[plots]`` extra) is installed, without importing it."""
    return importlib.util.find_spec("matplotlib") is not None


def needs_matplotlib(what: str) -> str:
    """The one line saying that ``what`` (a picture) needs the ``[plots]`` extra."""
    return f"{what} needs matplotlib: {PLOTS_HINT}"


def _title(r: Inspection) -> str:
    parts = [f"q {r.quality:g}", f"{r.bpp:.3f} bpp ({r.file_bytes} bytes)"]
    if r.psnr is not None:
        parts.append("PSNR ∞" if math.isinf(r.psnr) else f"PSNR {r.psnr:.2f} dB")
    if r.ssim is not None:
        parts.append(f"SSIM {r.ssim:.4f}")
    return f"{Path(r.source).name} — " + ", ".join(parts)


def _show(ax, image: np.ndarray, title: str) -> None:
    if image.ndim == 2:
        ax.imshow(image, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    else:
        ax.imshow(image, interpolation="nearest")
    ax.set_title(title, fontsize=10)
    ax.set_axis_off()


def _png(fig, dpi: int) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def _aspect(height: int, width: int) -> float:
    """A panel's height / width: the image's, within 1/4 … 3 (a 1×100 000 strip must not make a
    figure of a hundred thousand inches, nor one of zero)."""
    return min(3.0, max(0.25, height / width))


def render_report(r: Inspection, *, dpi: int = 100) -> bytes:
    """A PNG: original, reconstruction, rate map (bits/pixel) and error map, totals in the title.

    For .aec input (no original) only the reconstruction and the rate map are drawn.
    """
    from matplotlib.figure import Figure

    panels = 4 if r.original is not None else 2
    cols = 2
    rows = panels // cols
    panel_w = 6.0
    panel_h = panel_w * _aspect(r.height, r.width) + 0.5  # extreme shapes: the image is drawn inside, not the figure stretched
    fig = Figure(figsize=(cols * panel_w + 1.2, rows * panel_h + 0.7), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    fig.suptitle(_title(r), fontsize=12)
    i = 0
    if r.original is not None:
        _show(axes[i], r.original, "original")
        i += 1
    _show(axes[i], r.reconstruction, "reconstruction")
    ax = axes[i + 1]
    im = ax.imshow(r.rate_map, cmap="inferno", vmin=0, interpolation="nearest")
    title = f"rate map: {r.map_bits / r.pixels:.3f} bpp of latents (y + z)"
    if r.padding_bits > 0.005 * r.map_bits:
        title += f"\nedge blocks include the padded border's {100 * r.padding_bits / r.map_bits:.0f}%"
    ax.set_title(title, fontsize=10)
    ax.set_axis_off()
    fig.colorbar(im, ax=ax, shrink=0.9, label="bits / pixel")
    if r.error_map is not None:
        ax = axes[i + 2]
        hi = float(np.percentile(r.error_map, 99.5)) or 1.0
        im = ax.imshow(r.error_map, cmap="magma", vmin=0, vmax=hi, interpolation="nearest")
        ax.set_title(f"squared error (mean over channels), MSE {r.mse:.2f}", fontsize=10)
        ax.set_axis_off()
        fig.colorbar(im, ax=ax, shrink=0.9, extend="max", label="squared error (8-bit levels²)")
    return _png(fig, dpi)




def render_contact_sheet(ranking: Ranking, *, cols: int = 3, dpi: int = 100) -> bytes:
    """A PNG of the top-ranked images, each beside the map that scored it — the error map for
    ``--by error``, the rate map otherwise (one colour scale for all) — with the image's region
    outlined on both."""
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    items = ranking.top
    by_error = ranking.by == "error"
    maps = [r.error_map if by_error else r.rate_map for r in items]
    cols = max(1, min(cols, len(items)))
    rows = -(-len(items) // cols)
    # Errors span orders of magnitude (a patch of noise: thousands; a photo: tens): the scale stops at
    # the typical map's 99.5th percentile, and what is above it — the anomalies — saturates.
    vmax = (float(np.median([np.percentile(m, 99.5) for m in maps])) if by_error
            else max(float(m.max()) for m in maps)) or 1.0
    aspect = max(_aspect(r.height, r.width) for r in items)
    cell_w = 2.6
    fig = Figure(figsize=(cols * 2 * cell_w + 1.0, rows * (cell_w * aspect + 0.6) + 0.8), layout="constrained")
    axes = fig.subplots(rows, 2 * cols, squeeze=False)
    what = {"error": "worst-reconstructed region", "peak": "most expensive region",
            "mean": "bits per pixel"}[ranking.by]
    fig.suptitle(f"{ranking.folder}: most unusual by {what} at q {ranking.quality:g} "
                 f"(top {len(items)} of {len(ranking.rows)})", fontsize=12)
    norm = Normalize(0, vmax)
    im = None
    for ax in axes.ravel():
        ax.set_axis_off()
    for k, (r, m) in enumerate(zip(items, maps)):
        row = ranking.row_of(r)
        a, b = axes[k // cols, 2 * (k % cols)], axes[k // cols, 2 * (k % cols) + 1]
        image = r.original if r.original is not None else r.reconstruction
        _show(a, image, f"#{k + 1} {Path(r.source).name}")
        im = b.imshow(m, cmap="magma" if by_error else "inferno", norm=norm, interpolation="nearest")
        score = f"score {row['score']:.2f}, " if ranking.by != "mean" else ""
        b.set_title(f"{score}{r.payload_bpp:.3f} bpp" + (f", {r.psnr:.1f} dB" if r.psnr and math.isfinite(r.psnr)
                                                          else ""), fontsize=9)
        x0, y0, x1, y1 = (row[f"region_{c}"] for c in ("x0", "y0", "x1", "y1"))
        for ax in (a, b):  # pixel edges: the region's first pixel starts at x0 - 0.5 in imshow's coordinates
            ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, edgecolor="#00e5ff",
                                   linewidth=1.5))
    fig.colorbar(im, ax=axes, shrink=0.6, extend="max" if by_error else "neither",
                 label="squared error (8-bit levels²)" if by_error else "bits / pixel")
    return _png(fig, dpi)
