"""Encode / decode speed of aecodec: whole commands (start-up included), the API, big photos.

    python -m benchmarks.speed --rss-megapixels 50 --out benchmarks/results/speed.json --page

**Commands** (what a user waits for): ``aecodec encode`` / ``decode`` / ``info`` of kodim23 as
whole processes — interpreter, imports, model load, coding, output file — next to a bare
``python -c "import os, torch; os._exit(0)"`` (the floor no aecodec change can lower; the CLI too
ends without the interpreter's teardown, :func:`aecodec.cli.run`), each --cli-repeat times,
interleaved; minimum and median wall time and the peak resident memory (``/usr/bin/time``'s
maximum resident set size). **API**: kodim23 and a large photo (Kodak images tiled into a mosaic, default
12 MP), wall time and MP/s of encode and decode with the model already loaded, median and minimum
of --repeat runs after a warm-up, on CPU with --threads threads and on CUDA when available. With
``--rss-megapixels 50`` it also runs the CLI on a 50-MP photo under ``/usr/bin/time -v`` and
records the peak resident memory of encode and of decode.

The development machines are virtual: the share of CPU time the host took away while the
benchmark ran ("steal", from /proc/stat) is recorded with the results — minimums are the numbers
least disturbed by it. ``--page [PAGE]`` (default docs/performance.md; ``--readme`` is its old name)
rewrites that page's block between ``<!-- speed:begin -->`` and ``<!-- speed:end -->`` from the
results (:func:`benchmarks.report.speed_markdown`, which ``benchmarks.report`` also uses when weights
are landed).
"""

from __future__ import annotations

import argparse
import json
import os
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
from aecodec.device import cpu_name
from benchmarks.report import SPEED_PAGE, replace_block, speed_markdown


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


def _time(fn, repeat: int) -> tuple[float, float]:
    """Median and minimum wall time of ``fn`` over ``repeat`` runs after a warm-up."""
    fn()  # warm-up: model load, allocator, kernels
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return statistics.median(times), min(times)


def speed(img: np.ndarray, device: str, quality: float, repeat: int, model=None) -> dict:
    data = aecodec.encode(img, quality, device=device, model=model)
    enc, enc_min = _time(lambda: aecodec.encode(img, quality, device=device, model=model), repeat)
    dec, dec_min = _time(lambda: aecodec.decode(data, device=device, model=model), repeat)
    mp = img.shape[0] * img.shape[1] / 1e6
    return {"device": device, "size": f"{img.shape[1]}x{img.shape[0]}", "megapixels": round(mp, 2),
            "bpp": round(8 * len(data) / (mp * 1e6), 4), "encode_s": round(enc, 3), "decode_s": round(dec, 3),
            "encode_min_s": round(enc_min, 3), "decode_min_s": round(dec_min, 3),
            "encode_MPps": round(mp / enc, 2), "decode_MPps": round(mp / dec, 2)}


def _steal() -> tuple[int, int]:
    """(steal, total) CPU time in jiffies so far, from /proc/stat; (0, 0) where there is none."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return 0, 0
    return (fields[7] if len(fields) > 7 else 0), sum(fields[:8])


def _process(argv: list[str], threads: int) -> tuple[float, float]:
    """Wall time (s) and peak resident memory (MB) of one process, run under ``/usr/bin/time``: a
    child forked from this process (torch loaded) would report at least this process's RSS."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    t = time.perf_counter()
    r = subprocess.run(["/usr/bin/time", "-f", "maxrss_kB %M", *argv], stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, text=True, env=env)
    wall = time.perf_counter() - t
    if r.returncode:
        raise RuntimeError(f"{' '.join(argv)} failed: {r.stderr[-2000:]}")
    return wall, int(re.findall(r"maxrss_kB (\d+)", r.stderr)[-1]) / 1024


