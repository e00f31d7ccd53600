"""Encode / decode speed of aecodec: whole commands (start-up included), the API, big photos,
the runtime install's size, and the classical codecs beside it.

    python -m benchmarks.speed --runtime-venv /tmp/rt --baseline /tmp/aecodec-0.1 --rss-megapixels 50 \
        --out benchmarks/results/speed.json --page

**Commands** (what a user waits for): ``aecodec encode`` / ``decode`` / ``info`` of kodim23 as
whole processes — interpreter, imports, model load, coding, output file — run by the runtime
install (``--runtime-venv``: a venv with only ``pip install aecodec``, no torch; default: this
interpreter), next to a bare ``python -c "import os, numpy, onnxruntime; os._exit(0)"`` (the
runtime's floor: what no aecodec change can lower) and, with ``--baseline DIR`` (a checkout of an
earlier aecodec, run with this interpreter), that version's encode and decode — each --cli-repeat
times, interleaved; minimum and median wall time and the peak resident memory (``/usr/bin/time``'s
maximum resident set size). **API**: kodim23 and a large photo (Kodak images tiled into a mosaic,
default 12 MP), wall time and MP/s of encode and decode with the model already loaded, median and
minimum of --repeat runs after a warm-up: the runtime (onnxruntime transforms) and the same codec
with the torch model's transforms (the shipped ``.pt``), on CPU with --threads threads. **Classical
codecs**: JPEG, WebP and AVIF of kodim23 through Pillow, the same way. With ``--rss-megapixels 50``
it also runs the runtime's CLI on a 50-MP photo and records the peak resident memory of encode and
of decode. The runtime venv's size is recorded, with its largest packages.

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
from PIL import Image

import aecodec
from aecodec.codec.images import image_files, load_rgb
from aecodec.device import cpu_name
from aecodec.models.zoo import DEFAULT_MODEL_ID, SHIPPED_DIR
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
        times.append(time.perf_counter() - t)
    return statistics.median(times), min(times)


def speed(img: np.ndarray, device: str, quality: float, repeat: int, model=None) -> dict:
    """Encode and decode of ``img`` through the API on ``device``, with ``model`` (default: the
    shipped runtime bundle, onnxruntime; a ``.pt`` checkpoint: its torch model's transforms)."""
    data = aecodec.encode(img, quality, device=device, model=model)
    enc, enc_min = _time(lambda: aecodec.encode(img, quality, device=device, model=model), repeat)
    dec, dec_min = _time(lambda: aecodec.decode(data, device=device, model=model), repeat)
    mp = img.shape[0] * img.shape[1] / 1e6
    engine = "torch" if str(model).endswith(".pt") else "onnxruntime"
    return {"engine": engine, "device": device, "size": f"{img.shape[1]}x{img.shape[0]}", "megapixels": round(mp, 2),
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


def _process(argv: list[str], threads: int, extra_env: dict | None = None, cwd=None) -> tuple[float, float]:
    """Wall time (s) and peak resident memory (MB) of one process, run under ``/usr/bin/time``: a
    child forked from this process would report at least this process's RSS. ``cwd``: where it runs
    (``python -m`` puts it first on the import path: never a checkout, whose aecodec would win)."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), **(extra_env or {})}
    t = time.perf_counter()
    r = subprocess.run(["/usr/bin/time", "-f", "maxrss_kB %M", *argv], stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, text=True, env=env, cwd=cwd)
    wall = time.perf_counter() - t
    if r.returncode:
        raise RuntimeError(f"{' '.join(argv)} failed: {r.stderr[-2000:]}")
    return wall, int(re.findall(r"maxrss_kB (\d+)", r.stderr)[-1]) / 1024


def commands(image: Path, quality: float, repeat: int, threads: int, runtime: str,
             baseline: Path | None) -> dict:
    """Whole ``aecodec`` processes on ``image`` (start-up included) run by the ``runtime``
    interpreter, its floor, and an earlier aecodec's (``baseline`` checkout, this interpreter),
    interleaved ``repeat`` times: minimum and median wall time, peak RSS."""
    with tempfile.TemporaryDirectory() as d:
        aec, png, old, old_png = (str(Path(d) / n) for n in ("x.aec", "x.png", "old.aec", "old.png"))
        cli = [runtime, "-m", "aecodec"]
        # The floor: start Python, import what the runtime needs, end the process the way the CLI
        # does (os._exit, no interpreter teardown).
        runs = {"floor": [runtime, "-c", "import os, numpy, onnxruntime; os._exit(0)"],
                "encode": [*cli, "encode", str(image), "-o", aec, "-q", str(quality), "--force", "--quiet"],
                "decode": [*cli, "decode", aec, "-o", png, "--force", "--quiet"],
                "info": [*cli, "info", aec]}
        env = {}
        if baseline is not None:
            old_cli = [sys.executable, "-m", "aecodec"]
            runs["baseline encode"] = [*old_cli, "encode", str(image), "-o", old, "-q", str(quality), "--force",
                                       "--quiet"]
            runs["baseline decode"] = [*old_cli, "decode", old, "-o", old_png, "--force", "--quiet"]
            env = {name: {"PYTHONPATH": str(baseline)} for name in runs if name.startswith("baseline")}
        times: dict[str, list] = {k: [] for k in runs}
        for name in ("encode", "baseline encode"):  # warm the page cache; makes the files decode and info read
            if name in runs:
                _process(runs[name], threads, env.get(name), cwd=d)
        for _ in range(repeat):
            for name, argv in runs.items():
                times[name].append(_process(argv, threads, env.get(name), cwd=d))
    return {name: {"min_s": round(min(w for w, _ in t), 2), "median_s": round(statistics.median(w for w, _ in t), 2),
                   "peak_rss_MB": round(max(m for _, m in t))} for name, t in times.items()}


def classical(img: np.ndarray, repeat: int) -> list[dict]:
    """JPEG, WebP and AVIF of ``img`` through Pillow, in this process: encode and decode time
    (median / minimum of ``repeat`` runs after a warm-up) and bpp."""
    import io

    im = Image.fromarray(img)
    rows = []
    for name, fmt, options in (("JPEG q 90 (4:2:0)", "JPEG", {"quality": 90}), ("WebP q 90", "WEBP", {"quality": 90}),
                               ("AVIF q 75, speed 6", "AVIF", {"quality": 75, "speed": 6})):
        def encode():
            buf = io.BytesIO()
            im.save(buf, fmt, **options)
            return buf.getvalue()

        def decode():
            with Image.open(io.BytesIO(data)) as out:
                out.load()

        data = encode()
        enc, enc_min = _time(encode, repeat)
        dec, dec_min = _time(decode, repeat)
        rows.append({"codec": name, "bpp": round(8 * len(data) / (img.shape[0] * img.shape[1]), 4),
                     "encode_s": round(enc, 4), "encode_min_s": round(enc_min, 4),
                     "decode_s": round(dec, 4), "decode_min_s": round(dec_min, 4)})
    return rows


def venv_size(venv: Path) -> dict:
    """The runtime venv's size on disk (MB) and its largest packages: what ``pip install aecodec`` costs."""
    def mb(path: Path) -> float:
        out = subprocess.run(["du", "-sk", str(path)], capture_output=True, text=True, check=True).stdout
        return round(int(out.split()[0]) / 1024, 1)

    site = next(venv.glob("lib/python3*/site-packages"))
    sizes = sorted(((p.name, mb(p)) for p in site.iterdir() if p.is_dir() and not p.name.endswith("-info")),
                   key=lambda x: -x[1])
    return {"venv_MB": mb(venv), "site_packages_MB": mb(site), "largest": dict(sizes[:8])}


def peak_rss(img: np.ndarray, quality: float, threads: int, runtime: str) -> dict:
    with tempfile.TemporaryDirectory() as d:
        src, aec, out = Path(d) / "big.png", Path(d) / "big.aec", Path(d) / "big.out.png"
        Image.fromarray(img).save(src, compress_level=1)
        res = {}
        for name, args in (("encode", ["encode", str(src), "-o", str(aec), "-q", str(quality), "--device", "cpu"]),
                           ("decode", ["decode", str(aec), "-o", str(out), "--device", "cpu"])):
            wall, mb = _process([runtime, "-m", "aecodec", *args], threads, cwd=d)
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
    ap.add_argument("--runtime-venv", type=Path, help="a venv with only `pip install aecodec` (no torch): its CLI "
                    "is timed and its size recorded (default: this interpreter's)")
    ap.add_argument("--baseline", type=Path, help="a checkout of an earlier aecodec whose CLI is timed beside")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--page", "--readme", type=Path, nargs="?", const=SPEED_PAGE, metavar="PAGE",
                    help=f"rewrite this page's speed block from the results (no value: {SPEED_PAGE})")
    a = ap.parse_args(argv)
    if a.page and not a.out:
        ap.error("--page needs --out (the page links to the results file)")
    runtime = str(a.runtime_venv / "bin" / "python") if a.runtime_venv else sys.executable
    steal0 = _steal()
    result = {"date": str(date.today()),
              "command": " ".join(["python -m benchmarks.speed", *(argv if argv is not None else sys.argv[1:])])}
    if a.runtime_venv:
        result["runtime_install"] = venv_size(a.runtime_venv)
        print(json.dumps(result["runtime_install"]), flush=True)
    if a.cli_repeat:
        result["commands"] = {"image": "kodim23.png (768x512)", "repeat": a.cli_repeat,
                              "runtime": "runtime venv (no torch)" if a.runtime_venv else sys.executable,
                              **({"baseline": str(a.baseline)} if a.baseline else {}),
                              **commands(a.kodak / "kodim23.png", a.quality, a.cli_repeat, a.threads, runtime,
                                         a.baseline)}
        print(json.dumps(result["commands"]), flush=True)
    os.environ["OMP_NUM_THREADS"] = str(a.threads)
    kodim = load_rgb(a.kodak / "kodim23.png")
    large = mosaic(a.kodak, a.large_megapixels)
    rows = []
    torch_weights = SHIPPED_DIR / f"{DEFAULT_MODEL_ID}.pt"  # the same weights, the torch model's transforms
    for model in (None, torch_weights):
        for img, rep in ((kodim, a.repeat), (large, max(1, a.repeat // 3))):
            rows.append(speed(img, "cpu", a.quality, rep, model))
            print(json.dumps(rows[-1]), flush=True)
    result["classical"] = classical(kodim, a.repeat)
    print(json.dumps(result["classical"]), flush=True)
    versions = {}
    for name in ("onnxruntime", "torch", "numpy", "pillow"):
        try:
            from importlib.metadata import version
            versions[name] = version(name)
        except Exception:
            versions[name] = None
    result.update({"machine": {"cpu": cpu_name(), "threads": a.threads, **versions},
                   "quality": a.quality, "speed": rows})
    if a.rss_megapixels:
        result["peak_memory"] = peak_rss(mosaic(a.kodak, a.rss_megapixels, seed=1), a.quality, a.threads, runtime)
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
