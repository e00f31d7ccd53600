"""See where the bits go: rate and error maps of the real codec (what anomaly ranking reads).

:func:`inspect` runs an image through the codec exactly as ``aecodec encode`` does
(:func:`aecodec.codec.api.encode`), or takes an existing ``.aec`` file, and then reads the file
back once, through the decoder itself (:func:`aecodec.codec.api.decode_with`, whose tile
pipeline hands over each tile's decoded latents on the way): the z string gives the quantised
hyper-latent ẑ, the exact fixed-point ``h_s`` gives y's CDF indexes and means, and the y string
gives ŷ — tile by tile for tiled files, each tile's latents placed on the image's latent grid.
Nothing is re-estimated with a second model path; the bits of each latent symbol are read off the
very CDF tables that coded it, priced as the file's coder spends them (format 3:
:func:`aecodec.entropy.ans.symbol_bits`, numpy; formats 1 and 2, CompressAI's rANS:
:func:`aecodec.entropy.coding.symbol_bits`, with the torch model those files decode with)::

    bits(s) = -log2((cdf[v + 1] - cdf[v]) / 2**16)       v = s - offset[index], in the table
    bits(s) = -log2(P(escape)) + log2(25) + max(n - 1, 0) s outside the table, format 3: the escape
                                                          symbol, the bit length n of its zigzag
                                                          code, then the code below its leading one
    bits(s) = -log2(P(escape)) + 4 · (n + n // 15 + 1)    s outside the table, formats 1 and 2: the
                                                          escape symbol, then the value in n 4-bit
                                                          bypass chunks after a 4-bit chunk count
                                                          (15 means "15 more")

with ``s = round(ŷ - μ)`` for y (index from ``entropy_parameters(ẑ)``) and
``s = round(ẑ - median)`` for z (one table per channel). The only bits the map leaves out are
the coder's termination (format 3: the final 64-bit state in whole 32-bit words, up to 64 bits per
string; CompressAI's rANS: the 64-bit state flush less the initial state, 32–64 bits per string);
they are reported as ``coder_overhead_bits``, so for anything but a thumbnail the map's total is
the payload within a fraction of a percent.

The **rate map** is in bits per pixel: the y bits of each latent position (summed over channels)
plus 1/16 of the z bits of the hyper-latent position above it (each z position covers 4×4 y
positions), spread evenly over the 16×16 pixels the position covers. The codec pads images to a
multiple of 64 by replicating the border; latent positions that cover only padding are charged
to the nearest position inside the image, and a position that straddles the border spreads its
bits over its pixels inside the image, so the map sums to the symbols' bits exactly (the border's
share is reported as ``padding_bits``; the report's rate panel notes it when it is above 0.5 %).

The **error map** is the per-pixel squared error averaged over the channels (the gray plane for
gray images; alpha is coded losslessly and not counted). PSNR is over all pixels and channels;
SSIM is pytorch-msssim's (Gaussian window 11, σ 1.5, ``data_range=255``, computed in numpy by
:mod:`aecodec.metrics`), for images whose smaller side is at least 11 pixels. ``bpp`` is measured
on the real file bytes.

:func:`aecodec.ranking.rank` scores every image of a folder from these maps — by default its
worst-reconstructed region against what is usual — to find what does not belong (:mod:`aecodec.ranking`).
:func:`~aecodec.reports.render_report` draws the PNG (:mod:`aecodec.reports`).

    >>> from aecodec.inspection import inspect
    >>> from aecodec.reports import render_report
    >>> r = inspect("photo.png", quality=75)
    >>> r.bpp, r.psnr, r.rate_map.sum() / r.payload_bits     # ≈ 1
    >>> open("report.png", "wb").write(render_report(r))
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass, field
from typing import Optional, Union

import numpy as np
from PIL import Image

from .codec import api
from .codec import format as fmt
from .codec.format import Layout
from .codec.geometry import padded, strip_repeat, unfold
from .codec.images import prepare_image, to_image
from .entropy.ans import symbol_bits
from .metrics import psnr_from_mse, squared_error, ssim

__all__ = ["Inspection", "inspect", "finite"]

Source = Union[str, os.PathLike, bytes, bytearray, Image.Image, np.ndarray]


# ----------------------------------------------------------------------------- the result
@dataclass
class Inspection:
    """What :func:`inspect` found. Arrays are numpy; images uint8 ``(H, W, 3)`` or ``(H, W)``."""

    source: str
    width: int
    height: int
    quality: float
    layout: str
    model_id: str
    weights_hash: str
    file_bytes: int  # the whole .aec file
    section_bytes: dict  # {"z": …, "y": …, "alpha": …}, summed over tiles
    tile: int  # tile side of the file (pixels); each tile is coded independently
    tiles: int  # number of tiles (each has a z and a y rANS string)
    reconstruction: np.ndarray
    rate_map: np.ndarray  # (H, W) float64, bits per pixel; sums to the coded y + z bits
    y_bits: np.ndarray  # (H/16, W/16) bits of each y position (padded image), summed over channels
    z_bits: np.ndarray  # (H/64, W/64) bits of each z position, summed over channels
    padding_bits: float  # bits spent on the replicated border (part of the edge blocks' bits)
    escapes: int  # symbols outside their CDF table (coded in bypass mode)
    original: Optional[np.ndarray] = None  # None for .aec input
    error_map: Optional[np.ndarray] = None  # (H, W) float64 squared error, mean over channels
    ssim: Optional[float] = None
    extra: dict = field(default_factory=dict)

    @property
    def pixels(self) -> int:
        return self.width * self.height

    @property
    def bpp(self) -> float:
        """Bits per pixel of the whole file (header, sections, CRC)."""
        return 8 * self.file_bytes / self.pixels

    @property
    def payload_bits(self) -> int:
        """Bits of the y and z sections as written in the file."""
        return 8 * (self.section_bytes["y"] + self.section_bytes["z"])

    @property
    def payload_bpp(self) -> float:
        return self.payload_bits / self.pixels

    @property
    def map_bits(self) -> float:
        return float(self.y_bits.sum() + self.z_bits.sum())

    @property
    def mse(self) -> Optional[float]:
        return None if self.error_map is None else float(self.error_map.mean())

    @property
    def psnr(self) -> Optional[float]:
        mse = self.mse
        return None if mse is None else psnr_from_mse(mse)

    def regions(self, rows: int = 4, cols: int = 4) -> list[dict]:
        """bpp (from the rate map) and MSE of each cell of a ``rows × cols`` grid."""
        ys = np.linspace(0, self.height, min(rows, self.height) + 1).round().astype(int)
        xs = np.linspace(0, self.width, min(cols, self.width) + 1).round().astype(int)
        out = []
        for r in range(len(ys) - 1):
            for c in range(len(xs) - 1):
                y0, y1, x0, x1 = int(ys[r]), int(ys[r + 1]), int(xs[c]), int(xs[c + 1])
                cell = {"row": r, "col": c, "x0": x0, "y0": y0, "x1": x1, "y1": y1,
                        "bits": float(self.rate_map[y0:y1, x0:x1].sum()),
                        "bpp": float(self.rate_map[y0:y1, x0:x1].mean())}
                if self.error_map is not None:
                    mse = float(self.error_map[y0:y1, x0:x1].mean())
                    cell["mse"] = mse
                    cell["psnr"] = finite(psnr_from_mse(mse))
                out.append(cell)
        return out

    def to_dict(self, rows: int = 4, cols: int = 4) -> dict:
        """The numbers as JSON-ready Python objects (inf/NaN become None)."""
        y_map, z_map = float(self.y_bits.sum()), float(self.z_bits.sum())
        y_file, z_file = 8 * self.section_bytes["y"], 8 * self.section_bytes["z"]
        return {
            "source": self.source, "width": self.width, "height": self.height, "layout": self.layout,
            "quality": self.quality, "model_id": self.model_id, "weights_hash": self.weights_hash,
            "totals": {"bytes": self.file_bytes, "bpp": self.bpp, "payload_bpp": self.payload_bpp,
                       "mse": self.mse, "psnr": finite(self.psnr), "ssim": self.ssim},
            "rate": {"y_bits_map": y_map, "z_bits_map": z_map, "total_bits_map": y_map + z_map,
                     "y_bits_file": y_file, "z_bits_file": z_file, "payload_bits_file": y_file + z_file,
                     "coder_overhead_bits": (y_file + z_file) - (y_map + z_map),
                     "padding_bits": self.padding_bits,
                     "map_over_file": (y_map + z_map) / (y_file + z_file) if y_file + z_file else None,
                     "escaped_symbols": self.escapes, "section_bytes": dict(self.section_bytes),
                     "tile": self.tile, "tiles": self.tiles},
            "regions": {"rows": rows, "cols": cols, "cells": self.regions(rows, cols)},
        }


def finite(v):
    """A float for JSON: None for None, inf and NaN."""
    return None if v is None or not math.isfinite(v) else float(v)


# ----------------------------------------------------------------------------- inspect
def _read_aec(source) -> Optional[bytes]:
    """The bytes of ``source`` if it is an .aec file (by its magic bytes), else None; a file is read
    no further than its header allows (:func:`~aecodec.codec.files.read_file`)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    if isinstance(source, (str, os.PathLike)):
        try:
            with open(source, "rb") as f:
                if f.read(len(fmt.MAGIC)) != fmt.MAGIC:
                    return None
            from .codec.files import read_file

            return read_file(source)
        except (FileNotFoundError, IsADirectoryError):
            return None  # prepare_image reports it in its own words
    return None


