"""``aecodec upgrade``: a file of aecodec 0.1 (format 1 or 2, CompressAI's rANS) re-coded as format 3
decodes to exactly the pixels and latents it decoded to; a format-3 file comes back unchanged.
(Without torch, upgrading a format-1 file is one line and exit 2: tested in CI's runtime job.)"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from aecodec.cli import app
from aecodec.codec import api
from aecodec.codec import format as fmt
from tests.helpers import ROOT, fails, ok, smooth_image

runner = CliRunner()
GOLDEN = ROOT / "tests" / "golden"


@pytest.mark.parametrize("name", ["v1-rgb.aec", "v2-strip.aec"])
def test_a_legacy_file_upgraded_decodes_to_the_same_pixels_and_latents(tmp_path, name):
    src = tmp_path / name
    shutil.copy(GOLDEN / name, src)
    old = src.read_bytes()
    ok(runner.invoke(app, ["upgrade", str(src), "-o", str(tmp_path / "new.aec")]))
    new = (tmp_path / "new.aec").read_bytes()
    c_old, c_new = fmt.unpack(old), fmt.unpack(new)
    assert c_old.version in fmt.LEGACY and c_new.version == fmt.VERSION == 3
    # the header is the same but for the version (and v3's strips field, always present)
    assert c_new == fmt.Container(**{**vars(c_old), "tiles": c_new.tiles, "version": 3})
    assert src.read_bytes() == old  # the input is untouched
    np.testing.assert_array_equal(api.decode_latents(new), api.decode_latents(old))
    a, b = api.decode(new), api.decode(old)
    assert (a.mode, a.size) == (b.mode, b.size)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_the_default_output_name_and_stdout(tmp_path):
    src = tmp_path / "old.aec"
    shutil.copy(GOLDEN / "v1-rgb.aec", src)
    r = ok(runner.invoke(app, ["upgrade", str(src), "-v"]))
    out = tmp_path / "old.v3.aec"
    assert fmt.unpack(out.read_bytes()).version == 3
    assert "format 1 -> 3" in r.output
    r = ok(runner.invoke(app, ["upgrade", str(src), "-o", "-"]))
    assert r.stdout_bytes == out.read_bytes()  # deterministic: the same bytes each time


def test_a_version_3_file_comes_back_byte_identical(tmp_path):
    data = api.encode(smooth_image(40, 56), quality=50)
    assert data[4] == 3
    (tmp_path / "a.aec").write_bytes(data)
    ok(runner.invoke(app, ["upgrade", str(tmp_path / "a.aec"), "-o", str(tmp_path / "b.aec")]))
    assert (tmp_path / "b.aec").read_bytes() == data
    assert api.upgrade(data) == data


def test_upgrading_a_file_onto_itself_is_refused(tmp_path):
    src = tmp_path / "x.aec"
    shutil.copy(GOLDEN / "v1-rgb.aec", src)
    for extra in ([], ["--force"]):
        fails(runner.invoke(app, ["upgrade", str(src), "-o", str(src), *extra]), "writing it would destroy it")
    assert src.read_bytes() == (GOLDEN / "v1-rgb.aec").read_bytes()


def test_a_damaged_file_is_one_line_naming_it(tmp_path):
    bad = tmp_path / "bad.aec"
    data = bytearray((GOLDEN / "v1-rgb.aec").read_bytes())
    data[-10] ^= 1
    bad.write_bytes(bytes(data))
    fails(runner.invoke(app, ["upgrade", str(bad), "-o", str(tmp_path / "out.aec")]), "CRC mismatch")
    assert not (tmp_path / "out.aec").exists()
