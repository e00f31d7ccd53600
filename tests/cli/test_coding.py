"""aecodec.cli.coding: encode, decode and info — names, outputs checked before any work, targets, effort, pipes."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from aecodec.cli import app
from aecodec.codec import api, files
from tests.helpers import fails, ok, smooth_image

runner = CliRunner()


def test_encode_decode_info_default_names(photo):
    ok(runner.invoke(app, ["encode", str(photo), "-q", "60"]))
    aec = photo.with_suffix(".aec")
    assert aec.is_file()
    photo.unlink()
    ok(runner.invoke(app, ["decode", str(aec)]))
    assert Image.open(photo).size == (56, 40)
    r = ok(runner.invoke(app, ["info", str(aec)]))
    assert "mean-scale-vr-128@" in r.output and "56x40" in r.output and "quality 60" in r.output
    info = json.loads(ok(runner.invoke(app, ["info", "--json", str(aec)])).output)
    assert info["width"] == 56 and info["bytes"] == aec.stat().st_size


def test_encode_refuses_to_overwrite_without_force(photo, tmp_path):
    out = tmp_path / "x.aec"
    out.write_bytes(b"keep me")
    fails(runner.invoke(app, ["encode", str(photo), "-o", str(out)]), "already exists")
    assert out.read_bytes() == b"keep me"
    ok(runner.invoke(app, ["encode", str(photo), "-o", str(out), "--force"]))
    assert out.read_bytes()[:4] == b"\x89AEC"


def test_decode_refuses_to_overwrite_without_force(photo, tmp_path):
    aec = tmp_path / "x.aec"
    ok(runner.invoke(app, ["encode", str(photo), "-o", str(aec)]))
    fails(runner.invoke(app, ["decode", str(aec), "-o", str(photo)]), "already exists")


def test_missing_output_directory_is_an_error(photo, tmp_path):
    fails(runner.invoke(app, ["encode", str(photo), "-o", str(tmp_path / "no" / "x.aec")]), "does not exist")


def test_decode_rejects_a_file_that_is_not_aec(photo, tmp_path):
    fails(runner.invoke(app, ["decode", str(photo), "-o", str(tmp_path / "o.png")]), "not an .aec file")
    assert not (tmp_path / "o.png").exists()


def test_decode_rejects_truncated_and_corrupt_files(photo, tmp_path):
    aec = tmp_path / "x.aec"
    ok(runner.invoke(app, ["encode", str(photo), "-o", str(aec)]))
    data = aec.read_bytes()
    (tmp_path / "t.aec").write_bytes(data[: len(data) // 2])
    fails(runner.invoke(app, ["decode", str(tmp_path / "t.aec"), "-o", str(tmp_path / "t.png")]), "truncated")
    bad = bytearray(data)
    bad[-8] ^= 1
    (tmp_path / "c.aec").write_bytes(bytes(bad))
    fails(runner.invoke(app, ["decode", str(tmp_path / "c.aec"), "-o", str(tmp_path / "c.png")]), "CRC mismatch")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.aec", "photo.png", "t.aec", "x.aec"]


def test_unknown_format_version_and_weights_are_named(photo, tmp_path):
    from aecodec.codec import format as fmt
    aec = tmp_path / "x.aec"
    ok(runner.invoke(app, ["encode", str(photo), "-o", str(aec)]))
    c = fmt.unpack(aec.read_bytes())
    other = fmt.Container(**{**c.__dict__, "weights_hash": "ffffffffffffffff"})
    (tmp_path / "w.aec").write_bytes(fmt.pack(other))
    fails(runner.invoke(app, ["decode", str(tmp_path / "w.aec")]), "needs model mean-scale-vr-128@ffffffffffffffff")
    data = bytearray(aec.read_bytes())
    data[4] = 9
    (tmp_path / "v.aec").write_bytes(bytes(data))
    fails(runner.invoke(app, ["decode", str(tmp_path / "v.aec")]), "unsupported format version 9")


def test_unreadable_input_image_is_an_error(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff not really a jpeg")
    fails(runner.invoke(app, ["encode", str(bad)]), "cannot read image")
    fails(runner.invoke(app, ["encode", str(tmp_path / "missing.png")]), "no such file")
    assert not (tmp_path / "bad.aec").exists()


def test_quality_outside_0_100_is_rejected(photo):
    r = runner.invoke(app, ["encode", str(photo), "-q", "150"])
    assert r.exit_code == 2
    assert any(l.startswith("Error:") and "quality" in l and "100" in l for l in r.output.splitlines()), r.output
    assert not photo.with_suffix(".aec").exists()


def test_encode_to_a_target_size_or_bpp(photo, tmp_path):
    out = tmp_path / "t.aec"
    r = ok(runner.invoke(app, ["encode", str(photo), "-o", str(out), "--target-size", "0.5k"]))
    assert out.stat().st_size <= 500 and "bytes" in r.output
    q = json.loads(ok(runner.invoke(app, ["info", "--json", str(out)])).output)["quality"]
    assert f"(q {q:g})" in r.output
    ok(runner.invoke(app, ["encode", str(photo), "-o", str(out), "-f", "--target-bpp", "1.5"]))
    assert 8 * out.stat().st_size / (56 * 40) <= 1.5


def test_bad_or_unreachable_targets_are_one_line_errors(photo, tmp_path):
    out = tmp_path / "t.aec"
    fails(runner.invoke(app, ["encode", str(photo), "-o", str(out), "--target-size", "10"]), "cannot fit")
    for args, msg in ((["--target-size", "12q"], "--target-size"), (["--target-size", "0"], "--target-size"),
                      (["--target-bpp", "0"], "--target-bpp"), (["-q", "50", "--target-size", "2k"], "one of")):
        fails(runner.invoke(app, ["encode", str(photo), "-o", str(out), *args]), msg)
    assert not out.exists()


def test_several_inputs_into_a_directory(tmp_path):
    srcs = []
    for i in range(3):
        p = tmp_path / f"im{i}.png"
        Image.fromarray(smooth_image(20 + i, 30, seed=i)).save(p)
        srcs.append(str(p))
    out = tmp_path / "out"
    out.mkdir()
    ok(runner.invoke(app, ["encode", *srcs, "-o", str(out), "--quiet"]))
    assert sorted(p.name for p in out.iterdir()) == ["im0.aec", "im1.aec", "im2.aec"]
    ok(runner.invoke(app, ["decode", *map(str, sorted(out.iterdir())), "-o", str(out), "--quiet"]))
    assert len(list(out.glob("*.png"))) == 3


def test_stdin_to_stdout(photo):
    r = runner.invoke(app, ["encode", "-", "-o", "-", "--quiet"], input=photo.read_bytes())
    assert r.exit_code == 0
    data = r.stdout_bytes
    assert data[:4] == b"\x89AEC"
    r = runner.invoke(app, ["decode", "-", "--quiet"], input=data)
    assert r.exit_code == 0 and r.stdout_bytes[:8] == b"\x89PNG\r\n\x1a\n"


def test_decode_output_format_follows_the_extension(photo, tmp_path):
    aec = tmp_path / "x.aec"
    ok(runner.invoke(app, ["encode", str(photo), "-o", str(aec)]))
    for ext, name in ((".jpg", "JPEG"), (".webp", "WEBP"), (".bmp", "BMP"), (".tif", "TIFF")):
        ok(runner.invoke(app, ["decode", str(aec), "-o", str(tmp_path / f"y{ext}")]))
        assert Image.open(tmp_path / f"y{ext}").format == name


def _run(*args, **kw):
    return subprocess.run([sys.executable, "-m", "aecodec", *args], capture_output=True, **kw)


def test_real_subprocess_round_trip(photo, tmp_path):
    r = _run("encode", str(photo), "-o", str(tmp_path / "s.aec"), "-q", "80")
    assert r.returncode == 0, r.stderr.decode()
    r = _run("decode", str(tmp_path / "s.aec"), "-o", str(tmp_path / "s.png"))
    assert r.returncode == 0, r.stderr.decode()
    assert Image.open(tmp_path / "s.png").size == (56, 40)


def test_encode_effort_writes_the_same_file_as_the_api(photo, tmp_path):
    import aecodec

    ok(runner.invoke(app, ["encode", str(photo), "-o", str(tmp_path / "e.aec"), "-q", "60", "-e", "4", "--quiet"]))
    assert (tmp_path / "e.aec").read_bytes() == aecodec.encode(photo, 60, effort=4)
    ok(runner.invoke(app, ["encode", str(photo), "-o", str(tmp_path / "t.aec"), "--target-size", "400", "--effort", "3"]))
    assert (tmp_path / "t.aec").stat().st_size <= 400


@pytest.mark.parametrize("bad", ["0", "10", "fast"])
def test_encode_refuses_an_effort_outside_1_to_9(photo, tmp_path, bad):
    r = _run("encode", str(photo), "-o", str(tmp_path / "x.aec"), "-e", bad, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "effort" in r.stderr.lower()
    assert not (tmp_path / "x.aec").exists()


def _aec(photo: Path) -> Path:
    aec = photo.with_suffix(".aec")
    ok(runner.invoke(app, ["encode", str(photo), "-o", str(aec), "--quiet"]))
    return aec


def _no_work(*args, **kwargs):
    raise AssertionError("the command did its work before refusing")


def test_two_inputs_onto_one_output_are_refused_before_any_work(photo, monkeypatch):
    jpg = photo.with_suffix(".jpg")
    Image.open(photo).save(jpg)
    monkeypatch.setattr(api, "encode", _no_work)
    r = fails(runner.invoke(app, ["encode", str(photo), str(jpg), "--force"]), "would be written there")
    assert r.exit_code == 2
    assert str(photo.with_suffix(".aec")) in r.output and str(photo) in r.output and str(jpg) in r.output
    assert not photo.with_suffix(".aec").exists()
    # the same file under two spellings is one output too
    same = photo.parent / "." / photo.name
    fails(runner.invoke(app, ["encode", str(photo), str(same), "--force"]), "would be written there")


def test_decode_refuses_two_inputs_onto_one_output(photo, tmp_path, monkeypatch):
    aec = _aec(photo)
    (tmp_path / "sub").mkdir()
    other = shutil.copy(aec, tmp_path / "sub" / aec.name)
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.setattr(api, "decode", _no_work)
    r = fails(runner.invoke(app, ["decode", str(aec), str(other), "-o", str(out)]), "would be written there")
    assert r.exit_code == 2 and str(out / "photo.png") in r.output and str(other) in r.output
    assert list(out.iterdir()) == []


def test_an_output_ending_in_a_slash_is_a_directory(photo, tmp_path):
    missing = f"{tmp_path / 'newdir'}{os.sep}"
    r = fails(runner.invoke(app, ["encode", str(photo), "-o", missing]), "no such directory")
    assert r.exit_code == 2 and not (tmp_path / "newdir").exists()  # neither a file nor a directory
    aec = _aec(photo)
    r = fails(runner.invoke(app, ["decode", str(aec), "-o", missing]), "no such directory")
    assert r.exit_code == 2 and not (tmp_path / "newdir").exists()

    out = tmp_path / "out"
    out.mkdir()
    ok(runner.invoke(app, ["encode", str(photo), "-o", f"{out}{os.sep}", "--quiet"]))
    ok(runner.invoke(app, ["decode", str(aec), "-o", f"{out}{os.sep}", "--quiet"]))
    assert sorted(p.name for p in out.iterdir()) == ["photo.aec", "photo.png"]


def test_an_existing_directory_receives_the_output_under_its_default_name(photo, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    ok(runner.invoke(app, ["encode", str(photo), "-o", str(out), "--quiet"]))
    assert [p.name for p in out.iterdir()] == ["photo.aec"]


def test_existing_outputs_are_refused_before_any_work(photo, tmp_path, monkeypatch):
    aec = _aec(photo)
    monkeypatch.setattr(api, "encode", _no_work)
    monkeypatch.setattr(api, "decode", _no_work)
    fails(runner.invoke(app, ["encode", str(photo), "-o", str(aec)]), "already exists")
    fails(runner.invoke(app, ["decode", str(aec), "-o", str(photo)]), "already exists")
    # with several inputs, one existing output stops them all: nothing is half done
    second = tmp_path / "second.png"
    Image.fromarray(smooth_image(24, 32, seed=1)).save(second)
    fails(runner.invoke(app, ["encode", str(second), str(photo), "-o", str(tmp_path)]), "already exists")
    assert not (tmp_path / "second.aec").exists()


def test_errors_name_the_output_never_the_hidden_temp_file(photo, tmp_path, monkeypatch):
    aec = _aec(photo)
    photo.unlink()
    photo.mkdir()  # the default output is a directory: --force cannot replace it
    r = fails(runner.invoke(app, ["decode", str(aec), "--force"]), str(photo))
    assert ".tmp" not in r.output

    def disk_full(tmp):
        Path(tmp).write_bytes(b"half")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), tmp)

    with pytest.raises(OSError) as exc:
        files.write_atomic(tmp_path / "x.aec", save=disk_full)
    assert exc.value.filename == str(tmp_path / "x.aec") and ".tmp" not in str(exc.value)

    def pillow_disk_full(self, fp, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), fp)

    monkeypatch.setattr(Image.Image, "save", pillow_disk_full)
    with pytest.raises(api.CodecError) as exc:
        files.save_image(Image.new("RGB", (8, 8)), tmp_path / "y.png")
    assert str(exc.value).startswith(f"{tmp_path / 'y.png'}: ") and ".tmp" not in str(exc.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photo.aec", "photo.png"]


def test_a_format_that_cannot_store_the_image_is_a_one_line_error(photo, tmp_path):
    aec = _aec(photo)
    r = fails(runner.invoke(app, ["decode", str(aec), "-o", str(tmp_path / "x.blp")]), "cannot write BLP")
    assert str(tmp_path / "x.blp") in r.output and ".tmp" not in r.output
    assert not (tmp_path / "x.blp").exists()


# ----------------------------------------------------------------------------- decode and info: bounded reads, the pixel cap
def test_decode_max_pixels_raises_the_cap_and_the_error_says_how(photo, tmp_path):
    aec = _aec(photo)  # 56×40 = 2240 pixels
    r = fails(runner.invoke(app, ["decode", str(aec), "-o", str(tmp_path / "a.png"), "--max-pixels", "2k"]),
              "exceeds the cap of 2000 pixels")
    assert r.exit_code == 1 and "--max-pixels" in r.output and str(aec) in r.output
    assert not (tmp_path / "a.png").exists()
    ok(runner.invoke(app, ["decode", str(aec), "-o", str(tmp_path / "a.png"), "--max-pixels", "2240"]))
    for bad in ("0", "lots", "1e9"):
        r = fails(runner.invoke(app, ["decode", str(aec), "-o", str(tmp_path / "b.png"), "--max-pixels", bad]),
                  "--max-pixels must be")
        assert r.exit_code == 2


def test_info_reads_the_header_only(photo, tmp_path):
    aec = _aec(photo)
    data = aec.read_bytes()
    bad = bytearray(data)
    bad[-8] ^= 1  # a damaged payload: info shows the header all the same (decode refuses it)
    aec.write_bytes(bytes(bad))
    i = json.loads(ok(runner.invoke(app, ["info", "--json", str(aec)])).output)
    assert i["bytes"] == len(data) and i["width"] == 56
    aec.write_bytes(data + b"\0")
    fails(runner.invoke(app, ["info", str(aec)]), f"{aec}: trailing bytes: {len(data) + 1} bytes on disk")


def test_endless_inputs_are_refused_at_once_as_processes(tmp_path):
    """``yes | aecodec decode - -o x.png`` and ``aecodec decode /dev/zero -o x.png``: one line, exit 1,
    no output, and no unbounded read."""
    out = tmp_path / "x.png"
    yes = subprocess.Popen(["yes"], stdout=subprocess.PIPE)
    try:
        r = _run("decode", "-", "-o", str(out), stdin=yes.stdout, text=True, timeout=120)
    finally:
        yes.kill()
        yes.wait()
    assert r.returncode == 1 and r.stderr.strip() == "aecodec: error: <stdin>: not an .aec file (wrong magic bytes)"
    if os.path.exists("/dev/zero"):
        r = _run("decode", "/dev/zero", "-o", str(out), text=True, timeout=120)
        assert r.returncode == 1 and r.stderr.strip() == "aecodec: error: /dev/zero: not an .aec file (wrong magic bytes)"
        r = _run("info", "/dev/zero", text=True, timeout=120)
        assert r.returncode == 1 and "not an .aec file" in r.stderr and "Traceback" not in r.stderr
    assert not out.exists()
