"""The .aec container: round trip and every rejection (format.py is stdlib only)."""

from __future__ import annotations

import io
import re
import struct
import subprocess
import sys
import tracemalloc
import zlib

import pytest

from aecodec.codec import format as fmt
from aecodec.codec import geometry
from aecodec.codec.format import Container, FormatError, Layout


def make(**over) -> Container:
    fields = dict(width=33, height=17, layout=Layout.RGB, quality=75.5, model_id="mean-scale-vr-128",
                  weights_hash="0123456789abcdef", tile=1024, tiles=((b"zz" * 6, b"y" * 40),))
    fields.update(over)
    return Container(**fields)


def recrc(data: bytes) -> bytes:
    return data[:-4] + struct.pack(">I", zlib.crc32(data[:-4]))


@pytest.mark.parametrize("version", [1, 3])
def test_round_trip_keeps_every_field(version):
    c = make(version=version)
    assert fmt.unpack(fmt.pack(c)) == c
    assert make().version == fmt.VERSION == 3  # what aecodec writes


def test_round_trip_with_alpha_section():
    c = make(layout=Layout.RGBA, alpha=b"png")
    assert fmt.unpack(fmt.pack(c)) == c


def test_round_trip_with_a_grid_of_tiles():
    tiles = tuple((bytes([i]) * (8 + 4 * i), bytes([100 + i]) * (8 + 8 * i)) for i in range(6))  # 3 columns × 2 rows
    c = make(width=130, height=70, tile=64, tiles=tiles)
    assert fmt.unpack(fmt.pack(c)) == c
    assert geometry.tile_grid(130, 70, 64) == (2, 3)


def test_layout_follows_the_byte_table():
    data = fmt.pack(make())
    assert data[:4] == b"\x89AEC"
    assert data[4] == 3  # version
    assert data[5] == Layout.RGB
    assert struct.unpack(">H", data[6:8])[0] == 7550
    assert struct.unpack(">II", data[8:16]) == (33, 17)
    assert struct.unpack(">H", data[16:18])[0] == 1024 // 64
    assert data[18:26] == bytes.fromhex("0123456789abcdef")
    n = data[26]
    assert data[27:27 + n] == b"mean-scale-vr-128"
    assert struct.unpack(">H", data[27 + n:29 + n])[0] == 1  # strips: always present in version 3
    table = 29 + n
    assert struct.unpack(">II", data[table:table + 8]) == (12, 40)  # z, y of the single tile
    assert data[table + 8:table + 20] == b"zz" * 6
    assert struct.unpack(">I", data[-4:])[0] == zlib.crc32(data[:-4])
    v1 = fmt.pack(make(version=1))  # version 1: no strips field, the table right after the id
    assert v1[4] == 1 and v1[:4] + v1[5:27 + n] == data[:4] + data[5:27 + n]
    assert struct.unpack(">II", v1[27 + n:35 + n]) == (12, 40) and len(v1) == len(data) - 2


def test_format_module_uses_only_the_standard_library():
    # the packages above it are registered without running their __init__ (aecodec's imports Pillow
    # for the plugin), so only format.py and what it imports itself (aecodec.errors) are loaded
    code = ("import sys, types; from pathlib import Path\n"
            "for name in ('aecodec', 'aecodec.codec'):\n"
            "    m = types.ModuleType(name); m.__path__ = [str(Path(*name.split('.')))]; sys.modules[name] = m\n"
            "import aecodec.codec.format\n"
            "bad = [m for m in ('torch', 'numpy', 'PIL') if m in sys.modules]; print(bad); sys.exit(bool(bad))")
    from pathlib import Path
    root = Path(__file__).resolve().parents[2]
    r = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_decode_rejects_wrong_magic():
    with pytest.raises(FormatError, match="not an .aec file"):
        fmt.unpack(b"\x89PNG\r\n\x1a\n" + b"\0" * 100)


def test_decode_rejects_empty_file():
    with pytest.raises(FormatError, match="truncated"):
        fmt.unpack(b"")


@pytest.mark.parametrize("cut", [5, 26, 30, 45, 50, -30, -1])
def test_decode_rejects_truncated_file(cut):
    data = fmt.pack(make())
    with pytest.raises(FormatError, match="truncated"):
        fmt.unpack(data[:cut])


def test_decode_rejects_trailing_bytes():
    with pytest.raises(FormatError, match="trailing bytes"):
        fmt.unpack(fmt.pack(make()) + b"\0")


