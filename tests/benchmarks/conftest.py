"""The benchmarks' fixture: a folder of two synthetic images (RGB 96×80, gray 75×61)."""

from __future__ import annotations

import pytest

from tests.helpers import synthetic


@pytest.fixture
def dataset(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    synthetic().save(folder / "rgb.png")
    synthetic(75, 61, "L", seed=5).save(folder / "gray-odd.png")
    return folder
