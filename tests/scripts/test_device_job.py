"""scripts/device_job.py (the GPU job), proven on the CPU: a dry run brings back every file a GPU job does.

The very same script (scripts/device_train.sh) in a dry run (DEVICE=cpu, a few photos, seconds of
training) produces every file a GPU job brings back; a missing wheel or a missing GPU fails at once
with a diagnostic that names it; the luggage fits the carry budget with every photo; join refuses a
damaged download."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from PIL import Image

from aecodec.models.checkpoint import load_checkpoint
from aecodec.models.zoo import DEFAULT_MODEL_ID, SHIPPED_DIR
from tests.helpers import ROOT, smooth_image

JOB = ROOT / "scripts" / "device_job.py"


def run_job(args, env=None, **kw) -> subprocess.CompletedProcess:
    e = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1", **(env or {})}
    cmd = ["bash", str(ROOT / "scripts/device_train.sh")] if args == "device" else [sys.executable, str(JOB), *args]
    return subprocess.run(cmd, env=e, capture_output=True, text=True, timeout=300, cwd=ROOT, **kw)


@pytest.fixture(scope="module")
def carry(tmp_path_factory) -> Path:
    """Packed luggage from synthetic photos (one smaller than a crop) and two small 'Kodak' images."""
    d = tmp_path_factory.mktemp("job")
    (d / "photos" / "a").mkdir(parents=True)
    (d / "kodak").mkdir()
    for i, (h, w) in enumerate([(200, 150), (96, 128), (48, 60), (130, 170)]):
        Image.fromarray(smooth_image(h, w, seed=i)).save(d / "photos" / "a" / f"p{i}.png")
    for i in range(2):
        Image.fromarray(smooth_image(96, 128, seed=10 + i)).save(d / "kodak" / f"kodim{i:02d}.png")
    r = run_job(["pack", "--carry", str(d / "carry"), "--train", str(d / "photos"), "--kodak", str(d / "kodak"),
                 "--crop", "64", "--no-wheels"])
    assert r.returncode == 0, r.stderr
    return d / "carry"


DRY = {"DEVICE": "cpu", "CROP": "64", "BATCHES": "2,4", "DEADLINE": "75", "PORTABILITY_IMAGES": "2",
       "SPEED_MP": "0.05", "LOG_EVERY": "5"}


def test_pack_carries_every_photo_within_the_budget(carry):
    m = json.loads((carry / "manifest.json").read_text())
    assert m["photos"] == 4 and len(list((carry / "train").glob("*.jpg"))) == 4
    assert m["kodak_images"] == 2 and len(list((carry / "kodak").glob("*.jpg"))) == 2
    assert m["total_mib"] <= m["limit_mib"] - m["margin_mib"]
    assert m["mib"]["tree"] > 5  # the working tree (weights included) is counted against the budget
    big = Image.open(sorted((carry / "train").glob("*p0.jpg"))[0])
    assert min(big.size) == 75  # halved (150 → 75), and never below the crop side (64)
    small = Image.open(sorted((carry / "train").glob("*p2.jpg"))[0])
    assert small.size == (60, 48)  # smaller than a crop: kept as it is


def test_pack_lowers_the_quality_to_fit_and_refuses_what_cannot_fit(carry, tmp_path):
    m = json.loads((carry / "manifest.json").read_text())
    used = m["bytes"]  # exact: the MiB figures are rounded to 0.01, more than these photos weigh
    tight = round((sum(used.values()) - 0.3 * used["train"]) / 2**20 + m["margin_mib"], 4)
    args = ["pack", "--carry", str(tmp_path / "c"), "--train", str(carry.parent / "photos"), "--kodak", str(carry.parent / "kodak"),
            "--crop", "64", "--no-wheels"]
    r = run_job(args + ["--limit-mib", f"{tight:.4f}"])
    assert r.returncode == 0, r.stderr
    m2 = json.loads((tmp_path / "c" / "manifest.json").read_text())
    assert m2["photos"] == 4 and m2["train_jpeg_quality"] < m["train_jpeg_quality"]
    assert sum(m2["bytes"].values()) <= (tight - m["margin_mib"]) * 2**20
    r = run_job(args + ["--limit-mib", f"{m['mib']['tree'] + 0.5:.4f}"])
    assert r.returncode == 2 and "MiB" in r.stderr and "Traceback" not in r.stderr


def test_dry_run_produces_what_a_gpu_job_brings_back(carry, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    t = time.time()
    r = run_job("device", env={**DRY, "OUT": str(out), "CARRY": str(carry)})
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert time.time() - t < 75  # the deadline holds
    names = sorted(p.name for p in out.iterdir())
    assert names == ["job.json", "job.log", "record.json", "weights.pt.part-00", "weights.pt.part-01",
                     "weights.sha256"]
    assert len(names) <= 8 and all(p.stat().st_size <= 16 * 2**20 for p in out.iterdir())
    job = json.loads((out / "job.json").read_text())
    assert list(job["stages"]) == ["wheels", "import", "device", "data", "codec", "train-step", "train", "export",
                                   "portability", "speed"]
    assert job["preflight_s"] < 90 and job["finished_s"] < 75
    assert job["stages"]["train"]["to_step"] > job["stages"]["train"]["from_step"]
    train_ = job["stages"]["train"]
    assert train_["batch"] in (2, 4)
    # the crops of the chunk over at most the time the train stage took (its loop ran inside it)
    stage_s = train_["at_s"] - job["stages"]["train-step"]["at_s"] + 0.1  # at_s is rounded to 0.1 s
    assert train_["crops_per_s"] >= (train_["to_step"] - train_["from_step"]) * train_["batch"] / stage_s - 0.05
    for direction in ("cpu->cpu",):
        p = job["portability"][direction]
        assert p["checked"] == p["planned"] == 2 and p["latents_identical"] == 2 and p["max_pixel_diff"] <= 1
    s = job["speed"]
    assert s["megapixels"] == pytest.approx(0.05, abs=0.01)
    for way in ("encode", "decode"):  # MP/s is the megapixels over the seconds (both rounded)
        assert abs(s[f"{way}_MPps"] - s["megapixels"] / s[f"{way}_s"]) <= 0.01 + 0.02 * s[f"{way}_MPps"]
    assert "training" in json.loads((out / "record.json").read_text())
    assert "train-step" in (out / "job.log").read_text()

    # join: the parts reassemble to the checked weights, one step further than they started
    dest = tmp_path / "back.pt"
    r = run_job(["join", str(out), str(dest)])
    assert r.returncode == 0, r.stderr
    model, c = load_checkpoint(dest)
    assert c["weights_hash"] == job["weights"]["hash"]
    chunk = c["training"]["chunks"][-1]
    assert chunk["to_step"] == job["stages"]["train"]["to_step"]
    assert chunk["crops_per_s"] == job["stages"]["train"]["crops_per_s"]  # the job reports its weights' record
    _, shipped = load_checkpoint(SHIPPED_DIR / f"{DEFAULT_MODEL_ID}.pt")
    assert c["weights_hash"] != shipped["weights_hash"]

    # a damaged download is refused and nothing is written
    part = out / "weights.pt.part-01"
    data = bytearray(part.read_bytes())
    data[100] ^= 1
    part.write_bytes(bytes(data))
    r = run_job(["join", str(out), str(tmp_path / "bad.pt")])
    assert r.returncode == 1 and "checksum mismatch" in r.stderr and not (tmp_path / "bad.pt").exists()


def test_a_missing_wheel_fails_at_once_naming_it(carry, tmp_path):
    (tmp_path / "wheels").mkdir()
    (tmp_path / "wheels" / "pytorch_msssim-1.0.0-py3-none-any.whl").write_bytes(b"")  # present, compressai's not
    for sub in ("train", "kodak"):
        (tmp_path / sub).symlink_to(carry / sub)
    out = tmp_path / "out"
    out.mkdir()
    t = time.time()
    r = run_job("device", env={**DRY, "OUT": str(out), "CARRY": str(tmp_path), "REQUIRE_WHEELS": "1"})
    assert r.returncode == 3 and time.time() - t < 90
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    assert "FAILED at stage 'wheels'" in r.stdout and f"compressai-1.2.8-{tag}" in r.stdout
    assert "pytorch_msssim" not in r.stdout.split("missing wheel")[1].splitlines()[0]
    assert json.loads((out / "job.json").read_text())["failed"]["stage"] == "wheels"
    assert not list(out.glob("weights*"))


def test_no_gpu_fails_the_preflight_with_a_diagnostic(carry, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    out = tmp_path / "out"
    out.mkdir()
    r = run_job("device", env={**DRY, "DEVICE": "cuda", "REQUIRE_WHEELS": "0", "OUT": str(out), "CARRY": str(carry)})
    assert r.returncode == 3
    block = r.stdout[r.stdout.index("===="):]
    assert "FAILED at stage 'device'" in block and "no CUDA GPU" in block and "torch" in block
    assert "Traceback" not in r.stdout


def test_outside_a_device_machine_the_job_refuses_to_start(tmp_path):
    e = {k: v for k, v in os.environ.items() if k != "OUT"}
    r = subprocess.run(["bash", str(ROOT / "scripts/device_train.sh")], env=e, capture_output=True, text=True)
    assert r.returncode != 0 and "OUT is unset" in r.stderr
