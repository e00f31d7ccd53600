"""Cross-device decoding check: encode on one device, decode on another.

    python -m benchmarks.portability --dataset ../shared/datasets/kodak --encode-device cuda --decode-device cpu
    python -m benchmarks.portability --encode-device cpu --decode-device cuda

(The GPU job, scripts/device_job.py, runs :func:`check` both ways on the trained weights.)

For every image: the latents ŷ decoded on the decoding device must equal, bit for bit, those
decoded on the encoding device, and the pixels may differ by at most one level. Prints a summary
and exits non-zero on any failure. (Both devices may be "cpu" with different thread counts:
``--encode-threads 1 --decode-threads 2``.)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

import aecodec
from aecodec.codec.api import decode_latents
from aecodec.codec.images import image_files, load_rgb
from aecodec.metrics import psnr


def _on(device: str, threads: int | None, fn):
    old = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        return fn(device)
    finally:
        torch.set_num_threads(old)


def check(files: list[Path], encode_device: str, decode_device: str, qualities=(25.0, 75.0), *,
          model=None, encode_threads: int | None = None, decode_threads: int | None = None,
          stop_at: float | None = None, log=print) -> dict:
    """Encode each image on ``encode_device``, decode on both devices; compare latents and pixels.

    Also the rate and PSNR of each file against the image read. ``stop_at`` (``time.time()``):
    images left when that time comes are not checked, and the result says how many were."""
    rows, ok = [], 0
    for q in qualities:
        for f in files:
            if stop_at is not None and time.time() >= stop_at:
                break
            rgb = load_rgb(f)
            data = _on(encode_device, encode_threads, lambda d: aecodec.encode(rgb, q, device=d, model=model))
            y_enc = _on(encode_device, encode_threads, lambda d: decode_latents(data, device=d, model=model))
            y_dec = _on(decode_device, decode_threads, lambda d: decode_latents(data, device=d, model=model))
            p_enc = np.asarray(_on(encode_device, encode_threads, lambda d: aecodec.decode(data, device=d, model=model)))
            p_dec = np.asarray(_on(decode_device, decode_threads, lambda d: aecodec.decode(data, device=d, model=model)))
            same = bool(np.array_equal(y_enc, y_dec))
            diff = int(np.abs(p_enc.astype(int) - p_dec.astype(int)).max())
            good = same and diff <= 1
            ok += good
            rows.append({"image": f.name, "quality": q, "bytes": len(data), "latents_identical": same,
                         "max_pixel_diff": diff, "ok": good, "bpp": 8 * len(data) / (rgb.shape[0] * rgb.shape[1]),
                         "psnr": psnr(rgb, p_dec)})
            log(f"{f.name} q{q:g}: latents {'identical' if same else 'DIFFER'}, max pixel diff {diff}")
    planned = len(files) * len(qualities)
    log(f"{encode_device} -> {decode_device}: {ok}/{len(rows)} decoded correctly "
        f"(identical latents, pixels within 1 level)" + (f"; {planned - len(rows)} not checked (time)" if len(rows) < planned else ""))
    return {"encode_device": encode_device, "decode_device": decode_device, "qualities": list(qualities),
            "planned": planned, "checked": len(rows), "correct": ok,
            "latents_identical": sum(r["latents_identical"] for r in rows),
            "max_pixel_diff": max((r["max_pixel_diff"] for r in rows), default=None), "images": rows}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", type=Path, default=Path("../shared/datasets/kodak"))
    ap.add_argument("--encode-device", default="cuda")
    ap.add_argument("--decode-device", default="cpu")
    ap.add_argument("--encode-threads", type=int)
    ap.add_argument("--decode-threads", type=int)
    ap.add_argument("--quality", type=float, nargs="+", default=[25.0, 75.0])
    ap.add_argument("--model", help="weights file or model id (default: the shipped weights)")
    ap.add_argument("--json", type=Path, help="write the per-image results here")
    a = ap.parse_args(argv)

    files = image_files([a.dataset])
    res = check(files, a.encode_device, a.decode_device, a.quality, model=a.model,
                encode_threads=a.encode_threads, decode_threads=a.decode_threads)
    if a.json:
        a.json.write_text(json.dumps(res["images"], indent=1))
    return 0 if res["correct"] == res["checked"] == res["planned"] else 1


if __name__ == "__main__":
    sys.exit(main())
