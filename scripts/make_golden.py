"""Write the golden .aec files of tests/golden/: small files made by today's code, which every later
version must decode to the very same pixels (tests/codec/test_golden.py decodes them on every test run).

Golden files are history. A file users already have does not change when the code does, so a golden
file is written once and never rewritten: this script refuses to touch a file that exists, and the
test fails if a golden file's bytes differ from the sha256 recorded when it was written.

When to run it:

* **a new format version** (or a new kind of file: a new layout, a new model architecture in the
  zoo): add cases for it to :data:`CASES` below — named ``v<version>-<case>`` — and run

      python scripts/make_golden.py --add-missing

  which writes only the cases whose file is absent and adds them to ``tests/golden/manifest.json``.
  Commit the new files with the change that introduced them.
* **never** to "fix" a failing golden test: a failing decode of a golden file means files users
  have would no longer decode (or would decode to other pixels). Fix the decoder, or keep the old
  decoding path for the old version. (The shipped weights are part of this: a golden file names
  its model by id and weights hash, so new weights must not replace the ones old files need.)
* ``--dir SCRATCH`` writes the cases somewhere else, e.g. to see what today's code would write.

Each file is made from a crop of the sample photo shipped in the package
(``aecodec/samples/coffee.png``, CC0), so nothing outside the repository is needed. The manifest
records, per file: its format version, model id and weights hash, the decoded mode and size, the
sha256 of the decoded pixels (``np.asarray(img).tobytes()``) and of the file, its header as
``aecodec.info`` reads it, the sha256 of its entropy-decoded latents ŷ, how it was made, and where
(aecodec version, commit, the synthesis engine, CPU). Beside each file, ``decoded/<name>.png`` holds its decoded
pixels (lossless): the latents are bit-identical on every machine, but the pixels come from a
floating-point synthesis that is bit-identical only with the same engine on the same kind of CPU — elsewhere the test
compares them with these, within one level.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import platform
import re
import subprocess
import sys
import warnings
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import PIL
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout: the aecodec of this tree

import aecodec  # noqa: E402
import aecodec.samples  # noqa: E402
from aecodec.device import cpu_name  # noqa: E402

GOLDEN = ROOT / "tests" / "golden"
MANIFEST = "manifest.json"
DECODED = "decoded"  # the decoded pixels of each file, as PNG
MAX_BYTES = 10_240  # a golden file stays small: the repository carries every one of them forever


def _coffee() -> np.ndarray:
    with Image.open(aecodec.samples.path("coffee.png")) as im:
        return np.asarray(im.convert("RGB"))


def _ramp(h: int, w: int) -> np.ndarray:
    """An alpha plane with every level from transparent to opaque (a diagonal ramp)."""
    yy, xx = np.mgrid[0:h, 0:w]
    return ((xx * 255 // max(w - 1, 1) + yy * 3) % 256).astype(np.uint8)


def _rgb(box):
    x0, y0, x1, y1 = box
    return _coffee()[y0:y1, x0:x1]


def _rgba(box):
    rgb = _rgb(box)
    return Image.fromarray(np.dstack([rgb, _ramp(*rgb.shape[:2])]), "RGBA")


def _la(box):
    gray = np.asarray(Image.fromarray(_rgb(box)).convert("L"))
    return Image.fromarray(np.dstack([gray, _ramp(*gray.shape)]), "LA")


def _gray(box):
    return Image.fromarray(_rgb(box)).convert("L")


def _gray16(box):
    gray = np.asarray(_gray(box)).astype(np.uint16) * 257 + 128  # not a multiple of 257: ÷ 257 rounds
    return Image.fromarray(gray).convert("I;16")


# name → (what it is, how its source is made, crop box (x0, y0, x1, y1) of coffee.png, encode options).
# Sizes are deliberately not multiples of 16 or 64: the decoder's crop of the padding is pinned too.
CASES = {
    "v1-rgb": ("colour (RGB), one tile", _rgb, (250, 140, 350, 215), {"quality": 75}),
    "v1-gray": ("gray (L)", _gray, (180, 60, 270, 130), {"quality": 50}),
    "v1-rgba": ("RGB + an alpha ramp (RGBA), alpha stored as PNG", _rgba, (300, 250, 372, 310), {"quality": 80}),
    "v1-la": ("gray + an alpha ramp (LA)", _la, (60, 300, 140, 350), {"quality": 20}),
    "v1-tiles": ("a 3×3 grid of 64-pixel tiles", _rgb, (200, 120, 390, 270), {"quality": 40, "tile": 64}),
    "v1-gray16": ("a 16-bit gray input (I;16), coded as 8-bit gray", _gray16, (400, 40, 470, 100),
                  {"quality": 37.5}),
    "v2-strip": ("a wide thin strip, coded folded: column strips stacked", _rgb, (40, 180, 552, 196),
                 {"quality": 60}),
    "v2-thin": ("a 3-pixel-wide tall strip, folded with each line repeated", _rgb, (297, 0, 300, 400),
                {"quality": 85}),
    # format 3 (aecodec 0.2): the same cases, coded with the torch-free coder
    "v3-rgb": ("colour (RGB), one tile", _rgb, (250, 140, 350, 215), {"quality": 75}),
    "v3-gray": ("gray (L)", _gray, (180, 60, 270, 130), {"quality": 50}),
    "v3-rgba": ("RGB + an alpha ramp (RGBA), alpha stored as PNG", _rgba, (300, 250, 372, 310), {"quality": 80}),
    "v3-la": ("gray + an alpha ramp (LA)", _la, (60, 300, 140, 350), {"quality": 20}),
    "v3-tiles": ("a 3×3 grid of 64-pixel tiles", _rgb, (200, 120, 390, 270), {"quality": 40, "tile": 64}),
    "v3-gray16": ("a 16-bit gray input (I;16), coded as 8-bit gray", _gray16, (400, 40, 470, 100),
                  {"quality": 37.5}),
    "v3-strip": ("a wide thin strip, coded folded: column strips stacked", _rgb, (40, 180, 552, 196),
                 {"quality": 60}),
    "v3-thin": ("a 3-pixel-wide tall strip, folded with each line repeated", _rgb, (297, 0, 300, 400),
                {"quality": 85}),
}


def sha256(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def _commit() -> str | None:
    git = dict(cwd=ROOT, capture_output=True, text=True, timeout=60, env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"})
    try:
        r = subprocess.run(["git", "rev-parse", "HEAD"], **git)
        dirty = subprocess.run(["git", "diff", "--name-only", "HEAD", "--", "aecodec"], **git).stdout.strip()
    except OSError:
        return None
    return (r.stdout.strip() + (" (aecodec/ modified)" if dirty else "")) if r.returncode == 0 else None


def _provenance() -> dict:
    """Where and with what the files were made. ``synthesis`` names the engine that ran g_s (the
    decoded pixels are bit-identical only for the same engine on the same kind of CPU); files
    recorded before it was noted were synthesised by torch."""
    from importlib.metadata import PackageNotFoundError, version

    def v(name: str) -> str | None:
        try:
            return version(name)
        except PackageNotFoundError:
            return None

    return {"aecodec": aecodec.__version__, "commit": _commit(), "synthesis": f"onnxruntime {v('onnxruntime')}",
            "torch": v("torch"), "numpy": np.__version__, "pillow": PIL.__version__,
            "python": platform.python_version(), "machine": platform.machine(), "cpu": cpu_name(),
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d")}


def make(name: str) -> tuple[bytes, bytes, dict]:
    """Encode case ``name`` with today's code: its bytes, its decode as PNG, its manifest entry."""
    what, source, box, options = CASES[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the 16-bit input's conversion warning
        image = source(box)
        data = aecodec.encode(image, **options)
    header = aecodec.info(data)
    img = aecodec.decode(data)
    png = io.BytesIO()
    img.save(png, "PNG")
    version = int(name.split("-")[0][1:])
    if header["format_version"] != version:
        raise SystemExit(f"make_golden: today's code writes case {name!r} as format version "
                         f"{header['format_version']}, not {version}: rename the case")
    if len(data) > MAX_BYTES:
        raise SystemExit(f"make_golden: case {name!r} is {len(data)} bytes, more than {MAX_BYTES}: use a smaller crop")
    src_mode = image.mode if isinstance(image, Image.Image) else {2: "L", 3: "RGB"}[image.ndim]
    return data, png.getvalue(), {
        "case": what,
        "source": {"image": "aecodec/samples/coffee.png", "crop": list(box), "mode": src_mode, "encode": options},
        "format_version": header["format_version"],
        "model_id": header["model_id"],
        "weights_hash": header["weights_hash"],
        "mode": img.mode,
        "size": list(img.size),
        "bytes": len(data),
        "file_sha256": sha256(data),
        "pixels_sha256": sha256(np.asarray(img).tobytes()),
        "y_hat_sha256": y_hat_sha256(data),
        "header": header,
    }


def y_hat_sha256(data: bytes) -> str:
    """sha256 of a file's entropy-decoded latents ŷ (float32, the padded image): the same on every machine."""
    from aecodec.codec.api import decode_latents

    return sha256(np.ascontiguousarray(decode_latents(data), np.float32).tobytes())


def _dumps(doc: dict) -> str:
    """JSON, one field a line, short lists (crop box, size) on one line."""
    text = json.dumps(doc, indent=1, ensure_ascii=False)
    one_line = lambda m: "[" + ", ".join(map(str.strip, m.group(1).split(","))) + "]"  # noqa: E731
    return re.sub(r"\[\s+([^][{}]*?)\s+\]", one_line, text)


def _write_new(path: Path, data: bytes) -> None:
    with open(path, "xb") as f:  # exclusive: never replaces a file, even one that appeared meanwhile
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="Golden files are never rewritten; see this script's docstring.")
    ap.add_argument("--add-missing", action="store_true",
                    help="write only the cases whose file is absent, and add them to the manifest")
    ap.add_argument("--dir", type=Path, default=GOLDEN, help=f"where the files go (default {GOLDEN.relative_to(ROOT)})")
    a = ap.parse_args(argv)
    folder, manifest_path = a.dir, a.dir / MANIFEST
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else None
    recorded = manifest["files"] if manifest else {}
    present = {p.name for p in folder.glob("*.aec")} if folder.is_dir() else set()

    if not a.add_missing and (manifest is not None or present):
        what = sorted(present) + ([MANIFEST] if manifest is not None else [])
        print(f"make_golden: refusing: {folder} already holds {', '.join(what)}.\n"
              "Golden files are history and are never rewritten. To add new cases (a new format version), add "
              "them to CASES and run with --add-missing.", file=sys.stderr)
        return 1
    unrecorded, lost = sorted(present - set(recorded)), sorted(set(recorded) - present)
    if unrecorded or lost:  # the folder and its manifest disagree: a person has to look, not this script
        print("make_golden: refusing: the folder and its manifest disagree"
              + (f"; files not in the manifest: {', '.join(unrecorded)}" if unrecorded else "")
              + (f"; manifest entries without a file: {', '.join(lost)} (restore them from git history)"
                 if lost else ""), file=sys.stderr)
        return 1

    todo = [n for n in CASES if f"{n}.aec" not in present]
    if not todo:
        print(f"make_golden: every case is in {folder} already; nothing written")
        return 0
    folder.mkdir(parents=True, exist_ok=True)
    made = {}
    for name in todo:  # encode every case before writing any, so a failing case writes nothing
        made[f"{name}.aec"] = make(name)
    provenance = _provenance()
    (folder / DECODED).mkdir(exist_ok=True)
    for file, (data, png, entry) in made.items():
        _write_new(folder / file, data)
        _write_new(folder / DECODED / file.replace(".aec", ".png"), png)
        recorded[file] = {**entry, "written_by": provenance}
        print(f"wrote {folder / file}: {entry['bytes']} bytes, format version {entry['format_version']}, "
              f"{entry['mode']} {entry['size'][0]}×{entry['size'][1]}")
    doc = {"about": "Golden .aec files: every later aecodec must decode each to the recorded pixels "
                    "(tests/codec/test_golden.py). Written by scripts/make_golden.py; never rewritten.",
           "files": dict(sorted(recorded.items()))}
    tmp = manifest_path.with_name(f".{MANIFEST}.tmp")
    tmp.write_text(_dumps(doc) + "\n")
    os.replace(tmp, manifest_path)
    print(f"wrote {manifest_path}: {len(recorded)} files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