def test_decode_rejects_crc_mismatch():
    data = bytearray(fmt.pack(make()))
    data[-10] ^= 0x01  # a payload byte
    with pytest.raises(FormatError, match="CRC mismatch"):
        fmt.unpack(bytes(data))


@pytest.mark.parametrize("version", [0, 4, 255])
def test_decode_rejects_unknown_format_version(version):
    data = bytearray(fmt.pack(make()))
    data[4] = version
    with pytest.raises(FormatError, match=f"unsupported format version {version}.*reads versions 1, 2 and 3"):
        fmt.unpack(recrc(bytes(data)))
    assert ("upgrade aecodec" in str(pytest.raises(FormatError, fmt.unpack, recrc(bytes(data))).value)) == (version > 3)


def _folded(**over) -> Container:
    """A 20000×1 strip folded into 16 strips of 1250 pixels: 1×2 tiles of 1024."""
    return make(width=20000, height=1, strips=16, tile=1024, tiles=((b"zzzz" * 2, b"yyyy" * 3),) * 2, **over)


def test_a_folded_image_is_a_version_3_file_with_its_strips_and_round_trips():
    """Version 3 always has the strips field after the model id: 1, or the strips of a folded image."""
    assert geometry.coded_size(20000, 1, 16) == (1250, 16 * 4 + 15 * 4)  # 16 strips of 1250: line ×4, guards
    assert geometry.tile_grid(1250, 124, 1024) == (1, 2)
    c = _folded()
    data = fmt.pack(c)
    assert data[4] == 3 and struct.unpack(">H", data[27 + 17:29 + 17])[0] == 16
    assert fmt.unpack(data) == c
    plain = fmt.pack(make())
    assert plain[4] == 3 and struct.unpack(">H", plain[27 + 17:29 + 17])[0] == 1


def test_the_legacy_versions_keep_their_rules_version_2_only_for_folded_images():
    """aecodec 0.1's files: version 1 = no strips field (one strip), version 2 = version 1 + a strips
    field of at least 2. Still read, still refused otherwise: a v1 folded or a v2 of one strip is
    not a file aecodec 0.1 could write."""
    v2 = _folded(version=2)
    data = fmt.pack(v2)
    assert data[4] == 2 and struct.unpack(">H", data[27 + 17:29 + 17])[0] == 16
    assert fmt.unpack(data) == v2
    assert fmt.unpack(fmt.pack(make(version=1))).version == 1
    with pytest.raises(FormatError, match="version 1 cannot hold 16 strips"):
        fmt.pack(_folded(version=1))
    with pytest.raises(FormatError, match="version 2 cannot hold 1 strips"):
        fmt.pack(make(version=2))
    for version in (0, 4):
        with pytest.raises(FormatError, match=f"version {version} cannot hold"):
            fmt.pack(make(version=version))
    # a reader refuses a version-2 header of one strip (the v3 bytes of make(), relabelled)
    one = bytearray(fmt.pack(make()))
    one[4] = 2
    with pytest.raises(FormatError, match="invalid fold of a 33×17 image into 1 strips"):
        fmt.unpack(recrc(bytes(one)))
    one[4] = 3  # the same header as version 3 is valid
    assert fmt.unpack(recrc(bytes(one))) == make()


@pytest.mark.parametrize("version", [2, 3])
def test_a_strips_field_of_zero_is_refused(version):
    data = bytearray(fmt.pack(make()))
    data[4] = version
    data[27 + 17:29 + 17] = struct.pack(">H", 0)
    with pytest.raises(FormatError, match="invalid fold of a 33×17 image into 0 strips"):
        fmt.unpack(recrc(bytes(data)))


@pytest.mark.parametrize("w,h,strips", [(20000, 1, 1), (20000, 1, 0), (100, 1, 101), (10, 1, 9), (1, 100, 60)])
def test_impossible_folds_are_refused(w, h, strips):
    """At least two strips, at most one per pixel of the long side, none of them empty."""
    with pytest.raises(FormatError, match="invalid fold"):
        fmt.pack(make(width=w, height=h, strips=strips)) if strips != 1 else fmt._check_strips(w, h, 1, 1 << 28)


