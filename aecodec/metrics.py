"""Distortion metrics on 8-bit images: PSNR, SSIM, MS-SSIM — one definition for the codec's
inspection, training's evaluation and the benchmarks.

Images are uint8 arrays (H, W) or (H, W, C), or PIL images of mode "L" or "RGB". PSNR is over all
channels together (RGB for colour images, the gray plane for gray ones). SSIM and MS-SSIM are
computed in numpy (float64) by pytorch-msssim's definition with data_range=255, so that a runtime
without PyTorch reports the numbers training and the benchmarks always did: a separable Gaussian
window of 11 taps, sigma 1.5, "valid" filtering (no padding), K1 0.01 and K2 0.03, the mean over
each channel's map then over the channels; MS-SSIM takes 5 scales with the weights of Wang et al.,
2x2 average pooling that pads an odd side with a zero on both ends (counted in the average), and
clamps each scale's value at 0 before the weighted product. SSIM is None for images whose smaller
side is below :data:`SSIM_MIN_SIDE`, MS-SSIM below :data:`MS_SSIM_MIN_SIDE`.
"""

from __future__ import annotations

import math
import numpy as np

__all__ = ["SSIM_MIN_SIDE", "MS_SSIM_MIN_SIDE", "to_array", "squared_error", "psnr_from_mse", "psnr", "ssim",
           "ms_ssim", "ssim_and_ms_ssim", "ms_ssim_db", "image_metrics"]

WINDOW = 11  # taps of the Gaussian window (sigma 1.5, pytorch-msssim's defaults)
SSIM_MIN_SIDE = WINDOW  # "valid" filtering needs the whole window
MS_SSIM_MIN_SIDE = 161  # pytorch-msssim requires smaller side > (11 - 1) * 2**4
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)  # finest scale first
C1, C2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2  # (K1 L)^2, (K2 L)^2 with L = data_range = 255


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
    """PSNR in dB of a mean squared error: a float (inf for 0) or, for a tensor (anything with a
    ``log10`` method: training's statistics, kept on their device without a host sync), a tensor."""
    if hasattr(mse, "log10"):
        return 10 * (data_range**2 / mse).log10()
    return math.inf if mse == 0 else float(10 * math.log10(data_range**2 / mse))


def psnr(ref, rec, data_range: float = 255.0) -> float:
    """Peak signal-to-noise ratio in dB over all pixels and channels; inf if identical."""
    return psnr_from_mse(float(squared_error(ref, rec).mean()), data_range)


# pytorch-msssim's window, _fspecial_gauss_1d(11, 1.5), as the float32 taps it computes (half of
# them: it is symmetric). Copied, not recomputed: those taps sum to 1 only to float32's rounding,
# and SSIM of a real photo moves by up to 1e-5 with a window normalised exactly.
_HALF_WINDOW = np.array([0.0010283804, 0.007598758, 0.036000773, 0.10936069, 0.21300553, 0.26601171], np.float32)
_WINDOW_TAPS = np.concatenate([_HALF_WINDOW, _HALF_WINDOW[-2::-1]]).astype(np.float64)


def _filter_last(a: np.ndarray) -> np.ndarray:
    """The window along the last axis, "valid" (the axis shrinks by WINDOW - 1); the symmetric taps
    taken in pairs, one multiplication for two."""
    n, mid = a.shape[-1] - WINDOW + 1, WINDOW // 2
    out = _WINDOW_TAPS[mid] * a[..., mid : mid + n]
    for k in range(mid):
        pair = a[..., k : k + n] + a[..., WINDOW - 1 - k : WINDOW - 1 - k + n]
        pair *= _WINDOW_TAPS[k]
        out += pair
    return out


def _blur(a: np.ndarray) -> np.ndarray:
    """Separable Gaussian filter of the last two axes (rows then columns, as pytorch-msssim)."""
    return _filter_last(_filter_last(a.swapaxes(-2, -1)).swapaxes(-2, -1))


