"""``aecodec batch encode | decode | rd`` in a runtime install: no torch, no CompressAI (and, for
rd's plot, no matplotlib) — each command run as a process in which those cannot be imported, on
the stand-in engine (:mod:`tests.batch.fake_engine`: Ray's own start-up is not what is tested)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from PIL import Image

from tests.helpers import no_torch_env, smooth_image

pytest.importorskip("ray", reason="needs Ray: pip install -e '.[cluster]' (CI installs it)")

_DRIVER = """\
import sys

import pytest

from aecodec.cli import app
from tests.batch import fake_engine

fake_engine.install(pytest.MonkeyPatch())
app(sys.argv[1:], prog_name="aecodec")
"""


def _run(tmp_path, env, *args) -> subprocess.CompletedProcess:
    driver = tmp_path / "driver.py"
    driver.write_text(_DRIVER)
    return subprocess.run([sys.executable, str(driver), "batch", *args], env=env, capture_output=True, text=True,
                          timeout=300)


def test_batch_encode_decode_and_rd_run_without_torch_and_rd_without_matplotlib_skips_only_its_plot(tmp_path):
    src = tmp_path / "photos"
    src.mkdir()
    for i in range(2):
        Image.fromarray(smooth_image(48, 64, seed=i)).save(src / f"{i}.png")
    env = no_torch_env(tmp_path, blocked=("torch", "compressai", "pytorch_msssim", "matplotlib"))
    for args in (["encode", str(src), str(tmp_path / "aec"), "-q", "50"],
                 ["decode", str(tmp_path / "aec"), str(tmp_path / "png")],
                 ["rd", str(src), "-o", str(tmp_path / "rd"), "--qualities", "20,80"]):
        r = _run(tmp_path, env, *args)
        assert r.returncode == 0, (args, r.stderr)
    assert sorted(p.name for p in (tmp_path / "png").glob("*.png")) == ["0.png", "1.png"]
    curve = json.loads((tmp_path / "rd" / "rd.json").read_text())["curve"]
    assert [p["images"] for p in curve] == [2, 2] and all(p["psnr"] > 20 for p in curve)
    assert not (tmp_path / "rd" / "rd.png").exists()
    assert ("aecodec: warning: rd.png will not be drawn: the RD plot needs matplotlib: "
            "pip install 'aecodec[plots]'") in r.stderr.splitlines()
