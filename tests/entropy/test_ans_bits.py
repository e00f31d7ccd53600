"""aecodec.entropy.ans.symbol_bits: the v3 coder's cost of each symbol — by hand on a small table, and summed
against the real strings of real tiles (the map of ``aecodec inspect`` is made of it)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from aecodec.entropy import ans
from aecodec.entropy.ans import symbol_bits
from tests.entropy.test_ans import _latent, gaussian_tables
from tests.helpers import KODAK, smooth_image


def test_in_table_values_cost_their_16_bit_frequency_and_escapes_add_their_length_and_code():
    cdf = [0, 32768, 49152, 65535, 65536, 0]  # values -1, 0, 1, then the escape symbol (frequency 1)
    tables = ans.Tables(np.array([cdf]), np.array([5]), np.array([-1]))
    values = np.array([[-1, 0, 1], [2, -2, 9]])  # in the table; above it (raw 0, n 0); below it (raw 1); above (raw 14)
    bits, escapes = symbol_bits(values, np.zeros_like(values), tables)
    escape = 16 + math.log2(25)  # the escape symbol, then the length of the zigzag code
    np.testing.assert_allclose(bits, [[1, 2, -math.log2(16383 / 65536)], [escape, escape, escape + 3]])
    assert bits.dtype == np.float64 and escapes == 3


@pytest.mark.parametrize("seed", range(3))
def test_the_bits_of_a_string_with_many_escapes_are_its_length_less_the_final_state(seed):
    tables = gaussian_tables()
    values, idx = _latent(tables, 20000, seed)
    rng = np.random.default_rng(seed)
    values[:500] = rng.integers(-ans.MAX_VALUE, ans.MAX_VALUE, 500)  # escapes of every length
    bits, escapes = symbol_bits(values, idx, tables)
    assert escapes >= 500
    left = 8 * len(ans.encode(values, idx, tables)) - bits.sum()
    assert -8 <= left <= 64  # the coder's 24-bit rounding of the probabilities, then its final state


def _tiles(image: np.ndarray, tile: int):
    """Each tile's y and z (values, indexes, tables, string) of a real file: the strings as written,
    the values and indexes as the decoder finds them."""
    import aecodec
    from aecodec.codec import api
    from aecodec.codec import format as fmt

    c = fmt.unpack(aecodec.encode(image, 60, tile=tile))
    net = api.load_model(container=c)[0]
    coding, latents = net.coding, []
    api.decode_with(net, c, on_tile=lambda rect, lat: latents.append(lat))
    for (z_string, y_string), lat in zip(c.tiles, latents, strict=True):
        z_values = np.round(lat["z_hat"] - coding.medians[None, :, None, None])
        z_indexes = np.broadcast_to(np.arange(z_values.shape[1])[:, None, None], z_values.shape)
        yield np.round(lat["y_hat"] - lat["means"]), lat["indexes"], coding.y_tables, y_string
        yield z_values, z_indexes, coding.z_tables, z_string


def _photo() -> np.ndarray:
    if (KODAK / "kodim23.png").exists():
        from PIL import Image

        return np.asarray(Image.open(KODAK / "kodim23.png").convert("RGB"))
    return smooth_image(256, 384, seed=2)


@pytest.mark.parametrize("tile", [1024, 128])
def test_the_bits_of_real_tiles_are_their_strings_within_one_percent_and_the_final_state(tile):
    for values, indexes, tables, string in _tiles(_photo(), tile):
        bits = symbol_bits(values.astype(np.int64), indexes, tables)[0].sum()
        real = 8 * len(string)
        assert 0 <= real - bits <= 0.01 * real + 64, (real, bits)
