"""Hashes of what the codec writes and reads back, for a fixed set of inputs: a refactoring must
leave them unchanged (same weights, same machine).

    python scripts/output_hashes.py before.json            # on the old code
    python scripts/output_hashes.py after.json --compare before.json

Cases: three Kodak photos at qualities 0 / 37.5 / 75 / 100, 256-pixel tiles, --target-size,
--target-bpp, small gray, RGBA, gray+alpha, 16-bit and 5×3 images, a folded strip, and effort 3
(with and without a target). For each: the sha256 of
the .aec bytes, their length, and the decoded image's mode, size and pixel sha256.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

import aecodec


def _h(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()[:16]


def cases(kodak: Path) -> list[tuple[str, object, dict]]:
    out = []
    for name in ("kodim23", "kodim07", "kodim19"):
        for q in (0, 37.5, 75, 100):
            out.append((f"{name}-q{q}", kodak / f"{name}.png", {"quality": q}))
    out += [("k23-tile256", kodak / "kodim23.png", {"quality": 60, "tile": 256}),
            ("k07-target", kodak / "kodim07.png", {"target_size": 20000}),
            ("k19-bpp", kodak / "kodim19.png", {"target_bpp": 0.5})]
    im = Image.open(kodak / "kodim01.png")
    out.append(("gray", im.convert("L").crop((0, 0, 300, 217)), {"quality": 50}))
    a = np.asarray(im.crop((5, 5, 133, 99))).copy()
    ramp = (np.arange(a.shape[1])[None, :] * 2 % 256).repeat(a.shape[0], 0).astype(np.uint8)
    rgba = np.dstack([a, ramp])
    out.append(("rgba", Image.fromarray(rgba, "RGBA"), {"quality": 80}))
    out.append(("la", Image.fromarray(rgba[..., [0, 3]], "LA"), {"quality": 20}))
    gray16 = np.asarray(im.convert("L"))[:100, :90].astype(np.uint16) * 257
    out.append(("i16", Image.fromarray(gray16).convert("I;16"), {"quality": 40}))
    tiny = np.random.default_rng(0).integers(0, 256, (3, 5, 3), dtype=np.uint8)
    out.append(("tiny", Image.fromarray(tiny), {"quality": 90}))
    strip = np.asarray(im)[200:232, :].copy()  # 768×32: coded folded (format version 2)
    out.append(("strip", Image.fromarray(np.tile(strip, (1, 3, 1))), {"quality": 55}))
    out.append(("effort3", im.crop((100, 100, 292, 228)), {"quality": 60, "effort": 3}))
    out.append(("effort3-target", im.crop((300, 200, 428, 328)), {"target_size": 1500, "effort": 3}))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--kodak", type=Path, default=Path("../shared/datasets/kodak"))
    ap.add_argument("--compare", type=Path, help="an earlier output: exit 1 unless every case is identical")
    a = ap.parse_args(argv)
    result = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for key, src, kw in cases(a.kodak):
            data = aecodec.encode(src, **kw)
            img = aecodec.decode(data)
            result[key] = [_h(data), len(data), img.mode, list(img.size), _h(np.asarray(img).tobytes())]
            print(key, result[key], flush=True)
    a.out.write_text(json.dumps(result, indent=1))
    if a.compare:
        old = json.loads(a.compare.read_text())
        differ = [k for k in old if old[k] != result.get(k)]
        print(f"{len(old) - len(differ)}/{len(old)} cases identical" + (f"; differ: {differ}" if differ else ""))
        return 1 if differ else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
