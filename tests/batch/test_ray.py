"""``aecodec batch`` on Ray: the bytes of ``aecodec encode``, reruns that resume, bad inputs reported, rd at scale.

These tests share one local Ray with 2 CPUs (the CLI joins a Ray already started in its process);
one test runs the command as a subprocess that starts its own."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import aecodec
from aecodec.batch import read_manifest
from aecodec.cli import app
from tests.helpers import smooth_image

runner = CliRunner()
try:
    import ray
    import ray.data  # noqa: F401
except ImportError:
    ray = None
needs_ray = pytest.mark.skipif(ray is None, reason="needs Ray: pip install -e '.[cluster]' (CI installs it)")


GOOD = ("a.png", "sub/b.png", "sub/deeper/c-gray.jpg", "sub/d-rgba.png")


def _corpus(root: Path) -> Path:
    """Four small images (RGB, gray JPEG, RGBA) in nested folders, one corrupt PNG, one non-image."""
    src = root / "photos"
    (src / "sub" / "deeper").mkdir(parents=True)
    Image.fromarray(smooth_image(72, 96, seed=1)).save(src / GOOD[0])
    Image.fromarray(smooth_image(64, 80, seed=2)).save(src / GOOD[1])
    Image.fromarray(smooth_image(48, 70, channels=1, seed=3)).save(src / GOOD[2], quality=95)
    rgba = np.dstack([smooth_image(40, 60, seed=4), np.tile(np.arange(60, dtype=np.uint8) * 4, (40, 1))])
    Image.fromarray(rgba, "RGBA").save(src / GOOD[3])
    (src / "sub" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    (src / "notes.txt").write_text("not an image")
    return src


def _rows(path: Path) -> dict[str, dict]:
    return {Path(r["input"]).name: r for r in read_manifest(path)}


def _failed(result, *messages: str):
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    for m in messages:
        assert m in result.output, result.output
    return result


@pytest.fixture(scope="module")
def local_ray():
    if ray is None:
        pytest.skip("needs Ray: pip install -e '.[cluster]' (CI installs it)")
    started = not ray.is_initialized()
    if started:
        term = signal.getsignal(signal.SIGTERM)
        ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)
        signal.signal(signal.SIGTERM, term)  # ray.init's handler would outlive these tests
    yield ray
    if started:
        ray.shutdown()


@pytest.fixture(scope="module")
def encoded(local_ray, tmp_path_factory):
    """The corpus encoded once at quality 40 by ``aecodec batch encode`` (the CliRunner result too)."""
    root = tmp_path_factory.mktemp("batch")
    src = _corpus(root)
    t = time.perf_counter()
    result = runner.invoke(app, ["batch", "encode", str(src), str(root / "out"), "-q", "40"])
    result.wall_s = time.perf_counter() - t  # the rows' times lie within it
    return src, root / "out", result


# ------------------------------------------------------------------------------- encode
@needs_ray
def test_batch_encode_writes_what_aecodec_encode_writes_and_reports_the_bad_input(encoded):
    src, out, result = encoded
    _failed(result, "aecodec: error: ", "broken.png", "5 images", "4 encoded, 1 failed")
    weights_mib = (Path(aecodec.__file__).parent / "models" / "weights" / "mean-scale-vr-128.pt").stat().st_size / 2**20
    for name in GOOD:
        assert (out / name).with_suffix(".aec").read_bytes() == aecodec.encode(src / name, quality=40), name
    rows = _rows(out / "manifest.jsonl")
    assert sorted(rows) == sorted(["broken.png", *(Path(n).name for n in GOOD)])
    assert rows["broken.png"]["status"] == "failed" and "broken.png" in rows["broken.png"]["error"]
    for name in GOOD:
        r = rows[Path(name).name]
        data = (out / name).with_suffix(".aec").read_bytes()
        assert r["status"] == "done" and r["error"] is None and r["output"] == str((out / name).with_suffix(".aec"))
        assert r["bytes"] == len(data) and r["bpp"] == pytest.approx(8 * len(data) / (r["width"] * r["height"]))
        assert 0 < r["seconds"] < result.wall_s and re.fullmatch(r".+:\d+", r["worker"])  # host:pid
        # MiB: at least the model's weights file the worker loaded, at most the machine's memory
        assert weights_mib <= r["peak_rss_mb"] <= os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20
    leftovers = [p.name for p in out.rglob("*") if p.is_file() and p.suffix not in (".aec", ".jsonl")]
    assert leftovers == []  # no temp files, no .partial manifest, nothing for the corrupt input
    assert not (out / ".aecodec-attempts").exists()


@needs_ray
def test_a_rerun_skips_verified_outputs_and_redoes_damaged_and_stale_ones(encoded, tmp_path):
    src, out, _ = encoded
    work = tmp_path / "out"
    import shutil

    shutil.copytree(out, work)
    damaged, stale, kept = (work / n for n in ("a.aec", "sub/b.aec", "sub/d-rgba.aec"))
    damaged.write_bytes(damaged.read_bytes()[:-3])  # truncated: the CRC fails
    os.utime(stale, (1, 1))  # older than its input: the input changed since
    before = kept.stat().st_mtime_ns
    leftover = work / "sub" / ".b.aec.0badcafe.tmp"  # a worker killed mid-write left it: removed
    leftover.write_bytes(b"partial")
    foreign = work / ".notes.txt.0badcafe.tmp"  # not for an output of this job: kept
    foreign.write_bytes(b"someone else's")
    _failed(runner.invoke(app, ["batch", "encode", str(src), str(work), "-q", "40"]),
            "2 encoded, 2 skipped (already done), 1 failed")
    rows = _rows(work / "manifest.jsonl")
    assert {n: r["status"] for n, r in rows.items()} == {
        "a.png": "done", "b.png": "done", "c-gray.jpg": "skipped", "d-rgba.png": "skipped", "broken.png": "failed"}
    assert damaged.read_bytes() == (out / "a.aec").read_bytes()
    assert kept.stat().st_mtime_ns == before
    assert not leftover.exists() and foreign.exists()
    assert rows["d-rgba.png"]["bytes"] == kept.stat().st_size  # a skipped row still has its numbers


@needs_ray
def test_force_and_another_quality_redo_every_output(encoded, tmp_path):
    src, out, _ = encoded
    import shutil

    shutil.copytree(out, tmp_path / "out")
    _failed(runner.invoke(app, ["batch", "encode", str(src), str(tmp_path / "out"), "-q", "70", "--quiet"]))
    for name in GOOD:
        assert (tmp_path / "out" / name).with_suffix(".aec").read_bytes() == aecodec.encode(src / name, quality=70)
    r = _failed(runner.invoke(app, ["batch", "encode", str(src), str(tmp_path / "out"), "-q", "70", "--force"]),
                "4 encoded, 1 failed")
    assert "skipped" not in r.output


# ------------------------------------------------------------------------------- decode
@needs_ray
def test_batch_decode_writes_the_pixels_of_aecodec_decode(encoded, tmp_path):
    _, out, _ = encoded
    dec = tmp_path / "decoded"
    r = runner.invoke(app, ["batch", "decode", str(out), str(dec), "--workers", "1"])
    assert r.exit_code == 0, r.output
    assert "4 images, 1 worker × 2 CPUs" in r.output and "4 decoded" in r.output
    for name in GOOD:
        data = (out / name).with_suffix(".aec").read_bytes()
        with Image.open((dec / name).with_suffix(".png")) as got:
            want = aecodec.decode(data)
            assert got.mode == want.mode and np.array_equal(np.asarray(got), np.asarray(want)), name
    r = runner.invoke(app, ["batch", "decode", str(out), str(dec)])
    assert r.exit_code == 0 and "0 decoded, 4 skipped" in r.output, r.output


# ------------------------------------------------------------------------------- rd
@needs_ray
def test_batch_rd_measures_each_image_from_its_real_file_and_resumes(encoded, tmp_path):
    from aecodec.metrics import psnr

    src, _, _ = encoded
    res = tmp_path / "rd"
    _failed(runner.invoke(app, ["batch", "rd", str(src), "-o", str(res), "--qualities", "20,80"]), "4 measured")
    rows = _rows(res / "manifest.jsonl")
    a = rows["a.png"]
    for p in a["points"]:
        data = aecodec.encode(src / "a.png", quality=p["quality"])
        assert p["bytes"] == len(data) and p["bpp"] == pytest.approx(8 * len(data) / (96 * 72), abs=1e-6)
        assert p["psnr"] == pytest.approx(psnr(np.asarray(Image.open(src / "a.png")), np.asarray(aecodec.decode(data))),
                                          abs=1e-3)
    doc = json.loads((res / "rd.json").read_text())
    assert [c["quality"] for c in doc["curve"]] == [20.0, 80.0] and all(c["images"] == 4 for c in doc["curve"])
    assert doc["curve"][0]["bpp"] < doc["curve"][1]["bpp"] and doc["curve"][0]["psnr"] < doc["curve"][1]["psnr"]
    assert (res / "rd.png").read_bytes()[:4] == b"\x89PNG"
    _failed(runner.invoke(app, ["batch", "rd", str(src), "-o", str(res), "--qualities", "20,80"]),
            "0 measured, 4 skipped")
    assert json.loads((res / "rd.json").read_text())["curve"] == doc["curve"]


# ------------------------------------------------------------------------------- as a process
@needs_ray
def test_batch_as_a_subprocess_starts_its_own_ray_and_prints_no_ray_noise(tmp_path):
    src = _corpus(tmp_path)
    r = subprocess.run([sys.executable, "-m", "aecodec", "batch", "encode", str(src), str(tmp_path / "out"),
                        "-q", "40", "--workers", "2"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 1, r.stderr
    lines = r.stderr.strip().splitlines()
    assert lines[0] == "5 images, 2 workers × 1 CPU"
    assert [l for l in lines if l.startswith("aecodec: error:")] == [f"aecodec: error: {src / 'sub' / 'broken.png'}: "
                                                                     "cannot read image (unknown format or corrupt file)"]
    assert "4 encoded, 1 failed" in lines[-2] and lines[-1] == f"manifest: {tmp_path / 'out' / 'manifest.jsonl'}"
    assert len(lines) == 4, r.stderr  # nothing from Ray: no log lines, no progress bars, no warnings
    for name in GOOD:
        assert (tmp_path / "out" / name).with_suffix(".aec").read_bytes() == aecodec.encode(src / name, quality=40)


# ------------------------------------------------------------------------------- a cluster failure
@needs_ray
def test_workers_that_cannot_start_end_the_job_in_one_line_naming_why(local_ray, tmp_path):
    """A real Ray failure (the workers' constructor raises, so Ray Data's actors die at creation):
    one line that says what (the model's own error) and where (worker pid and node), exit 1."""
    src = tmp_path / "photos"
    src.mkdir()
    Image.fromarray(smooth_image(24, 32)).save(src / "a.png")
    missing = tmp_path / "no-such-weights.pt"
    r = runner.invoke(app, ["batch", "encode", str(src), str(tmp_path / "out"), "--model", str(missing)])
    assert r.exit_code == 1 and "Traceback" not in r.output, r.output
    (line,) = [l for l in r.output.splitlines() if l.startswith("aecodec: error:")]
    assert re.fullmatch(r"aecodec: error: batch job stopped: a worker could not start \(worker pid \d+ on [\d.:a-f]+\): "
                        rf".*{re.escape(str(missing))}.*; 0 of 1 images finished, their rows are in "
                        rf"{re.escape(str(tmp_path / 'out' / 'manifest.jsonl.partial'))}, and a rerun resumes", line), line
    assert not (tmp_path / "out" / "a.aec").exists()


@needs_ray
def test_a_job_whose_ray_node_dies_says_so_in_one_line_and_keeps_the_rows_of_what_finished(tmp_path):
    """The issue's case, for real: the raylet of the job's own Ray killed mid-job (as the OOM killer
    or a plasma store that cannot map its memory does). Ray's core ends the driver at once, exit 1;
    the one error line comes from the job's watcher; the rows of the images that finished stay."""
    src = tmp_path / "photos"
    src.mkdir()
    for i in range(8):
        Image.fromarray(smooth_image(192, 192, seed=i)).save(src / f"p{i:02d}.png")
    out = tmp_path / "out"
    partial = out / "manifest.jsonl.partial"
    driver = subprocess.Popen([sys.executable, "-m", "aecodec", "batch", "encode", str(src), str(out)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (partial.is_file() and partial.read_text().count("\n")) and driver.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    (raylet,) = [p for p in Path("/proc").iterdir() if p.name.isdigit() and _parent_and_name(p) == (driver.pid, "raylet")]
    os.kill(int(raylet.name), signal.SIGKILL)
    stdout, stderr = driver.communicate(timeout=120)
    assert driver.returncode == 1 and stdout == "" and "Traceback" not in stderr
    lines = stderr.splitlines()
    assert lines[0] == "8 images, 2 workers × 1 CPU" and len(lines) == 2, stderr
    m = re.fullmatch(r"aecodec: error: batch job stopped: the process was ended at once, by Ray when the Ray node of "
                     r"this machine died \(.*\) or by a signal; (\d+) of 8 images finished, their rows are in "
                     rf"{re.escape(str(partial))}, and a rerun resumes", lines[1])
    assert m and 1 <= int(m.group(1)) < 8 and int(m.group(1)) == len(read_manifest(partial)), lines[1]
    assert not (out / "manifest.jsonl").exists()


def _parent_and_name(proc: Path) -> tuple[int, str] | None:
    try:
        stat = (proc / "stat").read_text()
    except OSError:
        return None
    name, rest = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2:].split()
    return int(rest[1]), name
