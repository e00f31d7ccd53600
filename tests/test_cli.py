"""The command line, through Typer's CliRunner and as a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from aecodec.cli import app

from .conftest import smooth_image

runner = CliRunner()


def ok(result):
    assert result.exit_code == 0, result.output
    return result


def fails(result, message: str):
    assert result.exit_code != 0, result.output
    assert message in result.output, result.output
    assert "Traceback" not in result.output
    lines = [l for l in result.output.splitlines() if l.strip()]
    assert len(lines) == 1, result.output  # one line, not a stack trace
    return result


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


@pytest.mark.parametrize("text, size", [("50000", 50_000), ("50k", 50_000), ("1.5M", 1_500_000),
                                        ("64KiB", 65_536), ("2 MiB", 2_097_152), ("0.5kb", 500),
                                        ("0", None), ("-5k", None), ("12q", None), ("k", None)])
def test_target_size_accepts_bytes_with_decimal_or_binary_units(text, size):
    from aecodec.cli.output import parse_size

    assert parse_size(text) == size


def test_bad_or_unreachable_targets_are_one_line_errors(photo, tmp_path):
    out = tmp_path / "t.aec"
    fails(runner.invoke(app, ["encode", str(photo), "-o", str(out), "--target-size", "10"]), "cannot fit")
    for args, msg in ((["--target-size", "12q"], "--target-size"), (["--target-size", "0"], "--target-size"),
                      (["--target-bpp", "0"], "--target-bpp"), (["-q", "50", "--target-size", "2k"], "one of")):
        fails(runner.invoke(app, ["encode", str(photo), "-o", str(out), *args]), msg)
    assert not out.exists()


def test_version_names_the_package_and_container_format():
    import aecodec
    from aecodec.codec.format import VERSION

    out = ok(runner.invoke(app, ["--version"])).output
    assert out.startswith(f"aecodec {aecodec.__version__} (container format {VERSION};") and "compressai" in out


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


def _three_photos(tmp_path) -> list[str]:
    srcs = []
    for i in range(3):
        p = tmp_path / f"im{i}.png"
        Image.fromarray(smooth_image(20 + i, 30, seed=i)).save(p)
        srcs.append(str(p))
    return srcs


def test_a_batch_prints_one_summary_line_and_each_file_only_with_verbose(tmp_path):
    srcs = _three_photos(tmp_path)
    (tmp_path / "bad.png").write_bytes(b"not an image")
    out = tmp_path / "out"
    out.mkdir()
    r = runner.invoke(app, ["encode", *srcs, str(tmp_path / "bad.png"), "-o", str(out)])
    assert r.exit_code == 1
    lines = r.output.splitlines()
    assert len(lines) == 2 and lines[0].startswith("aecodec: error:") and "bad.png" in lines[0]
    assert lines[1] == "3 of 4 images encoded, 1 failed"
    r = ok(runner.invoke(app, ["encode", *srcs, "-o", str(out), "--force", "-v"]))
    assert [l.split(" -> ")[0] for l in r.output.splitlines()] == srcs
    r = ok(runner.invoke(app, ["decode", *map(str, sorted(out.glob("*.aec"))), "-o", str(out)]))
    assert r.output.splitlines() == ["3 of 3 images decoded"]
    r = ok(runner.invoke(app, ["decode", *map(str, sorted(out.glob("*.aec"))), "-o", str(out), "--force", "--quiet"]))
    assert r.output == ""
    r = ok(runner.invoke(app, ["encode", srcs[0], "-o", str(out / "one.aec")]))  # one input: its line
    assert r.output.startswith(f"{srcs[0]} -> ") and r.output.count("\n") == 1


def test_a_batch_shows_a_progress_bar_on_a_terminal(tmp_path):
    """Through a pseudo-terminal, as a user sees it: tqdm's bar counts the images on stderr."""
    import fcntl
    import os
    import pty
    import struct
    import termios

    srcs = _three_photos(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a new pty is 0×0
    proc = subprocess.Popen([sys.executable, "-m", "aecodec", "encode", *srcs, "-o", str(out)],
                            stdout=subprocess.DEVNULL, stderr=follower)
    os.close(follower)
    seen = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # EIO: the process closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    os.close(leader)
    assert proc.wait(timeout=120) == 0
    text = seen.decode(errors="replace")
    assert "0/3 [" in text and "image/s" in text, text  # the bar, counting images
    assert "3 of 3 images encoded" in text and " -> " not in text, text


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


def test_encode_help_documents_the_quality_scale():
    r = ok(runner.invoke(app, ["encode", "--help"]))
    assert "0–100" in r.output and "higher is" in r.output


def _run(*args, **kw):
    return subprocess.run([sys.executable, "-m", "aecodec", *args], capture_output=True, **kw)


def test_real_subprocess_round_trip(photo, tmp_path):
    r = _run("encode", str(photo), "-o", str(tmp_path / "s.aec"), "-q", "80")
    assert r.returncode == 0, r.stderr.decode()
    r = _run("decode", str(tmp_path / "s.aec"), "-o", str(tmp_path / "s.png"))
    assert r.returncode == 0, r.stderr.decode()
    assert Image.open(tmp_path / "s.png").size == (56, 40)


def test_real_subprocess_ends_without_teardown_but_with_all_its_output(photo, tmp_path):
    """``python -m aecodec`` (and the console script) end with os._exit after the command
    (aecodec.cli.run): what went to stdout — a whole .aec file here — and stderr must be complete."""
    r = _run("encode", str(photo), "-o", "-", "-q", "60")
    assert r.returncode == 0, r.stderr.decode()
    import aecodec

    assert r.stdout == aecodec.encode(photo, 60)
    r = _run("decode", "-", "-o", "-", input=r.stdout)
    assert r.returncode == 0 and Image.open(__import__("io").BytesIO(r.stdout)).size == (56, 40)
    assert r.stderr.decode().endswith("RGB\n")  # its summary line, flushed


def test_real_subprocess_error_is_one_line_and_nonzero(tmp_path):
    (tmp_path / "junk.aec").write_bytes(b"hello")
    r = _run("decode", str(tmp_path / "junk.aec"), "-o", str(tmp_path / "j.png"))
    err = r.stderr.decode()
    assert r.returncode == 1 and err.startswith("aecodec: error:") and err.count("\n") == 1, err
    assert not (tmp_path / "j.png").exists()


def test_console_script_is_installed():
    import shutil
    exe = shutil.which("aecodec", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip("console script not installed (package not pip-installed)")
    r = subprocess.run([exe, "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "encode" in r.stdout


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


def test_batch_rd_help_shows_the_benchmark_qualities_it_uses_by_default():
    from aecodec.batch.work import RD_QUALITIES

    r = runner.invoke(app, ["batch", "rd", "--help"], env={"COLUMNS": "200"})
    assert r.exit_code == 0
    assert "(" + ",".join(f"{q:g}" for q in RD_QUALITIES) + ")" in r.output
