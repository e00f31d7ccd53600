"""Hostile command lines and hostile conditions: one error line, no traceback, no partial or lost file."""

from __future__ import annotations

import errno
import os
import shutil
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
from aecodec.codec import api, files

from .conftest import smooth_image
from .test_cli import fails, ok

runner = CliRunner()


def _aec(photo: Path) -> Path:
    aec = photo.with_suffix(".aec")
    ok(runner.invoke(app, ["encode", str(photo), "-o", str(aec), "--quiet"]))
    return aec


def _no_work(*args, **kwargs):
    raise AssertionError("the command did its work before refusing")


# ----------------------------------------------------------------------------- outputs


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


# ----------------------------------------------------------------------------- write_atomic


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


# ----------------------------------------------------------------------------- errors


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


# ----------------------------------------------------------------------------- usage errors (real process)


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "aecodec", *args], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("args, message", [
    (["-q", "101"], "--quality"),
    (["-q", "abc"], "--quality"),
    (["--effort", "10"], "--effort"),
    (["--no-such-option"], "--no-such-option"),
])
def test_usage_errors_are_one_aecodec_error_line(photo, args, message):
    r = _run("encode", str(photo), *args)
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("aecodec: error: ") and message in r.stderr and r.stderr.count("\n") == 1, r.stderr
    assert not photo.with_suffix(".aec").exists()


def test_missing_arguments_and_unknown_commands_are_one_line():
    for args, message in ((["encode"], "Missing argument"), (["frobnicate"], "frobnicate")):
        r = _run(*args)
        assert r.returncode == 2 and r.stderr.startswith("aecodec: error: ") and message in r.stderr, r.stderr
        assert r.stderr.count("\n") == 1, r.stderr


def test_help_and_version_still_exit_0():
    for args, text in ((["--help"], "encode"), (["encode", "--help"], "--quality"), (["--version"], "container format")):
        r = _run(*args)
        assert r.returncode == 0 and text in r.stdout, r.stderr
    r = _run()  # no arguments: the help, on stderr
    assert r.returncode == 2 and "encode" in r.stderr and "Traceback" not in r.stderr


def test_the_console_script_gives_one_line_usage_errors(photo):
    exe = shutil.which("aecodec", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip("console script not installed (package not pip-installed)")
    r = subprocess.run([exe, "encode", str(photo), "-q", "101"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stderr.startswith("aecodec: error: ") and r.stderr.count("\n") == 1, r.stderr


# ----------------------------------------------------------------------------- signals

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
