"""Hostile .aec files: refused before any image-sized allocation; alpha sections Pillow refuses or that are corrupt."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import aecodec
from aecodec.codec import format as fmt
from aecodec.models import runtime
from tests.fuzz_decoder import craft
from tests.helpers import smooth_image

VERSIONS = [1, 3]  # aecodec 0.1's rules (strings of 8 bytes and more) and today's (any multiple of 4)


def _craft(width: int, height: int, tile_units: int, sections: list[bytes], version: int = fmt.VERSION) -> bytes:
    """A file written byte by byte, as an attacker would: any header, any sections, a valid CRC."""
    return craft(width, height, tile_units, sections, weights_hash=runtime.load().weights_hash, version=version)


def test_a_58_byte_file_claiming_one_4096_pixel_tile_is_refused_not_allocated():
    bomb = _craft(4096, 4096, 4096 // 64, [b"", b""])
    assert len(bomb) == 58 and len(_craft(4096, 4096, 4096 // 64, [b"", b""], version=1)) == 56
    with pytest.raises(aecodec.FormatError, match="invalid tile size 4096"):
        aecodec.decode(bomb)
    for units in (256, 1024):  # 16384 and 65536-pixel tiles
        with pytest.raises(aecodec.FormatError, match="invalid tile size"):
            aecodec.decode(_craft(65535, 1, units, [b"", b""]))


def test_an_empty_payload_is_a_format_error_not_a_noise_image():
    """Version 1: an empty section cannot be a rANS string (the format refuses it). Version 3: the
    format allows it (constriction writes nothing for symbols that leave its zero state at zero), but
    it decodes to the lowest value of every table — a noise image (measured: std 124) that no image
    encodes to — so the decoder refuses it before decoding any tile."""
    for w, h in ((1024, 1024), (1, 1)):
        with pytest.raises(aecodec.FormatError, match=r"cannot be a coded string \(a multiple of 4, at least 8\)"):
            aecodec.decode(_craft(w, h, 16, [b"", b""], version=1))
        with pytest.raises(aecodec.FormatError, match=r"corrupt latent data \(empty z string of tile 1\)"):
            aecodec.decode(_craft(w, h, 16, [b"", b""]))
    real = fmt.unpack(aecodec.encode(smooth_image(40, 56), quality=50))
    (z, y), = real.tiles
    for tiles, which in (((b"", y),), "z"), (((z, b""),), "y"):
        with pytest.raises(aecodec.FormatError, match=f"empty {which} string of tile 1"):
            aecodec.decode(fmt.pack(dataclasses.replace(real, tiles=tiles)))


@pytest.mark.parametrize("version", VERSIONS)
def test_a_large_claim_with_junk_strings_is_refused_before_any_image_sized_allocation(monkeypatch, version):
    """16 tiles of 2048 (67 MP) with 8-byte junk strings: refused at the first tile, and nothing
    of the image's size is allocated before every tile has decoded."""
    from aecodec.codec import pipeline

    data = _craft(8192, 8192, 32, [bytes(range(8))] * 32, version=version)
    sizes = []
    real_empty = np.empty

    def empty(shape, *a, **kw):
        sizes.append(int(np.prod(shape)))
        return real_empty(shape, *a, **kw)

    monkeypatch.setattr(pipeline.np, "empty", empty)
    with pytest.raises(aecodec.FormatError, match="corrupt latent data"):
        aecodec.decode(data)
    assert max(sizes, default=0) < 10**6, sizes


def test_an_alpha_plane_above_pillows_bomb_limit_decodes(monkeypatch):
    """The alpha section is a PNG of the image's size, already checked against aecodec's own pixel
    cap (2**28, above Pillow's 1.8e8 error limit): Pillow's DecompressionBombError must not escape
    as a traceback, nor refuse a valid file. (The limit is lowered here to keep the image small.)"""
    from PIL import Image

    rgba = np.dstack([smooth_image(40, 56), np.full((40, 56), 77, np.uint8)])
    data = aecodec.encode(rgba, quality=50)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 40×56 is now above 2× the limit: an error in Image.open
    out = np.asarray(aecodec.decode(data))
    assert out.shape == (40, 56, 4) and (out[..., 3] == 77).all()


def test_a_corrupt_alpha_section_is_a_format_error():
    rgba = np.dstack([smooth_image(40, 56), np.full((40, 56), 77, np.uint8)])
    c = fmt.unpack(aecodec.encode(rgba, quality=50))
    for alpha in (c.alpha[:20], c.alpha[:8] + bytes(len(c.alpha) - 8), b"\x89PNG\r\n\x1a\n" + bytes(40)):
        with pytest.raises(aecodec.FormatError, match="corrupt alpha section"):
            aecodec.decode(fmt.pack(dataclasses.replace(c, alpha=alpha)))


@pytest.mark.parametrize("version", VERSIONS)
def test_a_section_longer_than_the_models_own_channels_can_make_is_refused_before_decoding(monkeypatch, version):
    """Within MAX_CHANNELS' bound (the format's), above the shipped model's M = 192: refused by the
    decoder before any tile is entropy-decoded."""
    net = runtime.load()  # the model aecodec.decode uses (cached)
    y_sym = (64 // 16) ** 2  # one 64-pixel tile
    n = fmt.max_section(version, net.config.M * y_sym) + 4
    assert n <= fmt.max_section(version, fmt.MAX_CHANNELS * y_sym)
    data = _craft(64, 64, 1, [bytes(8), bytes(n)], version=version)
    fmt.unpack(data)  # a valid container

    def no_decode(*args, **kwargs):
        raise AssertionError("a tile was decoded")

    monkeypatch.setattr(type(net), "decode_latents", no_decode)
    with pytest.raises(aecodec.FormatError, match=f"corrupt y section of tile 1: {n} bytes, more than the "
                                                  f"{net.config.M * y_sym} symbols of mean-scale-vr-128's tile"):
        aecodec.decode(data)
