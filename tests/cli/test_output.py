"""aecodec.cli.output: one-line errors, summary line and progress bar, size units, <stdin>, signals like Ctrl-C."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from aecodec.cli import app
from aecodec.codec import api
from tests.helpers import fails, ok, smooth_image

runner = CliRunner()


@pytest.mark.parametrize("text, size", [("50000", 50_000), ("50k", 50_000), ("1.5M", 1_500_000),
                                        ("64KiB", 65_536), ("2 MiB", 2_097_152), ("0.5kb", 500),
                                        ("0", None), ("-5k", None), ("12q", None), ("k", None)])
def test_target_size_accepts_bytes_with_decimal_or_binary_units(text, size):
    from aecodec.cli.output import parse_size

    assert parse_size(text) == size


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


def _run(*args, **kw):
    return subprocess.run([sys.executable, "-m", "aecodec", *args], capture_output=True, **kw)


def test_real_subprocess_error_is_one_line_and_nonzero(tmp_path):
    (tmp_path / "junk.aec").write_bytes(b"hello")
    r = _run("decode", str(tmp_path / "junk.aec"), "-o", str(tmp_path / "j.png"))
    err = r.stderr.decode()
    assert r.returncode == 1 and err.startswith("aecodec: error:") and err.count("\n") == 1, err
    assert not (tmp_path / "j.png").exists()


def _aec(photo: Path) -> Path:
    aec = photo.with_suffix(".aec")
    ok(runner.invoke(app, ["encode", str(photo), "-o", str(aec), "--quiet"]))
    return aec


@pytest.mark.parametrize("exc, message", [
    (MemoryError(), "not enough memory"),
    (RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 123 bytes.\nmore"),
     "DefaultCPUAllocator: can't allocate memory"),
])
def test_memory_and_runtime_errors_are_one_line(photo, tmp_path, monkeypatch, exc, message):
    def fail(*args, **kwargs):
        raise exc

    aec = _aec(photo)
    monkeypatch.setattr(api, "encode", fail)
    monkeypatch.setattr(api, "decode", fail)
    r = fails(runner.invoke(app, ["encode", str(photo), "-o", str(tmp_path / "y.aec")]), message)
    assert r.output.startswith(f"aecodec: error: {photo}: ")
    r = fails(runner.invoke(app, ["decode", str(aec), "-o", str(tmp_path / "y.png")]), message)
    assert r.output.startswith(f"aecodec: error: {aec}: ")
    assert not (tmp_path / "y.aec").exists() and not (tmp_path / "y.png").exists()


def test_stdin_is_called_stdin_in_messages():
    r = fails(runner.invoke(app, ["encode", "-", "-o", "-"], input=b""), "<stdin>")
    assert "BytesIO" not in r.output


# Decode in a real process whose image writer stalls once the temp file holds data, so that the
# signal lands while the output is half written.
_STALLING_DECODE = textwrap.dedent("""
    import runpy, signal, sys, time
    from pathlib import Path
    from PIL import Image

    for s in (signal.SIGTERM, signal.SIGHUP):  # as launched from a terminal, whatever the runner passed on
        signal.signal(s, signal.SIG_DFL)

    real_save = Image.Image.save

    def stalling_save(self, fp, *args, **kwargs):
        real_save(self, fp, *args, **kwargs)
        Path(ready).touch()  # the temp file is written, not yet renamed
        time.sleep(60)

    Image.Image.save = stalling_save
    ready, sys.argv = sys.argv[1], ["aecodec", *sys.argv[2:]]
    runpy.run_module("aecodec", run_name="__main__")  # python -m aecodec
""")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_sigterm_and_sighup_stop_like_ctrl_c(photo, tmp_path, signum):
    aec = _aec(photo)
    out = tmp_path / "out"
    out.mkdir()
    ready = tmp_path / "ready"
    proc = subprocess.Popen([sys.executable, "-c", _STALLING_DECODE, str(ready), "decode", str(aec), "-o", str(out / "x.png")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not ready.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ready.exists(), proc.stderr.read() if proc.poll() is not None else "not ready in 30 s"
        assert [p.name for p in out.iterdir()][0].startswith(".x.png.")  # the temp file, mid-write
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signum, err
    assert err.startswith("aecodec: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    assert list(out.iterdir()) == []  # neither the output nor the temp file


def test_signal_handlers_are_installed_only_while_a_command_runs(photo, tmp_path, monkeypatch):
    seen = {}

    def look(*args, **kwargs):
        seen.update(term=signal.getsignal(signal.SIGTERM), hup=signal.getsignal(signal.SIGHUP))
        raise api.CodecError("stop here")

    monkeypatch.setattr(api, "encode", look)
    before = signal.getsignal(signal.SIGTERM)
    old_hup = signal.signal(signal.SIGHUP, signal.SIG_IGN)  # as under nohup
    try:
        fails(runner.invoke(app, ["encode", str(photo), "-o", str(tmp_path / "x.aec")]), "stop here")
        assert seen["hup"] == signal.SIG_IGN  # an ignored SIGHUP stays ignored
        assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, old_hup)
    assert before == signal.SIG_DFL and callable(seen["term"])  # SIGTERM stops the command, while it runs…
    assert signal.getsignal(signal.SIGTERM) == before  # …and the library leaves it as it was