def commands(image: Path, quality: float, repeat: int, threads: int) -> dict:
    """Whole ``aecodec`` processes on ``image`` (start-up included) and a bare ``import torch``,
    interleaved ``repeat`` times: minimum and median wall time, peak RSS."""
    with tempfile.TemporaryDirectory() as d:
        aec, png = str(Path(d) / "x.aec"), str(Path(d) / "x.png")
        cli = [sys.executable, "-m", "aecodec"]
        # The floor: start Python, import torch, end the process the way the CLI does (os._exit,
        # no interpreter teardown — which alone takes ~0.8 s with torch loaded).
        runs = {"import torch": [sys.executable, "-c", "import os, torch; os._exit(0)"],
                "encode": [*cli, "encode", str(image), "-o", aec, "-q", str(quality), "--force", "--quiet"],
                "decode": [*cli, "decode", aec, "-o", png, "--force", "--quiet"],
                "info": [*cli, "info", aec]}
        times: dict[str, list] = {k: [] for k in runs}
        _process(runs["encode"], threads)  # warm the page cache; makes the file decode and info read
        for _ in range(repeat):
            for name, argv in runs.items():
                times[name].append(_process(argv, threads))
    return {name: {"min_s": round(min(w for w, _ in t), 2), "median_s": round(statistics.median(w for w, _ in t), 2),
                   "peak_rss_MB": round(max(m for _, m in t))} for name, t in times.items()}


def peak_rss(img: np.ndarray, quality: float, threads: int) -> dict:
    with tempfile.TemporaryDirectory() as d:
        src, aec, out = Path(d) / "big.png", Path(d) / "big.aec", Path(d) / "big.out.png"
        Image.fromarray(img).save(src, compress_level=1)
        res = {}
        for name, args in (("encode", ["encode", str(src), "-o", str(aec), "-q", str(quality), "--device", "cpu"]),
                           ("decode", ["decode", str(aec), "-o", str(out), "--device", "cpu"])):
            wall, mb = _process([sys.executable, "-m", "aecodec", *args], threads)
            res[f"{name}_peak_rss_MB"] = round(mb)
            res[f"{name}_wall_s"] = round(wall, 1)
        res["file_bytes"] = aec.stat().st_size
    return {"size": f"{img.shape[1]}x{img.shape[0]}", "megapixels": round(img.size / 3e6, 1),
            "tool": "/usr/bin/time (maximum resident set size)", **res}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kodak", type=Path, default=Path("../shared/datasets/kodak"))
    ap.add_argument("--quality", type=float, default=75)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--large-megapixels", type=float, default=12)
    ap.add_argument("--rss-megapixels", type=float, default=0, help="also measure peak RSS on a photo this big")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--cli-repeat", type=int, default=7, help="runs of each whole command (0: skip them)")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--page", "--readme", type=Path, nargs="?", const=SPEED_PAGE, metavar="PAGE",
                    help=f"rewrite this page's speed block from the results (no value: {SPEED_PAGE})")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    if a.page and not a.out:
        ap.error("--page needs --out (the page links to the results file)")
    steal0 = _steal()
    result = {"date": str(date.today()),
              "command": " ".join(["python -m benchmarks.speed", *(argv if argv is not None else sys.argv[1:])])}
    if a.cli_repeat:
        result["commands"] = {"image": "kodim23.png (768x512)", "repeat": a.cli_repeat,
                              **commands(a.kodak / "kodim23.png", a.quality, a.cli_repeat, a.threads)}
        print(json.dumps(result["commands"]), flush=True)
    kodim = load_rgb(a.kodak / "kodim23.png")
    large = mosaic(a.kodak, a.large_megapixels)
    rows = []
    for device in ["cpu"] + (["cuda"] if torch.cuda.is_available() else []):
        for img, rep in ((kodim, a.repeat), (large, max(1, a.repeat // 3))):
            rows.append(speed(img, device, a.quality, rep))
            print(json.dumps(rows[-1]), flush=True)
    result.update({"machine": {"cpu": cpu_name(), "threads": a.threads, "torch": torch.__version__,
                               "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None},
                   "quality": a.quality, "speed": rows})
    if a.rss_megapixels:
        result["peak_memory"] = peak_rss(mosaic(a.kodak, a.rss_megapixels, seed=1), a.quality, a.threads)
        print(json.dumps(result["peak_memory"]), flush=True)
    steal1 = _steal()
    if steal1[1] > steal0[1]:
        result["machine"]["steal_percent"] = round(100 * (steal1[0] - steal0[0]) / (steal1[1] - steal0[1]), 1)
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(result, indent=1))
    if a.page:  # the block links to the results file: benchmarks.report renders it (as on landing)
        a.page.write_text(replace_block(a.page.read_text(), "speed", speed_markdown(result, a.out, a.page.parent)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
