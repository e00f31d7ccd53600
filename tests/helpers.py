"""What several test modules share: synthetic images, the paths of the repository and of the Kodak
images, tiny training options, and the checks of a command's result. A plain module (fixtures live in
conftest.py): ``from tests.helpers import smooth_image``."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]  # the repository
SHARED = Path(os.environ.get("AECODEC_SHARED", ROOT.parent / "shared"))
KODAK = SHARED / "datasets" / "kodak"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# ----------------------------------------------------------------------------- images
def smooth_image(h: int, w: int, channels: int = 3, seed: int = 0) -> np.ndarray:
    """A photo-like test image: smooth gradients, a few edges and mild noise (uint8)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    base = []
    for c in range(channels):
        f = 90 + 60 * np.sin(xx / (7 + 3 * c) + c) * np.cos(yy / (11 + 2 * c)) + 40 * (xx > w / 2)
        base.append(f + rng.normal(0, 4, (h, w)))
    arr = np.clip(np.stack(base, -1), 0, 255).astype(np.uint8)
    return arr[..., 0] if channels == 1 else arr


def synthetic(width=96, height=80, mode="RGB", seed=0) -> Image.Image:
    """Smooth gradients and waves plus mild noise: compresses like a photo, not like noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(width, height)
    channels = 3 if mode == "RGB" else 1
    planes = [120 + 60 * x - 40 * y + 50 * np.sin(2 * np.pi * (1.5 * x + (c + 1) * y) + c) for c in range(channels)]
    a = np.stack(planes, -1) + rng.normal(0, 4, (height, width, channels))
    a = np.clip(np.rint(a), 0, 255).astype(np.uint8)
    return Image.fromarray(a if channels == 3 else a[..., 0], mode)


def with_noise_patch(img: np.ndarray, y0: int, y1: int, x0: int, x1: int, seed: int = 0,
                     grain: int = 4) -> np.ndarray:
    """A copy of ``img`` with a patch of random noise in ``grain``×``grain``-pixel blocks of random
    colours: an out-of-place texture. (Per-pixel noise, grain 1, is no test for a briefly trained
    model: it cannot afford such detail, reconstructs it as flat gray and spends few bits on it —
    measured with the CPU-trained weights, which the 4-pixel texture does not fool.)"""
    out = img.copy()
    h, w = y1 - y0, x1 - x0
    blocks = np.random.default_rng(seed).integers(0, 256, (-(-h // grain), -(-w // grain), 3), dtype=np.uint8)
    out[y0:y1, x0:x1] = np.repeat(np.repeat(blocks, grain, 0), grain, 1)[:h, :w, : out.shape[2]]
    return out


def unknown_pixel_format_texture() -> bytes:
    """A DDS texture whose header names no pixel format: Pillow raises NotImplementedError (not
    an OSError) while opening it."""
    return b"DDS " + struct.pack("<4I", 124, 0x1007, 4, 4) + bytes(108)


# ----------------------------------------------------------------------------- files
def payload_bits(data: bytes) -> int:
    """The bits of a .aec file's rANS strings (z and y of every tile)."""
    from aecodec.codec import format as fmt

    c = fmt.unpack(data)
    return 8 * sum(len(z) + len(y) for z, y in c.tiles)


# ----------------------------------------------------------------------------- training
def train_opts(data_dir, out, **kw):
    """Options of a tiny CPU training run (N 16, M 24, crops of 64) over ``data_dir``."""
    from aecodec.train import TrainOptions

    base = dict(data=[data_dir], out=out, steps=6, batch_size=2, crop=64, N=16, M=24, warmup=2,
                device="cpu", log_every=1)
    base.update(kw)
    return TrainOptions(**base)


def logged(logs: list[str], what: str) -> list[float]:
    """Values of one field (``loss``, ``lr`` …) of the ``step`` lines."""
    return [float(l.split()[l.split().index(what) + 1]) for l in logs if l.startswith("step ")]


# ----------------------------------------------------------------------------- the command line
def ok(result):
    """A CliRunner result that succeeded."""
    assert result.exit_code == 0, result.output
    return result


def fails(result, message: str):
    """A CliRunner result that failed with ``message`` in one line, not a stack trace."""
    assert result.exit_code != 0, result.output
    assert message in result.output, result.output
    assert "Traceback" not in result.output
    lines = [l for l in result.output.splitlines() if l.strip()]
    assert len(lines) == 1, result.output  # one line, not a stack trace
    return result


# ----------------------------------------------------------------------------- benchmarks
def aecodec_api_or_skip():
    """Skip the test where aecodec or its public encode is missing (benchmarks run without it)."""
    try:
        import aecodec
    except ImportError:
        pytest.skip("aecodec not importable")
    if not callable(getattr(aecodec, "encode", None)):
        pytest.skip("aecodec.encode does not exist yet")


# ----------------------------------------------------------------------------- a runtime without torch
def no_torch_env(tmp_path, blocked=("torch", "compressai")) -> dict:
    """An environment for ``subprocess.run`` in which the modules ``blocked`` are missing, as in a
    runtime install (``pip install aecodec``): a ``sitecustomize`` in ``tmp_path`` marks each of
    them absent in ``sys.modules``, so importing it (or a submodule) raises ImportError and
    ``importlib.util.find_spec`` finds nothing. The repository comes first on PYTHONPATH."""
    site = tmp_path / "no-torch-site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(f"import sys\n\nsys.modules.update(dict.fromkeys({list(blocked)!r}))\n")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(ROOT)] + [p for p in [env.get("PYTHONPATH")] if p])
    return env
