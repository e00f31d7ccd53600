"""The architecture's configuration, saved inside every checkpoint and runtime bundle: plain data,
no torch, so the runtime (:mod:`aecodec.models.runtime`) reads it as the training code does."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

from ..codec import format as fmt
from ..entropy.exact import FixedPoint
from ..errors import brief

__all__ = ["HyperpriorConfig", "FixedPoint", "MAX_LEVELS", "MAX_SCALE_LEVELS", "MAX_SCALE"]

MAX_LEVELS = 256  # gain levels a config may have
MAX_SCALE_LEVELS = 1024  # CDF tables of y a config may ask for
MAX_SCALE = 4096.0  # largest table scale: its CDF (≈ 12·scale symbols) must fit 16-bit probabilities


@dataclass(frozen=True)
class HyperpriorConfig:
    """Architecture of :class:`MeanScaleHyperprior`; saved inside every checkpoint."""

    N: int = 128
    M: int = 192
    # Rate–distortion trade-off of each trained gain level, low rate to high (MSE on [0,1]·255²).
    lambdas: tuple[float, ...] = (0.0018, 0.0035, 0.0067, 0.013, 0.025, 0.0483, 0.0932, 0.18)
    scale_min: float = 0.11
    scale_max: float = 256.0
    scale_levels: int = 64
    fixed_point: FixedPoint = field(default_factory=FixedPoint)
    # A zero-initialised linear Haar shortcut beside g_a and g_s (aux_transform.py); off in old checkpoints.
    aux_transform: bool = False

    @property
    def stride(self) -> int:
        return 64  # g_a downsamples 16×, h_a another 4×

    @property
    def num_levels(self) -> int:
        return len(self.lambdas)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["lambdas"] = list(self.lambdas)
        if not self.aux_transform:  # a model without the shortcut saves the config older versions read
            del d["aux_transform"]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "HyperpriorConfig":
        """The config a checkpoint saved, each field checked (a ``ValueError`` naming the first
        wrong one): a damaged or hostile config must neither build a huge model nor one that
        breaks later. Fields it lacks keep their defaults, as when it was saved."""
        if not isinstance(d, dict):
            raise ValueError(f"the config is of type {type(d).__name__}, not a mapping")
        unknown = sorted(map(str, set(d) - {f.name for f in fields(cls)}))
        if unknown:
            raise ValueError(f"unknown config field {brief(unknown[0])}")
        d = dict(d)
        for name in ("N", "M"):
            if name in d:
                _check_int(name, d[name], 1, fmt.MAX_CHANNELS)
        if "scale_levels" in d:
            _check_int("scale_levels", d["scale_levels"], 1, MAX_SCALE_LEVELS)
        if "lambdas" in d:
            lam = d["lambdas"]
            if not isinstance(lam, (list, tuple)) or not 1 <= len(lam) <= MAX_LEVELS:
                raise ValueError(f"lambdas must be a list of 1 to {MAX_LEVELS} numbers")
            for x in lam:
                _check_float("lambdas", x, 0.0, math.inf)
            d["lambdas"] = tuple(float(x) for x in lam)
        for name in ("scale_min", "scale_max"):
            if name in d:
                _check_float(name, d[name], 0.0, MAX_SCALE)
        if d.get("scale_min", cls.scale_min) >= d.get("scale_max", cls.scale_max):
            raise ValueError("scale_min must be below scale_max")
        if "aux_transform" in d and not isinstance(d["aux_transform"], bool):
            raise ValueError("aux_transform must be true or false")
        if "fixed_point" in d:
            d["fixed_point"] = _fixed_point(d["fixed_point"])
        return cls(**d)


def _check_int(name: str, value, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ValueError(f"{name} must be a whole number from {lo} to {hi}, not {brief(value)}")


def _check_float(name: str, value, lo: float, hi: float) -> None:
    """A finite number in ``(lo, hi]`` (``lo`` excluded: scales and λ are positive)."""
    if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
            or not lo < value <= hi):
        raise ValueError(f"{name} must be a number above {lo:g} and at most {hi:g}, not {brief(value)}")


def _fixed_point(d) -> FixedPoint:
    """A :class:`FixedPoint` from its saved fields, each within what :func:`check_bounds` can weigh."""
    if not isinstance(d, dict) or not set(d) <= {f.name for f in fields(FixedPoint)}:
        raise ValueError("fixed_point must map w_bits, w_max, a_bits and a_max to numbers")
    for name in ("w_bits", "a_bits"):
        if name in d:
            _check_int(f"fixed_point.{name}", d[name], 0, 52)
    for name in ("w_max", "a_max"):
        if name in d:
            _check_float(f"fixed_point.{name}", d[name], 0.0, 2.0**52)
    return FixedPoint(**d)


