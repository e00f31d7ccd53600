"""Cross-device decoding check: encode on one device, decode on another.

    python -m benchmarks.portability --dataset ../shared/datasets/kodak --encode-device cuda --decode-device cpu
    python -m benchmarks.portability --encode-device cpu --decode-device cuda

For every image: the latents ŷ decoded on the decoding device must equal, bit for bit, those
decoded on the encoding device, and the pixels may differ by at most one level. Prints a summary
and exits non-zero on any failure. (Both devices may be "cpu" with different thread counts:
``--encode-threads 1 --decode-threads 2``.)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import aecodec
from aecodec.codec.api import decode_latents


def _on(device: str, threads: int | None, fn):
    old = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        return fn(device)
    finally:
        torch.set_num_threads(old)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", type=Path, default=Path("../shared/datasets/kodak"))
    ap.add_argument("--encode-device", default="cuda")
    ap.add_argument("--decode-device", default="cpu")
    ap.add_argument("--encode-threads", type=int)
    ap.add_argument("--decode-threads", type=int)
    ap.add_argument("--quality", type=float, nargs="+", default=[25.0, 75.0])
    ap.add_argument("--json", type=Path, help="write the per-image results here")
    a = ap.parse_args(argv)

    files = sorted(p for p in a.dataset.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    rows, ok = [], 0
    for q in a.quality:
        for f in files:
            img = Image.open(f)
            data = _on(a.encode_device, a.encode_threads, lambda d: aecodec.encode(img, q, device=d))
            y_enc = _on(a.encode_device, a.encode_threads, lambda d: decode_latents(data, device=d).cpu())
            y_dec = _on(a.decode_device, a.decode_threads, lambda d: decode_latents(data, device=d).cpu())
            p_enc = np.asarray(_on(a.encode_device, a.encode_threads, lambda d: aecodec.decode(data, device=d)))
            p_dec = np.asarray(_on(a.decode_device, a.decode_threads, lambda d: aecodec.decode(data, device=d)))
            same = bool(torch.equal(y_enc, y_dec))
            diff = int(np.abs(p_enc.astype(int) - p_dec.astype(int)).max())
            good = same and diff <= 1
            ok += good
            rows.append({"image": f.name, "quality": q, "bytes": len(data), "latents_identical": same,
                         "max_pixel_diff": diff, "ok": good})
            print(f"{f.name} q{q:g}: latents {'identical' if same else 'DIFFER'}, max pixel diff {diff}")
    print(f"\n{a.encode_device} -> {a.decode_device}: {ok}/{len(rows)} decoded correctly "
          f"(identical latents, pixels within 1 level)")
    if a.json:
        a.json.write_text(json.dumps(rows, indent=1))
    return 0 if ok == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
