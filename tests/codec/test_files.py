"""aecodec.codec.files: the API's file variants, and outputs written atomically (fsynced, no partial file)."""

from __future__ import annotations

import os
import sys
import zlib

import pytest
from PIL import Image

import aecodec
from aecodec.codec import files
from aecodec.codec import format as fmt
from aecodec.errors import CodecError


def test_file_variants_write_atomically_and_refuse_overwrite(tmp_path, rgb_image):
    dst = tmp_path / "a.aec"
    aecodec.encode_file(rgb_image, dst, quality=40)
    with pytest.raises(CodecError, match="already exists"):
        aecodec.encode_file(rgb_image, dst)
    aecodec.decode_file(dst, tmp_path / "a.png")
    assert Image.open(tmp_path / "a.png").size == (90, 70)
    with pytest.raises(CodecError, match="does not exist"):
        aecodec.encode_file(rgb_image, tmp_path / "nodir" / "b.aec")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.aec", "a.png"]  # no temp files left


def test_interrupted_write_leaves_no_partial_file(tmp_path, rgb_image, monkeypatch):
    """Ctrl-C while the output is being written: neither the output nor a temp file remains."""
    img = aecodec.decode(aecodec.encode(rgb_image))
    real_save = Image.Image.save

    def save_then_interrupt(self, fp, *args, **kwargs):
        real_save(self, fp, *args, **kwargs)  # the temp file is complete on disk…
        raise KeyboardInterrupt  # …when the user presses Ctrl-C

    monkeypatch.setattr(Image.Image, "save", save_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        aecodec.codec.files.save_image(img, tmp_path / "out.png")
    assert list(tmp_path.iterdir()) == []


def test_write_atomic_fsyncs_the_file_before_the_rename_then_the_directory(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append(("fsync", os.fstat(fd).st_ino)), real_fsync(fd)))
    monkeypatch.setattr(os, "replace", lambda a, b: (events.append(("replace",)), real_replace(a, b)))
    out = tmp_path / "x.aec"
    files.write_atomic(out, b"data")
    assert out.read_bytes() == b"data"
    file_ino, dir_ino = out.stat().st_ino, tmp_path.stat().st_ino
    assert events[:2] == [("fsync", file_ino), ("replace",)]
    assert events[2:] in ([("fsync", dir_ino)], [])  # the directory too, where the platform allows
    if sys.platform.startswith("linux"):
        assert events[2:] == [("fsync", dir_ino)]


