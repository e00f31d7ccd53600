from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

SHARED = Path(os.environ.get("AECODEC_SHARED", Path(__file__).resolve().parents[1].parent / "shared"))
KODAK = SHARED / "datasets" / "kodak"


@pytest.fixture(scope="session")
def kodak() -> Path:
    if not (KODAK / "kodim23.png").is_file():
        pytest.skip(f"needs the Kodak images in {KODAK} (../shared is absent outside the project workspace)")
    return KODAK


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


@pytest.fixture
def rgb_image() -> np.ndarray:
    return smooth_image(70, 90)


@pytest.fixture
def photo(tmp_path) -> Path:
    """A small PNG photo on disk (for the command line's tests)."""
    from PIL import Image

    path = tmp_path / "photo.png"
    Image.fromarray(smooth_image(40, 56)).save(path)
    return path


@pytest.fixture
def data_dir(tmp_path) -> Path:
    """A folder of four small training photos."""
    from PIL import Image

    d = tmp_path / "photos"
    d.mkdir()
    for i in range(4):
        Image.fromarray(smooth_image(80 + 8 * i, 96, seed=i)).save(d / f"p{i}.png")
    return d


def train_opts(data_dir, out, **kw):
    """Options of a tiny CPU training run (N 16, M 24, crops of 64) over ``data_dir``."""
    from aecodec.train import TrainOptions

    base = dict(data=[data_dir], out=out, steps=6, batch_size=2, crop=64, N=16, M=24, warmup=2,
                device="cpu", log_every=1)
    base.update(kw)
    return TrainOptions(**base)