def inspect(source: Source, quality: Optional[float] = None, *, model: str | os.PathLike | None = None,
            device: str = "cpu") -> Inspection:
    """Encode an image at ``quality`` (default :data:`~aecodec.codec.api.DEFAULT_QUALITY`) and
    measure where the bits go; or measure an existing .aec file (path or bytes; its own quality).

    Raises :class:`~aecodec.errors.CodecError` / :class:`~aecodec.errors.FormatError`
    with one-line messages, like the codec API.
    """
    data = _read_aec(source)
    name = _name(source)
    if data is not None:
        c = fmt.unpack(data)
        if quality is not None and round(float(quality), 2) != c.quality:
            warnings.warn(f"{name}: an .aec file is inspected at its own quality ({c.quality:g}); "
                          f"quality {quality:g} ignored", stacklevel=2)
        original = None
    else:
        q = api.DEFAULT_QUALITY if quality is None else quality
        rgb, alpha, layout = prepare_image(source)  # read once; encode sees the same pixels
        original = rgb[..., 0] if layout in Layout.GRAYS else rgb
        data = api.encode(to_image(rgb, alpha, layout), q, model=model, device=device)
        c = fmt.unpack(data)
    return _measure(data, c, name, original, model=model, device=device)


def _name(source) -> str:
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    return f"<{type(source).__name__}>"


