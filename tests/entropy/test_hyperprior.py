"""aecodec.entropy.hyperprior: damage behind a forged CRC is refused, not decoded to garbage."""

from __future__ import annotations

import dataclasses

import pytest

import aecodec
from aecodec.codec import format as fmt
from tests.helpers import smooth_image


@pytest.mark.parametrize("how", ["zero", "ff", "tail", "byte"])
@pytest.mark.parametrize("section", [0, 1])
def test_damage_behind_a_recomputed_crc_is_refused_not_decoded_to_garbage(how, section):
    data = aecodec.encode(smooth_image(80, 120), quality=60)
    c = fmt.unpack(data)
    s = bytearray(c.tiles[0][section])
    if how == "zero":
        s[:] = bytes(len(s))
    elif how == "ff":
        s[:] = b"\xff" * len(s)
    elif how == "tail":
        s[-4:] = bytes(b ^ 0x5A for b in s[-4:])
    else:
        s[len(s) // 2] ^= 0x01
    zy = list(c.tiles[0])
    zy[section] = bytes(s)
    forged = fmt.pack(dataclasses.replace(c, tiles=(tuple(zy),)))
    with pytest.raises(aecodec.FormatError, match="corrupt latent data"):
        aecodec.decode(forged)