def _ssim_cs(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel SSIM and contrast-structure term of two (C, H, W) float64 images."""
    mu_x, mu_y, xx, yy, xy = _blur(np.stack([x, y, x * x, y * y, x * y]))
    mu_xx, mu_yy, mu_xy = mu_x * mu_x, mu_y * mu_y, mu_x * mu_y
    cs_map = (2 * (xy - mu_xy) + C2) / ((xx - mu_xx) + (yy - mu_yy) + C2)
    ssim_map = (2 * mu_xy + C1) / (mu_xx + mu_yy + C1) * cs_map
    return ssim_map.mean(axis=(-2, -1)), cs_map.mean(axis=(-2, -1))


def _pool(a: np.ndarray) -> np.ndarray:
    """2x2 average pooling of (C, H, W) as torch's avg_pool2d with padding = side % 2: an odd side
    gets a zero on both ends, counted in the average, so each side becomes ceil(side / 2)."""
    _, h, w = a.shape
    h2, w2 = (h + 1) // 2, (w + 1) // 2
    a = np.pad(a, ((0, 0), (h % 2, h % 2), (w % 2, w % 2)))[:, : 2 * h2, : 2 * w2]
    return a.reshape(a.shape[0], h2, 2, w2, 2).sum(axis=(2, 4)) / 4


def _planes(ref, rec) -> tuple[np.ndarray, np.ndarray]:
    """Both images as (C, H, W) float64 planes, refused unless they have one shape."""
    x, y = (to_array(image).transpose(2, 0, 1).astype(np.float64) for image in (ref, rec))
    if x.shape != y.shape:
        raise ValueError(f"shape mismatch {x.shape} vs {y.shape}")
    return x, y


def _ms_ssim(x: np.ndarray, y: np.ndarray, s: np.ndarray, cs: np.ndarray) -> float:
    """MS-SSIM of planes at least MS_SSIM_MIN_SIDE on a side, given the finest scale's per-channel
    SSIM ``s`` and ``cs``: each coarser scale's cs, the coarsest one's SSIM, each clamped at 0."""
    factors = []
    for weight in MS_SSIM_WEIGHTS[:-1]:
        factors.append(np.maximum(cs, 0) ** weight)
        x, y = _pool(x), _pool(y)
        s, cs = _ssim_cs(x, y)
    factors.append(np.maximum(s, 0) ** MS_SSIM_WEIGHTS[-1])
    return float(np.prod(factors, axis=0).mean())


def ssim(ref, rec) -> float | None:
    """SSIM, or None when the image is smaller than the Gaussian window."""
    return ssim_and_ms_ssim(ref, rec, multiscale=False)[0]


def ms_ssim(ref, rec) -> float | None:
    """MS-SSIM, or None when the image is too small for its 5 scales."""
    return ssim_and_ms_ssim(ref, rec)[1]


def ssim_and_ms_ssim(ref, rec, multiscale: bool = True) -> tuple[float | None, float | None]:
    """`ssim` and `ms_ssim` in one pass: MS-SSIM's finest scale is the SSIM computation, so it is done
    once. ``multiscale=False`` stops after SSIM (MS-SSIM None)."""
    x, y = _planes(ref, rec)
    side = min(x.shape[1:])
    if side < SSIM_MIN_SIDE:
        return None, None
    s, cs = _ssim_cs(x, y)
    if not multiscale or side < MS_SSIM_MIN_SIDE:
        return float(s.mean()), None
    return float(s.mean()), _ms_ssim(x, y, s, cs)


def ms_ssim_db(value: float | None) -> float | None:
    """MS-SSIM on a dB scale, -10 log10(1 - MS-SSIM)."""
    if value is None:
        return None
    return math.inf if value >= 1 else -10 * math.log10(1 - value)


def image_metrics(ref, rec) -> dict:
    """psnr, ssim, ms_ssim and ms_ssim_db of a reconstruction against its reference."""
    s, m = ssim_and_ms_ssim(ref, rec)
    return {"psnr": psnr(ref, rec), "ssim": s, "ms_ssim": m, "ms_ssim_db": ms_ssim_db(m)}
