"""aecodec.codec.files: the API's file variants, and outputs written atomically (fsynced, no partial file)."""

from __future__ import annotations

import os
import sys

import pytest
from PIL import Image

import aecodec
from aecodec.codec import files
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
