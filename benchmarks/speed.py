"""Encode / decode speed of aecodec, and peak memory on a large photo.

    python -m benchmarks.speed --out benchmarks/results/speed.json

For a Kodak image (768×512) and a large photo (Kodak images tiled into a mosaic, default 12 MP)
it reports wall time and MP/s of encode and decode through the public API, median of --repeat
runs after a warm-up, on CPU with --threads threads and on CUDA when available. With
``--rss-megapixels 50`` it also runs the CLI on a 50-MP photo in a subprocess under
``/usr/bin/time -v`` and records the peak resident memory of encode and of decode.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import aecodec
from aecodec.codec.images import image_files, load_rgb


def mosaic(kodak: Path, megapixels: float, seed: int = 0) -> np.ndarray:
    """A photo of about ``megapixels`` MP: Kodak images tiled (and mirrored) side by side (tiles of
    the first image's landscape size; other sizes are resized to it)."""
    files = image_files([kodak])
    rng = np.random.default_rng(seed)
    th, tw = sorted(load_rgb(files[0]).shape[:2])  # landscape tile: (short, long)
    side = int((megapixels * 1e6 * 1.5) ** 0.5)  # 3:2
    w, h = side, int(megapixels * 1e6 / side)
    out = np.empty((h, w, 3), np.uint8)
    for y in range(0, h, th):
        for x in range(0, w, tw):
            im = Image.fromarray(load_rgb(files[rng.integers(len(files))]))
            if im.height > im.width:
                im = im.transpose(Image.Transpose.ROTATE_90)
            if im.size != (tw, th):
                im = im.resize((tw, th), Image.BICUBIC)
            im = np.asarray(im)
            if rng.random() < 0.5:
                im = im[:, ::-1]
            out[y:y + th, x:x + tw] = im[: h - y, : w - x]
    return out


def _time(fn, repeat: int) -> float:
    fn()  # warm-up: model load, allocator, kernels
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def speed(img: np.ndarray, device: str, quality: float, repeat: int, model=None) -> dict:
    data = aecodec.encode(img, quality, device=device, model=model)
    enc = _time(lambda: aecodec.encode(img, quality, device=device, model=model), repeat)
    dec = _time(lambda: aecodec.decode(data, device=device, model=model), repeat)
    mp = img.shape[0] * img.shape[1] / 1e6
    return {"device": device, "size": f"{img.shape[1]}x{img.shape[0]}", "megapixels": round(mp, 2),
            "bpp": round(8 * len(data) / (mp * 1e6), 4), "encode_s": round(enc, 3), "decode_s": round(dec, 3),
            "encode_MPps": round(mp / enc, 2), "decode_MPps": round(mp / dec, 2)}


def peak_rss(img: np.ndarray, quality: float, threads: int) -> dict:
    with tempfile.TemporaryDirectory() as d:
        src, aec, out = Path(d) / "big.png", Path(d) / "big.aec", Path(d) / "big.out.png"
        Image.fromarray(img).save(src, compress_level=1)
        res = {}
        for name, args in (("encode", ["encode", str(src), "-o", str(aec), "-q", str(quality), "--device", "cpu"]),
                           ("decode", ["decode", str(aec), "-o", str(out), "--device", "cpu"])):
            t = time.perf_counter()
            r = subprocess.run(["/usr/bin/time", "-v", sys.executable, "-m", "aecodec", *args],
                               capture_output=True, text=True,
                               env={"OMP_NUM_THREADS": str(threads), "PATH": "/usr/bin:/bin"})
            if r.returncode:
                raise RuntimeError(r.stderr[-2000:])
            kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", r.stderr).group(1))
            res[f"{name}_peak_rss_MB"] = round(kb / 1024)
            res[f"{name}_wall_s"] = round(time.perf_counter() - t, 1)
        res["file_bytes"] = aec.stat().st_size
    return {"size": f"{img.shape[1]}x{img.shape[0]}", "megapixels": round(img.size / 3e6, 1),
            "tool": "/usr/bin/time -v (Maximum resident set size)", **res}


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kodak", type=Path, default=Path("../shared/datasets/kodak"))
    ap.add_argument("--quality", type=float, default=75)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--large-megapixels", type=float, default=12)
    ap.add_argument("--rss-megapixels", type=float, default=0, help="also measure peak RSS on a photo this big")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--out", type=Path)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    kodim = load_rgb(a.kodak / "kodim23.png")
    large = mosaic(a.kodak, a.large_megapixels)
    rows = []
    for device in ["cpu"] + (["cuda"] if torch.cuda.is_available() else []):
        for img, rep in ((kodim, a.repeat), (large, max(1, a.repeat // 3))):
            rows.append(speed(img, device, a.quality, rep))
            print(json.dumps(rows[-1]), flush=True)
    result = {"date": str(date.today()), "machine": {"cpu": _cpu_name(),
              "threads": a.threads, "torch": torch.__version__,
              "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None},
              "quality": a.quality, "speed": rows}
    if a.rss_megapixels:
        result["peak_memory"] = peak_rss(mosaic(a.kodak, a.rss_megapixels, seed=1), a.quality, a.threads)
        print(json.dumps(result["peak_memory"]), flush=True)
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
