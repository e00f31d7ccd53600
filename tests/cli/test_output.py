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
        if isinstance(fp, (str, Path)):  # not the writer check's probe into memory
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


# ----------------------------------------------------------------------------- the output policy
# Every command that writes checks all its outputs before any work (cli.output.check_outputs): the
# cases below are the ways earlier versions lost a user's file or failed after the work.
def _no_work(monkeypatch):
    """Make any encode, decode or inspection fail the test: a refusal must come before the work."""
    def work(*args, **kwargs):
        raise AssertionError("the work started before the outputs were checked")

    import aecodec.inspection
    import aecodec.ranking

    monkeypatch.setattr(api, "encode", work)
    monkeypatch.setattr(api, "decode", work)
    monkeypatch.setattr(aecodec.inspection, "inspect", work)
    monkeypatch.setattr(aecodec.ranking, "rank", work)


def _photo(tmp_path, name="in.png") -> Path:
    p = tmp_path / name
    Image.fromarray(smooth_image(24, 32)).save(p)
    return p


def test_an_output_that_is_an_input_is_refused_even_with_force(tmp_path, monkeypatch):
    src = _photo(tmp_path)
    before = src.read_bytes()
    (tmp_path / "link.aec").symlink_to(src)
    (tmp_path / "hard.png").hardlink_to(src)
    (tmp_path / "sub").mkdir()
    _no_work(monkeypatch)
    for out in (src, tmp_path / "link.aec", tmp_path / "sub" / ".." / "in.png"):
        r = fails(runner.invoke(app, ["encode", str(src), "-o", str(out), "--force"]), "writing it would destroy it")
        assert r.exit_code == 2
    fails(runner.invoke(app, ["encode", str(tmp_path / "hard.png"), "-o", str(src), "-f"]), "is also an input")
    fails(runner.invoke(app, ["inspect", str(src), "-o", str(src), "-f"]), "is an input")
    assert src.read_bytes() == before and (tmp_path / "link.aec").is_symlink()


def test_a_dangling_link_counts_as_an_existing_output(tmp_path, monkeypatch):
    src = _photo(tmp_path)
    (tmp_path / "out.aec").symlink_to(tmp_path / "nowhere")
    _no_work(monkeypatch)
    r = fails(runner.invoke(app, ["encode", str(src), "-o", str(tmp_path / "out.aec")]), "dangling symbolic link")
    assert r.exit_code == 1 and (tmp_path / "out.aec").is_symlink()


def test_outputs_whose_folder_cannot_take_them_are_refused_before_the_work(tmp_path, monkeypatch):
    src = _photo(tmp_path)
    _no_work(monkeypatch)
    fails(runner.invoke(app, ["encode", str(src), "-o", str(src / "y.aec")]),
          f"{src / 'y.aec'}: output directory {src} is not a directory")
    fails(runner.invoke(app, ["encode", str(src), "-o", str(tmp_path / "nodir" / "y.aec")]), "does not exist")
    for name_bytes in (256, 242):  # too long for the system; too long once the temp file's suffix is added
        out = tmp_path / ("n" * (name_bytes - 4) + ".aec")
        r = fails(runner.invoke(app, ["encode", str(src), "-o", str(out)]), "file name too long")
        assert ".tmp" not in r.output and r.exit_code == 1
    ok_name = tmp_path / ("n" * (241 - 4) + ".aec")  # the longest that works
    monkeypatch.undo()
    ok(runner.invoke(app, ["encode", str(src), "-o", str(ok_name)]))
    assert ok_name.stat().st_size > 0


def test_a_read_only_folder_is_refused_before_the_work_naming_the_output(tmp_path, monkeypatch):
    import os

    folder = Path("/sys") if Path("/sys").is_dir() else None
    if folder is None or os.access(folder, os.W_OK) and not Path("/proc").is_dir():
        pytest.skip("no read-only folder to write into on this system")
    src = _photo(tmp_path)
    _no_work(monkeypatch)
    r = fails(runner.invoke(app, ["encode", str(src), "-o", str(folder / "y.aec")]), f"{folder / 'y.aec'}: cannot write in")
    assert ".tmp" not in r.output and r.exit_code == 1


def test_inspect_refuses_one_file_named_twice_and_a_missing_folder_before_measuring(tmp_path, monkeypatch):
    src = _photo(tmp_path)
    _no_work(monkeypatch)
    fails(runner.invoke(app, ["inspect", str(src), "-o", str(tmp_path / "r.png"), "--json", str(tmp_path / "r.png")]),
          "named for two outputs")
    fails(runner.invoke(app, ["inspect", str(src), "-o", str(tmp_path / "nodir" / "r.png")]), "does not exist")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png"]


def test_rank_never_writes_its_report_among_the_images_or_into_a_missing_parent(tmp_path, monkeypatch):
    _photo(tmp_path)
    _no_work(monkeypatch)
    fails(runner.invoke(app, ["rank", str(tmp_path), "-o", str(tmp_path)]), "among the images it ranks")
    fails(runner.invoke(app, ["rank", str(tmp_path), "-o", str(tmp_path / "a" / "b")]), "does not exist")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png"]


def test_decode_refuses_a_format_pillow_cannot_write_before_decoding(tmp_path, monkeypatch):
    aec = _aec(_photo(tmp_path))
    _no_work(monkeypatch)
    fails(runner.invoke(app, ["decode", str(aec), "-o", str(tmp_path / "x.h5")]), "cannot write HDF5")
    r = fails(runner.invoke(app, ["decode", str(aec), "-o", str(tmp_path / "x.fits")]), "cannot write FITS")
    assert r.exit_code == 2 and not list(tmp_path.glob("x.*"))