def _measure(data: bytes, c: fmt.Container, name: str, original: Optional[np.ndarray], *,
             model, device: str) -> Inspection:
    net = api.load_model(model, device=device, container=c)[0]
    s, ls = net.config.stride, net.config.stride // 4  # pixels per z (64) and per y (16) position
    cw, ch = c.coded_size  # the image as coded: itself, or folded (format.py)
    hp, wp = padded(ch, cw, s)
    y_pos, z_pos = np.zeros((hp // ls, wp // ls)), np.zeros((hp // s, wp // s))
    escapes = 0

    def on_tile(rect, lat: dict) -> None:  # the decoder's own latents of each tile
        nonlocal escapes
        y0, y1, x0, x1 = rect
        yb, zb, n = _tile_bits(net, lat, c.version)
        y_pos[y0 // ls:y1 // ls, x0 // ls:x1 // ls] = yb
        z_pos[y0 // s:y1 // s, x0 // s:x1 // s] = zb
        escapes += n

    img = api.decode_with(net, c, on_tile=on_tile)  # the real decoder, once
    rate_map, padding_bits = _pixel_map(y_pos, z_pos, ch, cw, ls)
    if c.strips > 1:  # back to the image: a repeated line's bits are the sum of its copies'
        folded_total = rate_map.sum()
        rate_map = unfold(rate_map, c.width, c.height, c.strips) * strip_repeat(min(c.width, c.height))
        padding_bits += float(folded_total - rate_map.sum())  # the end of the last strip
    rec = np.asarray(img.convert("L" if c.layout in Layout.GRAYS else "RGB"))
    error = ssim_value = None
    if original is not None:
        error = squared_error(original, rec)
        ssim_value = ssim(original, rec)
    return Inspection(
        source=name, width=c.width, height=c.height, quality=c.quality, layout=Layout.NAMES[c.layout],
        model_id=c.model_id, weights_hash=c.weights_hash, file_bytes=len(data),
        section_bytes={"z": sum(len(z) for z, _ in c.tiles), "y": sum(len(y) for _, y in c.tiles),
                       "alpha": len(c.alpha or b"")},
        tile=c.tile, tiles=len(c.tiles), reconstruction=rec,
        rate_map=rate_map, y_bits=y_pos, z_bits=z_pos, padding_bits=padding_bits, escapes=escapes,
        original=original, error_map=error, ssim=ssim_value)


def _tile_bits(net, lat: dict, version: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Bits per y position and per z position of one tile (summed over channels), and the
    number of escaped symbols, from the tables that coded them (format ``version``'s coder)."""
    if version in fmt.LEGACY:
        return _legacy_tile_bits(net, lat)
    coding = net.coding
    y_values = np.round(lat["y_hat"] - lat["means"]).astype(np.int64)  # exactly the values of the y string
    y_bits, y_esc = symbol_bits(y_values, lat["indexes"], coding.y_tables)
    z_hat = lat["z_hat"]
    z_values = np.round(z_hat - coding.medians[None, :, None, None]).astype(np.int64)  # z is coded around its medians
    z_idx = np.broadcast_to(np.arange(z_hat.shape[1]).reshape(1, -1, 1, 1), z_values.shape)  # one table per channel
    z_bits, z_esc = symbol_bits(z_values, z_idx, coding.z_tables)
    return y_bits[0].sum(0), z_bits[0].sum(0), y_esc + z_esc


def _legacy_tile_bits(net, lat: dict) -> tuple[np.ndarray, np.ndarray, int]:
    """:func:`_tile_bits` of a format 1 or 2 file, coded with CompressAI's rANS: its costs
    (:func:`aecodec.entropy.coding.symbol_bits`), with the torch model such files decode with."""
    import torch

    torch_net = net.torch_model()
    gc, eb = torch_net.gaussian_conditional, torch_net.entropy_bottleneck
    t = {k: torch.from_numpy(np.asarray(v)) for k, v in lat.items()}
    y_bits, y_esc = gc.symbol_bits(torch.round(t["y_hat"] - t["means"]).long(), t["indexes"])
    z_sym = torch.round(t["z_hat"] - eb.medians().cpu().to(t["z_hat"])).long()
    z_idx = torch.arange(z_sym.shape[1]).reshape(1, -1, 1, 1).expand_as(z_sym)
    z_bits, z_esc = eb.symbol_bits(z_sym, z_idx)
    return y_bits[0].sum(0).cpu().numpy(), z_bits[0].sum(0).cpu().numpy(), y_esc + z_esc


def _pixel_map(y_pos: np.ndarray, z_pos: np.ndarray, height: int, width: int, S: int):
    """Bits per pixel ``(height, width)`` from bits per y position (S×S pixels each) and per z
    position (4×4 y positions each) of the padded image; and the bits of the padding (the part
    of each position's footprint outside the image), which the map charges to the edge."""
    k = y_pos.shape[0] // z_pos.shape[0]  # y positions per z position along a side (4)
    bits = y_pos + np.kron(z_pos, np.ones((k, k))) / (k * k)  # (h, w) bits per y position
    inside_r = np.clip(height - S * np.arange(bits.shape[0]), 0, S)
    inside_c = np.clip(width - S * np.arange(bits.shape[1]), 0, S)
    padding = float((bits * (1 - np.outer(inside_r, inside_c) / S**2)).sum())
    h_in, w_in = -(-height // S), -(-width // S)  # positions that cover some of the image
    bits[h_in - 1, :] += bits[h_in:, :].sum(0)  # padding-only rows / columns → the nearest edge
    bits[:, w_in - 1] += bits[:, w_in:].sum(1)
    bits = bits[:h_in, :w_in]
    rows = np.minimum(S, height - S * np.arange(h_in))  # pixels of each position inside the image
    cols = np.minimum(S, width - S * np.arange(w_in))
    density = bits / (rows[:, None] * cols[None, :])
    return np.repeat(np.repeat(density, S, 0), S, 1)[:height, :width], padding
