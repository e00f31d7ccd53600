"""benchmarks.bdrate: BD-rate against known answers, both ways round, and None without overlap."""

from __future__ import annotations

import math

import numpy as np
import pytest

from benchmarks.bdrate import bd_rate

RATES = np.array([0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0])


PSNR_CURVE = 24 + 4.5 * np.log2(RATES / 0.1) - 0.08 * np.log2(RATES / 0.1) ** 2  # concave, like a real codec


MS_SSIM_DB_CURVE = 8 + 3.2 * np.log(RATES / 0.05)


@pytest.mark.parametrize("method", ["pchip", "cubic"])
@pytest.mark.parametrize("metric", [PSNR_CURVE, MS_SSIM_DB_CURVE], ids=["psnr", "ms-ssim-db"])
def test_bd_rate_of_the_same_curve_at_0_8_times_the_rate_is_minus_20_percent(metric, method):
    assert bd_rate(RATES, metric, 0.8 * RATES, metric, method=method) == pytest.approx(-20.0, abs=0.5)


@pytest.mark.parametrize("method", ["pchip", "cubic"])
def test_bd_rate_matches_the_closed_form_for_linear_log_rate_curves(method):
    # anchor: ln R = -5 + 0.15 D, test: ln R = -4.4 + 0.13 D (sampled at other points, other range).
    # Over the shared range [30, 38] the mean log-rate difference is 0.6 - 0.02 * 34 = -0.08.
    d_anchor, d_test = np.linspace(27, 38, 6), np.linspace(30, 41, 7)
    r_anchor, r_test = np.exp(-5 + 0.15 * d_anchor), np.exp(-4.4 + 0.13 * d_test)
    expected = (math.exp(-0.08) - 1) * 100
    assert bd_rate(r_anchor, d_anchor, r_test, d_test, method=method) == pytest.approx(expected, abs=1e-6)


def test_bd_rate_both_ways_round_trips_and_no_overlap_gives_none():
    other = 1.3 * RATES ** 1.1
    ab, ba = bd_rate(RATES, PSNR_CURVE, other, PSNR_CURVE), bd_rate(other, PSNR_CURVE, RATES, PSNR_CURVE)
    assert (1 + ab / 100) * (1 + ba / 100) == pytest.approx(1.0, abs=1e-9)
    assert bd_rate(RATES, PSNR_CURVE, RATES, PSNR_CURVE + 50) is None
