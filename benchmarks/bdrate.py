"""The Bjøntegaard delta rate (BD-rate) of two rate–distortion curves.

The per-image metrics (PSNR, SSIM, MS-SSIM) are :mod:`aecodec.metrics`, shared with the codec.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["bd_rate"]


def _log_rate_integral(metric, log_rate, lo, hi, method):
    order = np.argsort(metric)
    x, y = metric[order], log_rate[order]
    x, inverse = np.unique(x, return_inverse=True)  # equal metric values: average their log-rates
    y = np.bincount(inverse, weights=y) / np.bincount(inverse)
    if method == "pchip":
        from scipy.interpolate import PchipInterpolator

        if len(x) < 2:
            return None
        return float(PchipInterpolator(x, y).integrate(lo, hi))
    if method == "cubic":
        if len(x) < 4:
            return None
        antiderivative = np.polyint(np.polyfit(x, y, 3))
        return float(np.polyval(antiderivative, hi) - np.polyval(antiderivative, lo))
    raise ValueError(f"unknown BD-rate method {method!r} (use 'pchip' or 'cubic')")


def bd_rate(rate_anchor, metric_anchor, rate_test, metric_test, method: str = "pchip") -> float | None:
    """Bjøntegaard delta rate of `test` against `anchor`, in percent.

    Log-rate is interpolated as a function of the quality metric (PCHIP, or the original cubic polyfit),
    and the two curves are integrated over the metric range they share. Negative means `test` needs
    fewer bits for the same quality. Points with a missing or non-finite value are dropped; None when
    the curves do not overlap or have too few points (2 for PCHIP, 4 for cubic).
    """
    curves = []
    for rate, metric in ((rate_anchor, metric_anchor), (rate_test, metric_test)):
        r = np.array([np.nan if v is None else v for v in rate], dtype=np.float64)
        m = np.array([np.nan if v is None else v for v in metric], dtype=np.float64)
        keep = np.isfinite(r) & np.isfinite(m) & (r > 0)
        curves.append((np.log(r[keep]), m[keep]))
    (la, ma), (lt, mt) = curves
    if len(ma) == 0 or len(mt) == 0:
        return None
    lo, hi = max(ma.min(), mt.min()), min(ma.max(), mt.max())
    if not hi > lo:
        return None
    ia = _log_rate_integral(ma, la, lo, hi, method)
    it = _log_rate_integral(mt, lt, lo, hi, method)
    if ia is None or it is None:
        return None
    return float((math.exp((it - ia) / (hi - lo)) - 1) * 100)