@pytest.mark.parametrize("offset,value,message", [
    (5, b"\x00", "invalid channel layout"),
    (5, b"\x07", "invalid channel layout"),
    (6, struct.pack(">H", 10001), "invalid quality"),
    (8, struct.pack(">I", 0), "invalid width"),
    (12, struct.pack(">I", 0), "invalid height"),
    (8, struct.pack(">I", 1 << 25), "invalid width"),
    (16, struct.pack(">H", 0), "invalid tile size"),
    (16, struct.pack(">H", 1025), "invalid tile size"),
    (16, struct.pack(">H", 33), "invalid tile size"),
])
def test_decode_validates_each_header_field(offset, value, message):
    data = bytearray(fmt.pack(make()))
    data[offset:offset + len(value)] = value
    with pytest.raises(FormatError, match=message):
        fmt.unpack(recrc(bytes(data)))


def test_decode_caps_pixels_before_allocating():
    data = bytearray(fmt.pack(make()))
    data[8:16] = struct.pack(">II", 1 << 24, 1 << 24)  # 2^48 pixels, a bomb
    bomb = recrc(bytes(data))
    tracemalloc.start()
    try:
        with pytest.raises(FormatError, match="exceeds the cap"):
            fmt.unpack(bomb)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 256 * 1024, f"refusing a {len(bomb)}-byte bomb allocated {peak} bytes"
    small = fmt.pack(make(width=100, height=100))
    with pytest.raises(FormatError, match="exceeds the cap of 9999"):
        fmt.unpack(small, max_pixels=9999)
    assert fmt.unpack(small, max_pixels=10000).width == 100


def test_decode_rejects_invalid_model_id():
    data = bytearray(fmt.pack(make(model_id="abc")))
    data[27:30] = b"A_c"
    with pytest.raises(FormatError, match="invalid model id"):
        fmt.unpack(recrc(bytes(data)))


def test_alpha_section_must_match_the_layout():
    rgba_without_alpha = bytearray(fmt.pack(make()))
    rgba_without_alpha[5] = Layout.RGBA  # now the table needs one more length than the file has
    with pytest.raises(FormatError, match="corrupt alpha section: .* bytes, more than a PNG of a 33×17 plane"):
        fmt.unpack(bytes(rgba_without_alpha))  # the CRC says the file is damaged: the "alpha" length is payload
    with pytest.raises(FormatError, match=r"the layout field \(RGBA; the file has no alpha section\) is wrong"):
        fmt.unpack(recrc(bytes(rgba_without_alpha)))  # the CRC says it was written so: the header is at fault
    with pytest.raises(FormatError, match="alpha section"):
        fmt.pack(make(alpha=b"png"))
    with pytest.raises(FormatError, match="alpha section"):
        fmt.pack(make(layout=Layout.RGBA))


def test_tile_count_must_match_the_grid():
    with pytest.raises(FormatError, match="tile grid has 6"):
        fmt.pack(make(width=130, height=70, tile=64))


@pytest.mark.parametrize("version", [1, 3])
def test_section_lengths_are_checked_against_the_file_size(version):
    data = bytearray(fmt.pack(make(version=version)))
    table = 27 + len("mean-scale-vr-128") + (2 if version >= 2 else 0)
    data[table:table + 4] = struct.pack(">I", 0xFFFFFFFC)  # a z length of 4 GB: more than any tile's z can hold
    with pytest.raises(FormatError, match="corrupt z section of tile 1: 4294967292 bytes, more than"):
        fmt.unpack(recrc(bytes(data)))
    data[table:table + 4] = struct.pack(">I", 16)  # a possible length, 4 bytes more than the file has
    with pytest.raises(FormatError, match="truncated file: .* the header announces"):
        fmt.unpack(recrc(bytes(data)))


def test_the_header_alone_reads_a_file_with_a_damaged_payload():
    data = bytearray(fmt.pack(make()))
    data[-10] ^= 0xFF
    c = fmt.read_header(io.BytesIO(bytes(data)).read)
    assert (c.width, c.height, c.model_id) == (33, 17, "mean-scale-vr-128")


def test_encoder_refuses_out_of_range_fields():
    with pytest.raises(FormatError):
        fmt.pack(make(width=0))
    with pytest.raises(FormatError):
        fmt.pack(make(quality=101))
    with pytest.raises(FormatError):
        fmt.pack(make(weights_hash="abcd"))
    with pytest.raises(FormatError, match="invalid tile size"):
        fmt.pack(make(tile=100))


