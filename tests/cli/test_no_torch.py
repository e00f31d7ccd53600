"""The runtime without PyTorch (#31): with torch and CompressAI impossible to import (as in
``pip install aecodec``), the codec encodes at effort 1 (and to a target size), decodes, reads
headers and serves Pillow — importing neither; what needs torch (``--effort`` ≥ 2, a format-1 file)
says so in one line, exit 2."""

from __future__ import annotations

import subprocess
import sys

import aecodec.samples
from tests.helpers import ROOT, no_torch_env

HINT = "pip install 'aecodec[train]'"


def _python(code: str, tmp_path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=no_torch_env(tmp_path),
                          capture_output=True, text=True, timeout=300)


def _cli(args: list[str], tmp_path) -> subprocess.CompletedProcess:
    return _python(f"import sys; from aecodec.cli import main; sys.exit(main({args!r}))", tmp_path)


def test_the_blocker_blocks(tmp_path):
    r = _python("import importlib.util\n"
                "for m in ('torch', 'compressai'):\n"
                "    assert importlib.util.find_spec(m) is None, m\n"
                "    try:\n"
                "        __import__(m)\n"
                "    except ImportError:\n"
                "        pass\n"
                "    else:\n"
                "        raise AssertionError(m + ' imported')\n"
                "from aecodec.models.runtime import has_torch; assert not has_torch()\n", tmp_path)
    assert r.returncode == 0, r.stderr


def test_encode_decode_target_size_info_and_pillow_without_torch(tmp_path):
    sample = str(aecodec.samples.path())
    code = f"""
import io, sys
import numpy as np
from PIL import Image
import aecodec

data = aecodec.encode({sample!r})                       # effort 1, the default
assert data[4] == 3, data[4]
img = aecodec.decode(data)
src = np.asarray(Image.open({sample!r}).convert("RGB"), dtype=float)
mse = ((np.asarray(img, dtype=float) - src) ** 2).mean()
assert img.size == Image.open({sample!r}).size and 10 * np.log10(255 ** 2 / mse) > 25, mse
small = aecodec.encode({sample!r}, target_size=len(data) // 2)
assert len(small) <= len(data) // 2
info = aecodec.info(data)
assert info["format_version"] == 3 and info["bytes"] == len(data)
with open("x.aec", "wb") as f:
    f.write(data)
pil = Image.open("x.aec")
assert pil.format == "AEC" and np.array_equal(np.asarray(pil), np.asarray(img))
pil.save("y.aec", quality=40)
assert Image.open("y.aec").size == img.size
bad = [m for m in sys.modules if m.split(".")[0] in ("torch", "compressai") and sys.modules[m] is not None]
assert not bad, bad
print("ok")
"""
    r = _python(code, tmp_path)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stdout + r.stderr


def test_the_commands_without_torch(tmp_path):
    sample = str(aecodec.samples.path())
    assert _cli(["encode", sample, "-o", "s.aec", "-q", "50", "--quiet"], tmp_path).returncode == 0
    assert _cli(["encode", sample, "-o", "t.aec", "--target-size", "12k", "--quiet"], tmp_path).returncode == 0
    assert (tmp_path / "t.aec").stat().st_size <= 12000
    assert _cli(["decode", "s.aec", "-o", "s.png", "--quiet"], tmp_path).returncode == 0
    r = _cli(["info", "s.aec"], tmp_path)
    assert r.returncode == 0 and "aecodec v3, model mean-scale-vr-128@" in r.stdout, r.stdout + r.stderr
    assert _cli(["upgrade", "s.aec", "-o", "u.aec", "--quiet"], tmp_path).returncode == 0  # already format 3: copied
    assert (tmp_path / "u.aec").read_bytes() == (tmp_path / "s.aec").read_bytes()


def _one_line_exit_2(r: subprocess.CompletedProcess, *needles: str) -> None:
    lines = [l for l in (r.stdout + r.stderr).splitlines() if l.strip()]
    assert r.returncode == 2 and len(lines) == 1, (r.returncode, r.stdout + r.stderr)
    assert "Traceback" not in lines[0] and all(n in lines[0] for n in needles), lines[0]


def test_effort_2_says_it_needs_pytorch_in_one_line(tmp_path):
    sample = str(aecodec.samples.path())
    r = _cli(["encode", sample, "-o", "s.aec", "-e", "2", "--quiet"], tmp_path)
    _one_line_exit_2(r, "effort 2", "needs PyTorch", HINT)
    assert not (tmp_path / "s.aec").exists()


def test_a_format_1_file_says_it_needs_pytorch_or_an_upgrade_in_one_line(tmp_path):
    golden = str(ROOT / "tests" / "golden" / "v1-rgb.aec")
    r = _cli(["decode", golden, "-o", "g.png", "--quiet"], tmp_path)
    _one_line_exit_2(r, "needs PyTorch", HINT, "aecodec upgrade")
    assert not (tmp_path / "g.png").exists()
    _one_line_exit_2(_cli(["upgrade", golden, "-o", "u.aec", "--quiet"], tmp_path), "needs PyTorch", HINT)
    assert not (tmp_path / "u.aec").exists()
    r = _cli(["info", golden], tmp_path)  # the header needs no model
    assert r.returncode == 0, r.stdout + r.stderr
