"""Start-up: each command imports what it needs and nothing else (torch never to code at effort 1 — the
runtime is onnxruntime and numpy —, Ray never for one image).

The CLI answers in about the time of ``import onnxruntime`` plus the coding itself; benchmarks/speed.py measures it."""

from __future__ import annotations

import json
import subprocess
import sys

import aecodec
import aecodec.samples

# pydantic: typer 0.29+ imports it to parse every command's options (pyproject pins typer below 0.29).
# PIL.TiffImagePlugin: one of the plugins Image.init() imports all of (45 ms), needed for PNG in or out.
HEAVY = ("torch", "compressai", "scipy.stats._stats_py", "matplotlib", "torchvision", "aecodec.train", "benchmarks", "pydantic",
         "aecodec.batch", "PIL.TiffImagePlugin")


def _modules_after(*cli_args: str) -> dict:
    """Run the CLI in a fresh interpreter; which of HEAVY it imported, and its exit code."""
    code = ("import json, sys\n"
            "from aecodec.cli import main\n"
            f"rc = main({list(cli_args)!r})\n"
            f"print(json.dumps({{'rc': rc, **{{m: m in sys.modules for m in {HEAVY!r}}}}}))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_encode_and_decode_import_neither_torch_nor_scipy_stats_plotting_training_torchvision_pydantic_or_ray_batches(
        tmp_path):
    aec, png = str(tmp_path / "s.aec"), str(tmp_path / "s.png")
    enc = _modules_after("encode", str(aecodec.samples.path()), "-o", aec, "-q", "50", "--quiet")
    dec = _modules_after("decode", aec, "-o", png, "--quiet")
    up = _modules_after("upgrade", aec, "-o", str(tmp_path / "u.aec"), "--quiet")  # a version-3 file: copied
    for seen in (enc, dec, up):
        assert seen.pop("rc") == 0
        assert seen == {m: False for m in HEAVY}, seen


def test_encode_at_effort_2_imports_torch_for_its_search(tmp_path):
    seen = _modules_after("encode", str(aecodec.samples.path()), "-o", str(tmp_path / "s.aec"), "-q", "50", "-e", "2",
                          "--quiet")
    assert seen.pop("rc") == 0 and seen["torch"] and not seen["aecodec.train"], seen


def test_info_and_version_do_not_import_torch(tmp_path):
    aec = tmp_path / "s.aec"
    aec.write_bytes(aecodec.encode(aecodec.samples.path(), 10))
    for args in (("info", str(aec)), ("info", "--json", str(aec)), ("--version",)):
        seen = _modules_after(*args)
        assert seen.pop("rc") == 0 and not any(seen.values()), (args, seen)


def test_the_codec_and_its_commands_never_import_ray(photo, tmp_path):
    code = (f"import sys, aecodec; from aecodec import cli; d = aecodec.encode({str(photo)!r}, quality=50); "
            "aecodec.decode(d); cli.main(['info', " + repr(str(tmp_path / 'none.aec')) + "]); "
            "print(sorted(m for m in sys.modules if m == 'ray' or m.startswith(('ray.', 'pyarrow'))))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"