def test_tiles_are_capped_at_2048_pixels_so_a_header_cannot_set_the_memory_of_a_tile():
    """A tile's rANS strings are decoded whole: a 56-byte file claiming one 4096-pixel tile (or
    16384) must be refused before any allocation, not decoded."""
    assert fmt.MAX_TILE == 2048
    assert fmt.unpack(fmt.pack(make(tile=2048))).tile == 2048
    for units in (33, 64, 256, 1024):
        data = bytearray(fmt.pack(make()))
        data[16:18] = struct.pack(">H", units)
        with pytest.raises(FormatError, match="invalid tile size .* up to 2048"):
            fmt.unpack(recrc(bytes(data)))
    with pytest.raises(FormatError, match="invalid tile size"):
        fmt.pack(make(tile=4096))


def _with_sections(version: int, z_len: int, y_len: int) -> bytes:
    """make()'s file of ``version`` with sections of these lengths, written byte by byte (a valid CRC)."""
    data = bytearray(fmt.pack(make(version=version)))
    table = 27 + len("mean-scale-vr-128") + (2 if version >= 2 else 0)
    body = bytes(data[:table]) + struct.pack(">II", z_len, y_len) + b"\x55" * (z_len + y_len)
    return body + struct.pack(">I", zlib.crc32(body))


@pytest.mark.parametrize("z_len,y_len", [(0, 0), (0, 40), (12, 0), (4, 40), (12, 7), (13, 40)])
def test_sections_too_short_to_be_rans_strings_are_format_errors_in_versions_1_and_2(z_len, y_len):
    """An empty payload (every section length 0) must not decode to noise: a rANS string (versions
    1 and 2) is 32-bit words holding at least the coder's 64-bit final state."""
    with pytest.raises(FormatError, match=r"cannot be a coded string \(a multiple of 4, at least 8\)"):
        fmt.unpack(_with_sections(1, z_len, y_len))
    with pytest.raises(FormatError, match="cannot be a coded string"):
        fmt.pack(make(version=1, tiles=((b"z" * z_len, b"y" * y_len),)))


@pytest.mark.parametrize("z_len,y_len", [(12, 7), (13, 40), (0, 2), (5, 0)])
def test_sections_that_are_not_32_bit_words_are_format_errors_in_version_3(z_len, y_len):
    with pytest.raises(FormatError, match=r"cannot be a coded string \(a multiple of 4\)"):
        fmt.unpack(_with_sections(3, z_len, y_len))
    with pytest.raises(FormatError, match="cannot be a coded string"):
        fmt.pack(make(tiles=((b"z" * z_len, b"y" * y_len),)))


@pytest.mark.parametrize("z_len,y_len", [(0, 0), (0, 40), (12, 0), (4, 4)])
def test_version_3_sections_are_any_multiple_of_4_empty_included(z_len, y_len):
    """constriction's ANS writes nothing for symbols that cost nothing (its state untouched): an
    empty section is a valid version-3 string (the entropy decoder judges the content)."""
    c = fmt.unpack(_with_sections(3, z_len, y_len))
    assert c.version == 3 and [len(s) for s in c.tiles[0]] == [z_len, y_len]
    assert fmt.unpack(fmt.pack(make(tiles=((b"z" * z_len, b"y" * y_len),)))).tiles[0] == (b"z" * z_len, b"y" * y_len)


def test_every_section_the_encoder_writes_is_a_version_3_string():
    import numpy as np

    import aecodec
    from tests.helpers import smooth_image

    for img, q, tile in [(smooth_image(16, 24), 0, 64), (np.zeros((1, 1, 3), np.uint8), 0, 64),
                         (np.full((64, 64), 255, np.uint8), 0, 64), (smooth_image(130, 70), 100, 64)]:
        c = fmt.unpack(aecodec.encode(img, quality=q, tile=tile))
        assert c.version == 3
        for (z, y), (z_sym, y_sym) in zip(c.tiles, fmt.tile_symbols(c.width, c.height, c.strips, c.tile)):
            assert not len(z) % 4 and not len(y) % 4
            assert len(z) <= fmt.max_ans(128 * z_sym) and len(y) <= fmt.max_ans(192 * y_sym)


# ----------------------------------------------------------------------------- section bounds
def test_the_section_bound_holds_the_coders_most_expensive_symbols():
    """max_rans(n) ≥ what CompressAI's rANS writes for n symbols at their dearest: each at a
    probability of 2^-16 and escaping with 7 bypass chunks (values of 2^28 and beyond make its
    encoder loop forever, so no string holds them) — and not far above it."""
    from aecodec._compressai import compressai

    ans = compressai().ans
    cdf, length = [0, 1, 2, 65535, 65536], 5  # the escape symbol (index 3) has frequency 1
    for n, value in ((1, 2**27), (1000, 2**27), (1000, -2**27), (5000, 3), (1000, 0)):
        s = ans.RansEncoder().encode_with_indexes([value] * n, [0] * n, [cdf], [length], [0])
        assert len(s) <= fmt.max_rans(n), (n, value, len(s), fmt.max_rans(n))
    assert fmt.max_rans(1000) < 1.2 * len(ans.RansEncoder().encode_with_indexes([2**27] * 1000, [0] * 1000,
                                                                               [cdf], [length], [0]))