@pytest.mark.parametrize("args", [["-q", "nan"], ["-q", "inf"], ["-q", "-1"]])
def test_every_impossible_quality_is_a_usage_error(tmp_path, monkeypatch, capsys, args):
    from aecodec.cli import main

    src = _photo(tmp_path)
    _no_work(monkeypatch)
    assert main(["encode", str(src), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("aecodec: error:") and err.count("\n") == 1, err


def test_a_closed_standard_output_is_one_line_before_the_work(tmp_path):
    src = _photo(tmp_path)
    r = subprocess.run(f'exec "{sys.executable}" -m aecodec encode "{src}" -o - >&-', shell=True,
                       capture_output=False, stderr=subprocess.PIPE, timeout=120)
    err = r.stderr.decode()
    assert r.returncode == 1 and err == "aecodec: error: -o -: standard output is closed\n", err


def test_pillows_warnings_are_named_by_the_module_that_raised_them_not_the_install_path():
    import warnings

    import PIL

    from aecodec.cli.output import warning_line

    def w(filename, category=UserWarning):
        return warnings.WarningMessage("Palette images with transparency …", category, filename, 1)

    pil_file = str(Path(PIL.__file__).parent / "Image.py")
    assert warning_line(w(pil_file), "x.png") == "x.png: Palette images with transparency …"
    assert warning_line(w(pil_file, PIL.Image.DecompressionBombWarning), "x.png").startswith("x.png: ")
    assert warning_line(w("/home/aecodec/venv/lib/torch/nn/functional.py"), "x.png") is None
    assert warning_line(w(pil_file, DeprecationWarning), "x.png") is None


# The fuzz family for output paths: every way to name an output, with and without --force. Whatever
# happens, no file that was there before is changed unless it is the output and --force was given,
# and a refusal is one line with exit 1 or 2 and leaves nothing behind.
_OUTPUTS = ["new.aec", "exists.aec", "in.png", "sub/../in.png", "link-to-input.aec", "dangling.aec",
            "dir", "dir/", "in.png/x.aec", "nodir/x.aec", "n" * 240 + ".aec", "n" * 300 + ".aec", "", ".", "sub/..",
            "dir/../new2.aec", "loop.aec", "hard-to-input.png", "x" * 5000 + "/y.aec"]


@pytest.mark.parametrize("force", [False, True])
@pytest.mark.parametrize("out", _OUTPUTS, ids=lambda s: s[:20])
def test_output_paths_fuzz_never_lose_a_file(tmp_path, monkeypatch, out, force):
    import os

    monkeypatch.chdir(tmp_path)
    src = _photo(tmp_path)
    Path("exists.aec").write_bytes(b"keep me")
    Path("sub").mkdir()
    Path("dir").mkdir()
    os.symlink("in.png", "link-to-input.aec")
    os.symlink("nowhere", "dangling.aec")
    os.symlink("loop.aec", "loop.aec")
    os.link("in.png", "hard-to-input.png")
    before = {p: (p.read_bytes() if p.is_file() else None) for p in Path(".").rglob("*") if not p.is_symlink()}
    r = runner.invoke(app, ["encode", "in.png", "-o", out, *(["--force"] if force else [])])
    after = {p: (p.read_bytes() if p.is_file() else None) for p in Path(".").rglob("*") if not p.is_symlink()}
    assert "Traceback" not in r.output and r.exception is None or isinstance(r.exception, SystemExit), r.output
    assert src.read_bytes() == before[Path("in.png")], "the input changed"
    written = {p for p in after if before.get(p, "absent") != after[p]}
    if r.exit_code == 0:
        assert written and all(after[p][:4] == b"\x89AEC" for p in written), written
        assert all(p not in before for p in written) or force, "an existing file replaced without --force"
    else:
        assert r.exit_code in (1, 2) and r.output.startswith("aecodec: error: ") and r.output.count("\n") == 1, r.output
        assert not written, written
    assert not list(Path(".").rglob(".*.tmp")), "a temp file left behind"


def test_item_started_ticks_the_shown_bar_for_each_item_before_the_one_starting_and_says_what():
    from aecodec.cli import output

    class Bar:
        def __init__(self):
            self.n, self.text = 0, ""

        def update(self):
            self.n += 1

        def set_description_str(self, text):
            self.text = text

    bar = Bar()
    output.show_bar(bar)
    try:
        start = output.item_started(describe=True)
        for what in ("aecodec", "WebP", "AVIF"):
            start(what)
        assert bar.n == 2 and bar.text == "AVIF"  # the third is still under way
        output.item_started()("a.png")
        assert bar.n == 2  # a new callback's first item completes nothing
    finally:
        output.show_bar(None)


def test_shown_progress_bar_gives_the_bar_back_that_was_shown_before(monkeypatch):
    from aecodec.cli import output

    monkeypatch.setattr(output.sys.stderr, "isatty", lambda: True, raising=False)
    before = object()
    output.show_bar(before)
    try:
        with output.shown_progress_bar(3, quiet=False, unit="step") as bar:
            assert output._bar is bar and bar.unit == "step"
        assert output._bar is before
        with output.shown_progress_bar(1, quiet=False) as bar:  # one item: no bar
            assert bar is None and output._bar is None
        assert output._bar is before
    finally:
        output.show_bar(None)
