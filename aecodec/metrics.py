"""Distortion metrics on 8-bit images: PSNR, SSIM, MS-SSIM — one definition for the codec's
inspection, training's evaluation and the benchmarks.

Images are uint8 arrays (H, W) or (H, W, C), or PIL images of mode "L" or "RGB". PSNR is over all
channels together (RGB for colour images, the gray plane for gray ones). SSIM and MS-SSIM come from
pytorch-msssim with data_range=255 (Gaussian window 11, sigma 1.5): SSIM is None for images whose
smaller side is below :data:`SSIM_MIN_SIDE`, MS-SSIM (5 scales) below :data:`MS_SSIM_MIN_SIDE`.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["SSIM_MIN_SIDE", "MS_SSIM_MIN_SIDE", "to_array", "squared_error", "psnr_from_mse", "psnr", "ssim",
           "ms_ssim", "ssim_and_ms_ssim", "ms_ssim_db", "image_metrics"]

SSIM_MIN_SIDE = 11  # pytorch-msssim's Gaussian window
MS_SSIM_MIN_SIDE = 161  # pytorch-msssim requires smaller side > (11 - 1) * 2**4


def to_array(image) -> np.ndarray:
    """uint8 array of shape (H, W, C) from a PIL image or an array."""
    a = np.asarray(image)
    if a.dtype != np.uint8:
        raise TypeError(f"expected 8-bit pixels, got {a.dtype}")
    return a[..., None] if a.ndim == 2 else a


def squared_error(ref, rec) -> np.ndarray:
    """Per-pixel squared error ``(H, W)`` (float64), the mean over the channels."""
    a, b = to_array(ref).astype(np.float64), to_array(rec).astype(np.float64)
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch {a.shape} vs {b.shape}")
    return ((a - b) ** 2).mean(-1)


def psnr_from_mse(mse, data_range: float = 255.0):
    """PSNR in dB of a mean squared error: a float (inf for 0) or, for a torch tensor, a tensor."""
    if hasattr(mse, "log10"):  # a torch tensor (training statistics): no host sync
        return 10 * (data_range**2 / mse).log10()
    return math.inf if mse == 0 else float(10 * math.log10(data_range**2 / mse))


def psnr(ref, rec, data_range: float = 255.0) -> float:
    """Peak signal-to-noise ratio in dB over all pixels and channels; inf if identical."""
    return psnr_from_mse(float(squared_error(ref, rec).mean()), data_range)


def _tensor(image):
    import torch

    a = to_array(image)  # (H, W, C)
    return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1), dtype=np.float32))[None]


def ssim(ref, rec) -> float | None:
    """SSIM, or None when the image is smaller than the Gaussian window."""
    from pytorch_msssim import ssim as _ssim

    if min(to_array(ref).shape[:2]) < SSIM_MIN_SIDE:
        return None
    return float(_ssim(_tensor(ref), _tensor(rec), data_range=255, size_average=True))


def ms_ssim(ref, rec) -> float | None:
    """MS-SSIM, or None when the image is too small for its 5 scales."""
    from pytorch_msssim import ms_ssim as _ms_ssim

    h, w = to_array(ref).shape[:2]
    if min(h, w) < MS_SSIM_MIN_SIDE:
        return None
    return float(_ms_ssim(_tensor(ref), _tensor(rec), data_range=255, size_average=True))


def ssim_and_ms_ssim(ref, rec) -> tuple[float, float | None]:
    """`ssim` and `ms_ssim` in one pass: MS-SSIM's finest scale is the SSIM computation, so it is done
    once (pytorch-msssim's own per-scale function and weights; equal to the two public calls)."""
    try:
        import torch
        import torch.nn.functional as F
        from pytorch_msssim.ssim import _fspecial_gauss_1d, _ssim
    except ImportError:  # another pytorch-msssim layout: two separate calls
        return ssim(ref, rec), ms_ssim(ref, rec)
    x, y = _tensor(ref), _tensor(rec)
    if min(x.shape[-2:]) < SSIM_MIN_SIDE:
        return None, None
    win = _fspecial_gauss_1d(11, 1.5).repeat([x.shape[1], 1, 1, 1])
    ssim_per_channel, cs = _ssim(x, y, data_range=255, win=win, size_average=False)
    first = float(ssim_per_channel.mean())
    if min(x.shape[-2:]) < MS_SSIM_MIN_SIDE:
        return first, None
    weights = x.new_tensor([0.0448, 0.2856, 0.3001, 0.2363, 0.1333])
    mcs = []
    for _ in range(len(weights) - 1):
        mcs.append(torch.relu(cs))
        padding = [s % 2 for s in x.shape[2:]]
        x, y = F.avg_pool2d(x, kernel_size=2, padding=padding), F.avg_pool2d(y, kernel_size=2, padding=padding)
        ssim_per_channel, cs = _ssim(x, y, data_range=255, win=win, size_average=False)
    stacked = torch.stack(mcs + [torch.relu(ssim_per_channel)], dim=0)  # (level, batch, channel)
    return first, float(torch.prod(stacked ** weights.view(-1, 1, 1), dim=0).mean())


def ms_ssim_db(value: float | None) -> float | None:
    """MS-SSIM on a dB scale, -10 log10(1 - MS-SSIM)."""
    if value is None:
        return None
    return math.inf if value >= 1 else -10 * math.log10(1 - value)


def image_metrics(ref, rec) -> dict:
    """psnr, ssim, ms_ssim and ms_ssim_db of a reconstruction against its reference."""
    s, m = ssim_and_ms_ssim(ref, rec)
    return {"psnr": psnr(ref, rec), "ssim": s, "ms_ssim": m, "ms_ssim_db": ms_ssim_db(m)}