def test_the_version_3_bound_is_the_coders_own():
    """max_ans(n) is aecodec.entropy.ans.max_string(n) with every symbol an escape (the worst
    strings are tested against it in tests/entropy/test_ans.py), and holds the dearest string: a
    symbol of probability 2^-16 escaping to the largest value the coder takes (measured 3208 bytes
    for 1000 symbols, the bound 6756: loose by about 2×, not by orders)."""
    import numpy as np

    from aecodec.entropy import ans

    for n in (0, 1, 7, 1000, 192 * 64 * 64):
        assert fmt.max_ans(n) == ans.max_string(n)
        assert fmt.max_section(3, n) == fmt.max_ans(n) and fmt.max_section(1, n) == fmt.max_section(2, n) == fmt.max_rans(n)
    assert (fmt.min_section(1), fmt.min_section(2), fmt.min_section(3)) == (8, 8, 0)
    t = ans.Tables(np.array([[0, 1, 2, 2**16]], np.int32), np.array([4]), np.array([0]))  # escape at 2^-16
    values = np.resize(np.array([ans.MAX_VALUE, -ans.MAX_VALUE], np.int32), 1000)
    s = ans.encode(values, np.zeros(values.size, np.int32), t)
    assert len(s) <= fmt.max_ans(1000) < 2.5 * len(s)


def test_real_sections_stay_far_below_their_bound():
    """The dearest real tiles (noise at quality 100) use a fraction of what the bound allows, with
    the shipped model's M and N as with MAX_CHANNELS."""
    import numpy as np

    import aecodec

    noise = np.random.default_rng(0).integers(0, 256, (128, 128, 3), dtype=np.uint8)
    c = fmt.unpack(aecodec.encode(noise, quality=100, tile=128))
    assert c.version == 3
    (z_sym, y_sym), = fmt.tile_symbols(128, 128, 1, 128)
    (z, y), = c.tiles
    assert len(y) < 0.25 * fmt.max_ans(192 * y_sym) and len(z) < 0.5 * fmt.max_ans(128 * z_sym)
    assert len(y) < 0.1 * fmt.max_ans(fmt.MAX_CHANNELS * y_sym)


