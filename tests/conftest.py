"""Fixtures of the whole suite: the Kodak images, small synthetic images and photos, a folder of
training photos, the shipped model (torch, and as the codec runs it), and one thread for tiny training runs. Plain helpers are in
tests/helpers.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.helpers import KODAK, smooth_image


@pytest.fixture(scope="session")
def kodak() -> Path:
    if not (KODAK / "kodim23.png").is_file():
        pytest.skip(f"needs the Kodak images in {KODAK} (../shared is absent outside the project workspace)")
    return KODAK


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


@pytest.fixture(scope="session")
def photo_pixels() -> np.ndarray:
    """A 128×96 photo-like image in memory (for the encoder search's tests)."""
    return smooth_image(96, 128, seed=3)


@pytest.fixture
def data_dir(tmp_path) -> Path:
    """A folder of four small training photos."""
    from PIL import Image

    d = tmp_path / "photos"
    d.mkdir()
    for i in range(4):
        Image.fromarray(smooth_image(80 + 8 * i, 96, seed=i)).save(d / f"p{i}.png")
    return d


@pytest.fixture(scope="session")
def net():
    """The shipped torch model (zoo.load caches it: the model training, the encoder search and the
    entropy tests use; the codec runs :func:`codec_net`)."""
    from aecodec.models import zoo

    return zoo.load()[0]


@pytest.fixture(scope="session")
def codec_net():
    """The shipped model as the codec runs it (runtime.load caches it: the very CodecModel
    ``aecodec.encode`` and ``decode`` use — the runtime bundle's ONNX transforms, numpy in and out)."""
    from aecodec.models import runtime

    return runtime.load()


@pytest.fixture(scope="session")
def images() -> list[np.ndarray]:
    """A synthetic image, and three Kodak photos cropped to 256×384 where ../shared has them (to keep
    the int64 reference of the fixed-point tests fast)."""
    from aecodec.codec.images import prepare_image

    imgs = [smooth_image(128, 192, seed=1)]
    if (KODAK / "kodim23.png").is_file():
        imgs += [prepare_image(KODAK / f"kodim{i:02d}.png")[0][:256, :384] for i in (1, 7, 23)]
    return imgs


@pytest.fixture
def one_thread():
    """Tiny models train ~20× faster on one thread than on two on a busy 2-core machine
    (OpenMP threads spin-wait for each other); every training run of the tests is tiny."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