def test_write_atomic_never_changes_the_umask(tmp_path, monkeypatch):
    umask = os.umask(0o022)
    os.umask(umask)

    def no_umask(mask):
        raise AssertionError("os.umask called: other threads' files get mode 0o666 meanwhile")

    monkeypatch.setattr(os, "umask", no_umask)
    files.write_atomic(tmp_path / "x.aec", b"data")
    files.save_image(Image.new("RGB", (4, 4)), tmp_path / "x.png")
    for name in ("x.aec", "x.png"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o666 & ~umask
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.aec", "x.png"]


# ----------------------------------------------------------------------------- reading .aec files
def _aec_bytes(**kw) -> bytes:
    from tests.helpers import smooth_image

    return aecodec.encode(smooth_image(100, 130), quality=50, **kw)


class _Endless:
    """A pipe that never ends (``yes``, ``/dev/zero``), counting what is read from it."""

    def __init__(self, head: bytes = b"", fill: bytes = b"y\n"):
        self.head, self.fill, self.taken = head, fill, 0

    def read(self, n: int = -1) -> bytes:
        assert n >= 0, "read everything from an endless stream"
        out = (self.head[self.taken:self.taken + n] if self.taken < len(self.head) else b"")
        out += (self.fill * (n // len(self.fill) + 1))[:n - len(out)]
        self.taken += len(out)
        return out


def test_read_file_reads_a_file_exactly_and_names_it_in_errors(tmp_path):
    data = _aec_bytes()
    path = tmp_path / "x.aec"
    path.write_bytes(data)
    assert files.read_file(path) == data
    path.write_bytes(data[:-3])
    with pytest.raises(aecodec.FormatError, match=f"^{path}: truncated file"):
        files.read_file(path)
    with pytest.raises(CodecError, match="no such file"):
        files.read_file(tmp_path / "missing.aec")
    with pytest.raises(CodecError, match="is a directory"):
        files.read_file(tmp_path)


def test_an_endless_stream_is_refused_at_once():
    """``yes | aecodec decode -`` and ``aecodec decode /dev/zero``: a wrong magic after 27 bytes;
    a valid file followed by an endless stream: one byte past its announced end."""
    for stream in (_Endless(), _Endless(fill=b"\0")):
        with pytest.raises(aecodec.FormatError, match="not an .aec file"):
            files.read_file(stream)
        assert stream.taken <= 27
    data = _aec_bytes()
    stream = _Endless(data, fill=b"\0")
    with pytest.raises(aecodec.FormatError, match=f"trailing bytes after the {len(data)} bytes the header announces"):
        files.read_file(stream)
    assert stream.taken == len(data) + 1


def test_a_stream_whose_header_and_length_disagree_is_read_no_further_than_a_valid_file_of_its_image():
    data = bytearray(_aec_bytes(tile=64))  # 2×3 tiles
    data[16:18] = (2).to_bytes(2, "big")  # tile 128: fewer sections than the file holds, under a valid CRC
    data[-4:] = zlib.crc32(bytes(data[:-4])).to_bytes(4, "big")
    import io

    with pytest.raises(aecodec.FormatError, match="the tile field"):
        files.read_file(io.BytesIO(bytes(data)))  # a stream: read to its end to name the field
    h = fmt.read_header(io.BytesIO(bytes(data)).read)
    stream = _Endless(bytes(data[:h.size]), fill=b"\0")  # the same header, then zeros for ever
    with pytest.raises(aecodec.FormatError, match="trailing bytes: more than the"):
        files.read_file(stream)
    assert stream.taken == fmt.max_file_size(h) + 1


def test_a_file_announcing_a_64_mb_section_is_refused_without_reading_it(tmp_path):
    """A sparse 64 MB file whose header is valid and whose one y section is longer than its tile's
    symbols can make: refused from the header, in well under a second, without large allocation."""
    import struct
    import time
    import tracemalloc

    mid = b"mean-scale-vr-128"
    head = (struct.pack(">4sBBHIIH8sB", fmt.MAGIC, 1, 3, 5000, 512, 512, 8, bytes(8), len(mid)) + mid
            + struct.pack(">II", 8, 64 << 20))
    path = tmp_path / "big.aec"
    with open(path, "wb") as f:
        f.write(head)
        f.truncate(len(head) + 8 + (64 << 20) + 4)  # the size the header announces, as a hole
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        with pytest.raises(aecodec.FormatError, match="corrupt y section of tile 1: 67108864 bytes, more than"):
            files.read_file(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - t0 < 0.5 and peak < 1 << 20, peak
    with pytest.raises(aecodec.FormatError, match="corrupt y section"):
        files.read_header(path)


def test_read_header_compares_the_size_on_disk_without_reading_the_payload(tmp_path, monkeypatch):
    data = _aec_bytes()
    path = tmp_path / "x.aec"
    path.write_bytes(data)
    h, size = files.read_header(path)
    assert size == h.total == len(data) and aecodec.info(data) == api_info(h)
    path.write_bytes(data + b"\0")
    with pytest.raises(aecodec.FormatError, match=f"{path}: trailing bytes: {len(data) + 1} bytes on disk"):
        files.read_header(path)
    path.write_bytes(data[:-1])
    with pytest.raises(aecodec.FormatError, match="truncated file"):
        files.read_header(path)


def api_info(h):
    from aecodec.codec import api

    return api.info(h)