def _header(width, height, tile, lengths, layout=Layout.RGB, version=1) -> bytes:
    mid = b"mean-scale-vr-128"
    return (struct.pack(">4sBBHIIH8sB", fmt.MAGIC, version, layout, 5000, width, height, tile // 64, bytes(8), len(mid))
            + mid + (struct.pack(">H", 1) if version >= 2 else b"") + struct.pack(f">{len(lengths)}I", *lengths))


@pytest.mark.parametrize("version", [1, 3])
def test_a_64_mb_y_section_is_refused_from_the_header_alone(version):
    """The section table is judged before a byte of the payload is read or allocated."""
    import io
    import time

    head = _header(1024, 1024, 1024, [8, 64 << 20], version=version)
    stream = io.BytesIO(head + bytes(1000))  # the payload is not there: it must not be needed
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        h = fmt.read_header(stream.read)
        assert stream.tell() == len(head)  # read no further than the table
        symbols = fmt.MAX_CHANNELS * (1024 // 16) ** 2  # y: MAX_CHANNELS × the tile's positions
        with pytest.raises(FormatError, match=f"corrupt y section of tile 1: 67108864 bytes, more than the "
                                              rf"{symbols} symbols of any model's tile can make \(at most "
                                              rf"{fmt.max_section(version, symbols)}\)"):
            fmt.check_sections(h.lengths, h.width, h.height, h.strips, h.tile, h.layout, h.version)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - t0 < 0.5 and peak < 256 * 1024, peak


def test_an_alpha_section_longer_than_its_plane_stored_uncompressed_is_refused():
    c = make(layout=Layout.RGBA, alpha=b"\0" * fmt.max_alpha(33, 17))
    assert fmt.unpack(fmt.pack(c)) == c
    with pytest.raises(FormatError, match="corrupt alpha section: 4677 bytes, more than a PNG of a 33×17 plane"):
        fmt.pack(make(layout=Layout.RGBA, alpha=b"\0" * (fmt.max_alpha(33, 17) + 1)))


def test_the_header_is_read_in_stages_and_no_further():
    """Each stage is read only once the one before it is valid: a wrong magic costs 27 bytes."""
    import io

    data = fmt.pack(make())
    reads = []

    def read(n, stream=io.BytesIO(data)):
        reads.append(n)
        return stream.read(n)

    h = fmt.read_header(read)
    assert reads == [27, 17, 2, 8] and h.size == 27 + 17 + 2 + 8 and h.total == len(data) and h.lengths == (12, 40)
    v1 = fmt.pack(make(version=1))  # no strips field
    reads.clear()
    stream = io.BytesIO(v1)
    h = fmt.read_header(lambda n: reads.append(n) or stream.read(n))
    assert reads == [27, 17, 8] and h.size == 27 + 17 + 8 and h.total == len(v1) and h.version == 1
    reads.clear()
    with pytest.raises(FormatError, match="wrong magic"):
        fmt.read_header(read.__defaults__[0].__class__(b"y\n" * 100).read)
    for version in (2, 3):
        folded = fmt.pack(_folded(version=version))
        reads.clear()
        stream = io.BytesIO(folded)
        fmt.read_header(lambda n: reads.append(n) or stream.read(n))
        assert reads == [27, 17, 2, 16]


# ----------------------------------------------------------------------------- a header field at fault
def _grid_file(**over) -> bytes:
    """A 130×70 RGB file in 2×3 tiles of 64."""
    tiles = tuple((bytes([i]) * (8 + 4 * i), bytes([100 + i]) * (8 + 8 * i)) for i in range(6))
    return fmt.pack(make(width=130, height=70, tile=64, tiles=tiles, **over))


@pytest.mark.parametrize("offset,value,message", [
    (16, struct.pack(">H", 2), r"the tile field \(128; the sections fit tiles of 64\) is wrong"),
    (5, bytes([Layout.RGBA]), r"the layout field \(RGBA; the file has no alpha section\) is wrong"),
    (8, struct.pack(">I", 300), r"the width field is wrong \(300×70 makes 2×5 tiles of 64; the file holds 6 tiles\)"),
    (12, struct.pack(">I", 200), r"the height field is wrong \(130×200 makes 4×3 tiles of 64; the file holds 6 tiles\)"),
])
def test_a_header_field_changed_under_a_recomputed_crc_is_named(offset, value, message):
    """Not "corrupt z section of tile 3: 1829176222 bytes cannot be a rANS string": the file was
    written that way (its CRC is right), so the header is at fault, and the field is named."""
    data = bytearray(_grid_file())
    data[offset:offset + len(value)] = value
    with pytest.raises(FormatError, match="section table does not match the header: the file holds 12 sections, "
                                          r"its header announces \d+: " + message):
        fmt.unpack(recrc(bytes(data)))
    with pytest.raises(FormatError) as exc:  # the same damage without a valid CRC: no field is blamed
        fmt.unpack(bytes(data))
    assert "field" not in str(exc.value)


def test_a_layout_that_lost_its_alpha_is_named():
    data = bytearray(_grid_file(layout=Layout.RGBA, alpha=b"png"))
    data[5] = Layout.RGB
    with pytest.raises(FormatError, match=r"holds 13 sections, its header announces 12: the layout field "
                                          r"\(RGB; the file has an alpha section\) is wrong"):
        fmt.unpack(recrc(bytes(data)))


def test_a_wrong_strips_field_is_named():
    """A 20000×1 strip folded into 16 (tiles of 1024: 1×2 tiles); its strips field set to 40."""
    c = make(width=20000, height=1, strips=16, tile=1024, tiles=((b"zzzz" * 2, b"yyyy" * 3),) * 2)
    data = bytearray(fmt.pack(c))
    at = 27 + len(c.model_id)
    data[at:at + 2] = struct.pack(">H", 40)  # coded 500×(40·4 + 39·4): 1×1 tile
    with pytest.raises(FormatError, match=r"holds 4 sections, its header announces 2: .*the strips field \(40; "
                                          r"the sections fit (\d+) strips\) is wrong") as exc:
        fmt.unpack(recrc(bytes(data)))
    fit = int(re.search(r"fit (\d+) strips", str(exc.value)).group(1))  # the first count that fits (16 does too)
    assert geometry.tile_grid(*geometry.coded_size(20000, 1, fit), 1024) == (1, 2)
