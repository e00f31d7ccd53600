"""aecodec.cli (its __init__): --version, usage errors in one line, help, the console script, exit without teardown."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from aecodec.cli import app
from tests.helpers import ok

runner = CliRunner()


def test_version_names_the_package_and_container_format():
    import aecodec
    from aecodec.codec.format import VERSION

    out = ok(runner.invoke(app, ["--version"])).output
    assert out.startswith(f"aecodec {aecodec.__version__} (container format {VERSION};") and "compressai" in out


def _run(*args, **kw):
    return subprocess.run([sys.executable, "-m", "aecodec", *args], capture_output=True, **kw)


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


def test_console_script_is_installed():
    import shutil
    exe = shutil.which("aecodec", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip("console script not installed (package not pip-installed)")
    r = subprocess.run([exe, "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "encode" in r.stdout


def _run_text(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "aecodec", *args], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("args, message", [
    (["-q", "101"], "--quality"),
    (["-q", "abc"], "--quality"),
    (["--effort", "10"], "--effort"),
    (["--no-such-option"], "--no-such-option"),
])
def test_usage_errors_are_one_aecodec_error_line(photo, args, message):
    r = _run_text("encode", str(photo), *args)
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("aecodec: error: ") and message in r.stderr and r.stderr.count("\n") == 1, r.stderr
    assert not photo.with_suffix(".aec").exists()


def test_missing_arguments_and_unknown_commands_are_one_line():
    for args, message in ((["encode"], "Missing argument"), (["frobnicate"], "frobnicate")):
        r = _run_text(*args)
        assert r.returncode == 2 and r.stderr.startswith("aecodec: error: ") and message in r.stderr, r.stderr
        assert r.stderr.count("\n") == 1, r.stderr


def test_help_and_version_still_exit_0():
    for args, text in ((["--help"], "encode"), (["encode", "--help"], "--quality"), (["--version"], "container format")):
        r = _run_text(*args)
        assert r.returncode == 0 and text in r.stdout, r.stderr
    r = _run_text()  # no arguments: the help, on stderr
    assert r.returncode == 2 and "encode" in r.stderr and "Traceback" not in r.stderr


def test_the_console_script_gives_one_line_usage_errors(photo):
    exe = shutil.which("aecodec", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip("console script not installed (package not pip-installed)")
    r = subprocess.run([exe, "encode", str(photo), "-q", "101"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stderr.startswith("aecodec: error: ") and r.stderr.count("\n") == 1, r.stderr
