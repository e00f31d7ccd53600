"""Rate-distortion benchmark: aecodec against classical codecs on a folder of images.

    python -m benchmarks.rd --dataset ../shared/datasets/kodak --out benchmarks/results/kodak

Each (image, codec) pair is one job in a process pool (one single-threaded worker per core). A job
sweeps the codec's qualities and records, per point, bpp from the real bytes, PSNR, SSIM, MS-SSIM,
encode/decode wall time and peak memory. The run writes <out>/results.json, <out>/rd.png (PSNR, SSIM
and MS-SSIM(dB) against bpp) and <out>/bdrate.md (BD-rates on the mean curves), then checks that the
results are sane and exits 1 if a codec failed or a check did not hold.
"""

from __future__ import annotations

import argparse
import ctypes
import importlib.metadata
import json
import math
import multiprocessing
import os
import platform
import subprocess
import sys
import time
import traceback
import warnings
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from PIL import Image

from aecodec.codec.format import Layout
from aecodec.codec.images import image_files, prepare_image, to_image
from aecodec.device import cpu_name
from aecodec.metrics import MS_SSIM_MIN_SIDE, image_metrics, ms_ssim_db
from benchmarks.bdrate import bd_rate
from benchmarks.codecs import CLASSICAL, CODECS, EFFORT_CODECS, EFFORT_QUALITIES, CodecUnavailable, get_codec

METRICS = (("psnr", "PSNR"), ("ssim", "SSIM"), ("ms_ssim_db", "MS-SSIM (dB)"))
PUBLISHED_SOURCE = "CompressAI results/image/kodak (InterDigitalInc/CompressAI, commit 869a9f5)"
SLOW_FIRST = ("aecodec", "heic", "avif", "jxl", "jpeg2000", "pca-8x8", "webp", "jpeg-444", "jpeg-420")
QUICK_IMAGES, QUICK_POINTS = 2, 3
PSNR_SANE = (15.0, 60.0)


# ----------------------------------------------------------------------------- images

def _image_info(path: Path) -> dict:
    im = load_image(path)
    return {"name": path.name, "width": im.width, "height": im.height, "mode": im.mode}


def list_images(folder: Path) -> list[Path]:
    return image_files([folder])


def load_image(path) -> Image.Image:
    """The image as the codec reads it (:func:`aecodec.codec.images.prepare_image`: EXIF
    orientation applied, 16-bit and float converted to 8-bit), as "RGB" or "L", with every
    metadata chunk (ICC profile, EXIF) dropped, so no encoder spends bytes on it. Alpha is discarded."""
    with warnings.catch_warnings():  # 16-bit to 8-bit is this function's documented job
        warnings.simplefilter("ignore", UserWarning)
        rgb, _, layout = prepare_image(path)
    return to_image(rgb, None, Layout.GRAY if layout in Layout.GRAYS else Layout.RGB)


# ----------------------------------------------------------------------------- one job (in a worker)

def _proc_status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(f"{field} not in /proc/self/status")


def _malloc_trim() -> None:
    """Give freed heap pages back to the OS (glibc), so that reuse of memory freed by an earlier
    step cannot hide a new allocation from the resident-set high-water mark."""
    global _LIBC
    if _LIBC is None:
        try:
            _LIBC = ctypes.CDLL("libc.so.6")
            _LIBC.malloc_trim
        except (OSError, AttributeError):
            _LIBC = False
    if _LIBC:
        _LIBC.malloc_trim(0)


_LIBC = None


class PeakMemory:
    """Peak memory of the process during a block.

    Linux: the resident-set high-water mark (VmHWM, reset through /proc/self/clear_refs after
    glibc's malloc_trim), so memory taken by C libraries counts; `peak_mb` is VmHWM minus the RSS at
    entry, `peak_rss_mb` the absolute VmHWM. Elsewhere: tracemalloc's peak (Python allocations only),
    with `peak_rss_mb` None.
    """

    def __enter__(self):
        try:
            _malloc_trim()
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            self.method, self.base = "rss", _proc_status_kib("VmRSS")
        except OSError:
            import tracemalloc

            self.method = "tracemalloc"
            tracemalloc.start()
        return self

    def __exit__(self, *exc):
        if self.method == "rss":
            hwm = _proc_status_kib("VmHWM")
            self.peak_mb, self.peak_rss_mb = (hwm - self.base) / 1024, hwm / 1024
        else:
            import tracemalloc

            self.peak_mb, self.peak_rss_mb = tracemalloc.get_traced_memory()[1] / 2**20, None
            tracemalloc.stop()
        return False


def _init_worker(threads: int = 1) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:
        pass


def run_job(job: tuple[str, str, list]) -> dict:
    """Sweep one codec over one image; never raises (errors are returned as status "error")."""
    path, codec_name, qualities = job
    wall0, cpu0 = time.perf_counter(), time.process_time()
    out = {"image": Path(path).name, "codec": codec_name, "status": "ok", "reason": None, "points": []}
    try:
        codec = get_codec(codec_name)
        codec.check()
        image = load_image(path)
        for q in qualities:
            with PeakMemory() as mem:
                r = codec.run(image, q)
            out["points"].append({
                "quality": q, "bytes": r.num_bytes, "bpp": r.bpp,
                **image_metrics(image, r.reconstruction),
                "encode_s": r.encode_s, "decode_s": r.decode_s,
                "peak_mem_mb": mem.peak_mb, "peak_rss_mb": mem.peak_rss_mb, "mem_method": mem.method,
            })
    except CodecUnavailable as e:
        out.update(status="skipped", reason=str(e), points=[])
    except Exception:
        out.update(status="error", reason=traceback.format_exc(limit=6), points=[])
    out["wall_s"], out["cpu_s"] = time.perf_counter() - wall0, time.process_time() - cpu0
    return out


def run_jobs(jobs: list, workers: int, progress: bool = True, threads: int = 1) -> list[dict]:
    from tqdm import tqdm

    bar = tqdm(total=len(jobs), desc="rd", unit="job", disable=not progress, mininterval=1.0, file=sys.stderr)
    results = []
    if workers <= 1:
        _init_worker(threads)
        for job in jobs:
            results.append(run_job(job))
            bar.update()
    else:
        # spawn, not fork: the parent may already hold torch / OpenMP threads.
        with multiprocessing.get_context("spawn").Pool(workers, initializer=_init_worker, initargs=(threads,)) as pool:
            for res in pool.imap_unordered(run_job, jobs, chunksize=1):
                results.append(res)
                bar.set_postfix_str(f"{res['codec']} {res['image']}", refresh=False)
                bar.update()
    bar.close()
    return results


# ----------------------------------------------------------------------------- aggregation

def _finite(v) -> bool:
    return v is not None and math.isfinite(v)


def _mean(values):
    """Mean of the available values; inf if any is inf (e.g. a lossless PSNR); None if none."""
    vals = [v for v in values if v is not None and not math.isnan(v)]
    return float(np.mean(vals)) if vals else None


def mean_curve(per_image: dict[str, list[dict]]) -> list[dict]:
    """Average every measure per quality point over images. PSNR and SSIM are means of per-image
    values; MS-SSIM(dB) is the dB value of the mean MS-SSIM (as in CompressAI's published curves)."""
    curves = list(per_image.values())
    curve = []
    for i, first in enumerate(curves[0]):
        pts = [c[i] for c in curves]
        m = {"quality": first["quality"], "n_images": len(pts)}
        for key in ("bpp", "psnr", "ssim", "ms_ssim", "encode_s", "decode_s", "peak_mem_mb", "peak_rss_mb"):
            m[key] = _mean(p[key] for p in pts)
        m["ms_ssim_db"] = ms_ssim_db(m["ms_ssim"])
        curve.append(m)
    return curve


def summarise(selected: list[str], prechecked: dict[str, str], results: list[dict], qualities: dict) -> dict:
    """Per codec: status, settings, per-image points and the mean curve."""
    summary = {}
    for name in selected:
        codec = get_codec(name)
        entry = {"label": codec.label, "status": "ok", "reason": None, "settings": codec.settings(),
                 "qualities": list(qualities[name]), "cpu_s": 0.0, "mean": [], "per_image": {}}
        if name in prechecked:
            entry.update(status="skipped", reason=prechecked[name])
        mine = sorted((r for r in results if r["codec"] == name), key=lambda r: r["image"])
        for r in mine:
            entry["cpu_s"] += r["cpu_s"]
            if r["status"] == "error" or (r["status"] == "skipped" and entry["status"] == "ok"):
                entry.update(status=r["status"], reason=f"{r['image']}: {r['reason']}")
            elif r["status"] == "ok":
                entry["per_image"][r["image"]] = r["points"]
        if entry["status"] == "ok" and entry["per_image"]:
            entry["mean"] = mean_curve(entry["per_image"])
        elif entry["status"] == "ok":
            entry.update(status="skipped", reason="no images")
        summary[name] = entry
    return summary


def load_published(folder: Path) -> list[dict]:
    """Published curves in CompressAI's JSON format, as mean curves with our metric names."""
    refs = []
    for path in sorted(Path(folder).glob("*.json")):
        d = json.loads(path.read_text())
        res = d["results"]
        ms = res.get("ms-ssim-rgb")
        refs.append({
            "name": d["name"], "label": f"{d['name']} (published)", "file": path.name, "source": PUBLISHED_SOURCE,
            "bpp": res["bpp"], "psnr": res.get("psnr-rgb"), "ssim": None, "ms_ssim": ms,
            "ms_ssim_db": [ms_ssim_db(v) for v in ms] if ms else None,
        })
    return refs


def _curve(c: dict, key: str):
    """(bpp list, metric list) of a codec summary entry or a published reference."""
    if "mean" in c:
        return [p["bpp"] for p in c["mean"]], [p[key] for p in c["mean"]]
    return c["bpp"], c.get(key) or []


def bd_rate_rows(summary: dict, published: list[dict], method: str) -> list[dict]:
    """aecodec and each published curve against every baseline; each baseline against JPEG 4:2:0."""
    ok = [n for n, c in summary.items() if c["status"] == "ok"]
    baselines = [n for n in ok if n != "aecodec" and n not in EFFORT_CODECS]
    pairs = [("aecodec", summary["aecodec"], b) for b in baselines if "aecodec" in ok]
    pairs += [(ref["label"], ref, b) for ref in published for b in baselines]
    if "jpeg-420" in ok:
        pairs += [(n, summary[n], "jpeg-420") for n in baselines if n != "jpeg-420"]
    rows = []
    for test_name, test, anchor_name in pairs:
        row = {"test": test_name, "anchor": anchor_name}
        for key, _ in METRICS:
            ra, ma = _curve(summary[anchor_name], key)
            rt, mt = _curve(test, key)
            row[key] = bd_rate(ra, ma, rt, mt, method=method) if ma and mt else None
        rows.append(row)
    return rows


def bd_markdown(rows: list[dict]) -> str:
    def fmt(v):
        return "—" if v is None else f"{v:+.1f} %"

    lines = ["| test | anchor | " + " | ".join(label for _, label in METRICS) + " |",
             "|---|---|" + "---:|" * len(METRICS)]
    lines += [f"| {r['test']} | {r['anchor']} | " + " | ".join(fmt(r[k]) for k, _ in METRICS) + " |" for r in rows]
    return "\n".join(lines)


def effort_rows(summary: dict) -> list[dict]:
    """Each effort level against effort 1 (the ``aecodec`` codec) on the images both ran: BD-rate
    (PSNR and MS-SSIM dB, PCHIP) of the mean curves, and the mean encode seconds per image."""
    base = summary.get("aecodec")
    if not base or base["status"] != "ok":
        return []
    rows = []
    for name in sorted((n for n in summary if n in EFFORT_CODECS), key=lambda n: EFFORT_CODECS[n].effort):
        c = summary[name]
        if c["status"] != "ok":
            continue
        shared = sorted(set(c["per_image"]) & set(base["per_image"]))
        anchor = mean_curve({img: base["per_image"][img] for img in shared})
        test = mean_curve({img: c["per_image"][img] for img in shared})
        row = {"effort": EFFORT_CODECS[name].effort, "codec": name, "n_images": len(shared),
               "qualities": c["qualities"]}
        for key in ("psnr", "ms_ssim_db"):
            row[f"bd_{key}"] = bd_rate([p["bpp"] for p in anchor], [p[key] for p in anchor],
                                       [p["bpp"] for p in test], [p[key] for p in test])
        row["encode_s"] = _mean(p["encode_s"] for img in shared for p in c["per_image"][img])
        row["encode_s_effort1"] = _mean(p["encode_s"] for img in shared for p in base["per_image"][img])
        rows.append(row)
    return rows


def effort_markdown(rows: list[dict]) -> str:
    def pct(v):
        return "—" if v is None else f"{v:+.1f} %"

    def sec(v):
        return "—" if v is None else f"{v:.1f}"

    lines = ["| effort | images | BD-rate PSNR | BD-rate MS-SSIM | encode s / image | effort 1 s / image |",
             "|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['effort']} | {r['n_images']} | {pct(r['bd_psnr'])} | {pct(r['bd_ms_ssim_db'])} | "
              f"{sec(r['encode_s'])} | {sec(r['encode_s_effort1'])} |" for r in rows]
    return "\n".join(lines)


def plot_effort(rows: list[dict], path: Path, title: str) -> None:
    """BD-rate against effort 1 versus encode seconds per image, one point per effort level."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    pts = [r for r in rows if r["bd_psnr"] is not None]
    ax.plot([r["encode_s"] for r in pts], [r["bd_psnr"] for r in pts], "o-", color="black")
    for r in pts:
        ax.annotate(f"e{r['effort']} ({r['n_images']} img)", (r["encode_s"], r["bd_psnr"]),
                    textcoords="offset points", xytext=(5, 5), fontsize=8)
    ax.axhline(0, color="0.6", lw=0.8)
    ax.set_xlabel("encode seconds per image")
    ax.set_ylabel("BD-rate (PSNR) vs effort 1, %")
    ax.grid(True, alpha=0.3)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ----------------------------------------------------------------------------- checks

def sanity_checks(summary: dict) -> list[str]:
    """Failures: codec errors, bpp <= 0, mean PSNR outside 15..60 dB, mean bpp not rising with quality."""
    failures = []
    if not any(c["status"] == "ok" for c in summary.values()):
        failures.append("no codec produced results")
    for name, c in summary.items():
        if c["status"] == "error":
            failures.append(f"{name}: error: {c['reason'].strip().splitlines()[-1]}")
        if c["status"] != "ok":
            continue
        for img, pts in c["per_image"].items():
            for p in pts:
                if not p["bpp"] > 0:
                    failures.append(f"{name} {img} q={p['quality']}: bpp {p['bpp']} <= 0")
        lo, hi = PSNR_SANE
        for p in c["mean"]:
            if not (_finite(p["psnr"]) and lo <= p["psnr"] <= hi):
                failures.append(f"{name} q={p['quality']}: mean PSNR {p['psnr']} outside {lo}..{hi} dB")
        bpps = [p["bpp"] for p in c["mean"]]
        drops = [i for i in range(1, len(bpps)) if bpps[i] < 0.95 * bpps[i - 1]]
        if drops or (len(bpps) > 1 and not bpps[-1] > bpps[0]):
            failures.append(f"{name}: mean bpp not increasing with quality: {[round(b, 4) for b in bpps]}")
    return failures


# ----------------------------------------------------------------------------- machine info

def _version(dist: str):
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def machine_info() -> dict:
    cpu = cpu_name()
    from PIL import features

    libs = {k: features.version(k) for k in ("libjpeg_turbo", "jpg", "webp", "avif", "jpg_2000", "zlib")}
    try:
        import pillow_heif

        info = pillow_heif.libheif_info()
        libs["libheif"], libs["heif_encoder"] = info.get("libheif"), info.get("HEIF")
    except Exception:
        pass
    git = None
    try:
        root = Path(__file__).resolve().parent.parent
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True, timeout=10)
        if head.returncode == 0:
            git = {"commit": head.stdout.strip(), "dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        pass
    dists = ("Pillow", "pillow-jxl-plugin", "pillow-heif", "torch", "numpy", "scipy", "pytorch-msssim",
             "compressai", "matplotlib", "aecodec")
    return {
        "cpu_model": cpu or platform.processor() or platform.machine(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "load_average_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": {d: _version(d) for d in dists},
        "codec_libraries": libs,
        "git": git,
    }


# ----------------------------------------------------------------------------- outputs

def _json_safe(x):
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    return x


def plot_rd(summary: dict, published: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(18, 6))
    measured = [c for c in summary.values() if c["status"] == "ok"]
    tab10, dark2 = plt.get_cmap("tab10").colors, plt.get_cmap("Dark2").colors
    curves = [(c, "-", "o", 1.3, tab10[i % 10]) for i, c in enumerate(measured)]
    curves += [(r, "--", ".", 1.1, dark2[i % 8]) for i, r in enumerate(published)]
    # x range from our own curves; published ones may run further
    max_bpp = max((p["bpp"] for c in measured for p in c["mean"] if _finite(p["bpp"])), default=None)
    for ax, (key, ylabel) in zip(axes, METRICS):
        for c, style, marker, lw, color in curves:
            xs, ys = _curve(c, key)
            pts = [(x, y) for x, y in zip(xs, ys) if _finite(x) and _finite(y)]
            if not pts:
                continue
            if c["label"] == "aecodec":
                lw, color = 2.5, "black"
            ax.plot(*zip(*pts), style, marker=marker, ms=4, lw=lw, color=color, label=c["label"])
        ax.set_xlabel("bits per pixel")
        ax.set_ylabel(ylabel)
        ax.set_xlim(0, max_bpp * 1.05 if max_bpp else None)
        ax.grid(True, alpha=0.3)
    handles = {}
    for ax in axes:  # one shared legend, each curve once
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    fig.legend(list(handles.values()), list(handles), loc="lower center", ncol=6, fontsize=9, frameon=False)
    fig.suptitle(title)
    if published:
        fig.text(0.99, 0.005, f"dashed (published): {PUBLISHED_SOURCE}", ha="right", fontsize=8, color="0.3")
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def print_means(summary: dict) -> None:
    def f(v, spec, scale=1.0):
        return format(v * scale, spec) if _finite(v) else "-".rjust(int(spec.split(".")[0]))

    print(f"{'codec':10s} {'quality':>7s} {'bpp':>7s} {'PSNR':>6s} {'SSIM':>6s} {'MS-SSIM dB':>10s} "
          f"{'enc ms':>7s} {'dec ms':>7s}")
    for name, c in summary.items():
        if c["status"] != "ok":
            print(f"{name:10s} {c['status']}: {(c['reason'] or '').strip().splitlines()[-1]}")
            continue
        for p in c["mean"]:
            print(f"{name:10s} {p['quality']:>7g} {f(p['bpp'], '7.3f')} {f(p['psnr'], '6.2f')} {f(p['ssim'], '6.4f')} "
                  f"{f(p['ms_ssim_db'], '10.2f')} {f(p['encode_s'], '7.1f', 1e3)} {f(p['decode_s'], '7.1f', 1e3)}")


# ----------------------------------------------------------------------------- CLI

def parse_codecs(text: str) -> list[str]:
    names = []
    for item in text.split(","):
        item = item.strip()
        if item == "all":
            names += list(CODECS)
        elif item == "classical":
            names += list(CLASSICAL)
        elif item in CODECS or item in EFFORT_CODECS:
            names.append(item)
        elif item:
            raise argparse.ArgumentTypeError(f"unknown codec {item!r}; choose from all, classical, {', '.join(CODECS)}, "
                                             f"{', '.join(EFFORT_CODECS)}")
    return list(dict.fromkeys(names))


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.rd", description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", type=Path, required=True, help="folder of PNG/JPEG images")
    p.add_argument("--out", type=Path, required=True, help="output folder for results.json, rd.png, bdrate.md")
    p.add_argument("--codecs", type=parse_codecs, default=list(CODECS),
                   help="comma-separated codec ids, or 'all' / 'classical' (default: all): " + ", ".join(CODECS))
    p.add_argument("--efforts", type=parse_efforts, default=[],
                   help="also run aecodec at these --effort levels (2-9, comma-separated), at qualities "
                        f"{', '.join(map(str, EFFORT_QUALITIES))}; reports each one's BD-rate against effort 1 "
                        "(the aecodec codec, added when absent) and encode time (effort.md, effort.png)")
    p.add_argument("--images", type=int, default=None, metavar="N", help="only the first N images of the dataset")
    p.add_argument("--jobs", type=int, default=None, help="worker processes (default: usable cores)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads per worker (default 1; --jobs 1 --threads 2 times encodes on 2 cores)")
    p.add_argument("--quick", action="store_true",
                   help=f"CI mode: first {QUICK_IMAGES} images, {QUICK_POINTS} qualities per codec")
    p.add_argument("--published", type=Path, default=None,
                   help="folder of published Kodak curves (default: <dataset>/../../reference/kodak-published)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p.parse_args(argv)


def parse_efforts(text: str) -> list[int]:
    try:
        efforts = [int(e) for e in text.split(",") if e.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"efforts must be integers 2-9, comma-separated, not {text!r}") from None
    if not efforts or any(not 2 <= e <= 9 for e in efforts):
        raise argparse.ArgumentTypeError(f"efforts must be integers 2-9 (1 is the aecodec codec), not {text!r}")
    return list(dict.fromkeys(efforts))


def quick_qualities(qualities) -> list:
    idx = sorted({int(round(i)) for i in np.linspace(0, len(qualities) - 1, QUICK_POINTS)})
    return [qualities[i] for i in idx]


def main(argv=None) -> int:
    args = parse_args(argv)
    wall0 = time.perf_counter()
    started = machine_info()
    all_images = list_images(args.dataset)
    if not all_images:
        print(f"no PNG/JPEG images in {args.dataset}", file=sys.stderr)
        return 2
    images = (all_images[:QUICK_IMAGES] if args.quick else all_images)[:args.images]
    workers = args.jobs or started["usable_cpus"] or 1
    if args.efforts:
        args.codecs = list(dict.fromkeys([*args.codecs, "aecodec", *(f"aecodec-e{e}" for e in args.efforts)]))

    qualities, prechecked = {}, {}
    for name in args.codecs:
        codec = get_codec(name)
        qualities[name] = quick_qualities(codec.qualities) if args.quick else list(codec.qualities)
        try:
            codec.check()
        except CodecUnavailable as e:
            prechecked[name] = str(e)
            print(f"skipping {name}: {e}", file=sys.stderr)
    order = {n: i for i, n in enumerate(SLOW_FIRST)}
    runnable = sorted((n for n in args.codecs if n not in prechecked), key=lambda n: order.get(n, -1))
    jobs = [(str(img), name, qualities[name]) for name in runnable for img in images]
    print(f"{len(images)} images x {len(runnable)} codecs = {len(jobs)} jobs on {workers} workers", file=sys.stderr)

    results = run_jobs(jobs, workers, progress=not args.no_progress, threads=args.threads)
    summary = summarise(args.codecs, prechecked, results, qualities)

    # Published Kodak curves are only comparable on the whole Kodak set.
    published, published_note = [], None
    pub_dir = args.published or args.dataset.resolve().parent.parent / "reference" / "kodak-published"
    if args.dataset.resolve().name.lower() == "kodak" and pub_dir.is_dir():
        if len(images) == len(all_images):
            published = load_published(pub_dir)
        else:
            published_note = "published Kodak curves left out: only a subset of the images was run"
            print(published_note, file=sys.stderr)

    bd = {m: bd_rate_rows(summary, published, m) for m in ("pchip", "cubic")}
    effort = effort_rows(summary)
    failures = sanity_checks(summary)
    wall_s = time.perf_counter() - wall0

    args.out.mkdir(parents=True, exist_ok=True)
    name = args.dataset.resolve().name
    subset = f"{len(images)} of {len(all_images)} images" if len(images) != len(all_images) else f"{len(images)} images"
    title = f"{name} ({subset}{', quick' if args.quick else ''})"
    report = {
        "benchmark": "aecodec rate-distortion",
        "dataset": {"path": str(args.dataset.resolve()), "name": name, "n_images_in_folder": len(all_images),
                    "images": [_image_info(p) for p in images]},
        "settings": {"argv": sys.argv[1:] if argv is None else list(argv), "codecs": args.codecs,
                     "jobs": workers, "threads": args.threads, "quick": args.quick},
        "notes": {
            "bpp": "len(encoded bytes) * 8 / (width * height), from the real bitstream (container included)",
            "psnr": "dB, 8-bit RGB over all channels (gray plane for gray inputs); mean curve = mean of per-image PSNR",
            "ssim": "pytorch-msssim, data_range=255, window 11, sigma 1.5; RGB channels averaged",
            "ms_ssim": f"pytorch-msssim, data_range=255, 5 scales; null for images with a side < {MS_SSIM_MIN_SIDE} px; "
                       "ms_ssim_db = -10 log10(1 - MS-SSIM); mean curve: dB of the mean MS-SSIM",
            "time": f"encode_s / decode_s: wall-clock seconds of one call in a worker of {args.threads} torch "
                    f"thread(s), {workers} worker(s) running at once (CPU load from other processes also counts)",
            "memory": "peak_mem_mb: resident-set high-water mark (Linux VmHWM, reset via /proc/self/clear_refs "
                      "after glibc malloc_trim) during encode+decode minus the RSS just before, in MiB; "
                      "peak_rss_mb: the absolute VmHWM "
                      "of the worker process; mem_method 'tracemalloc' means Python allocations only",
            "bd_rate": "percent, negative = test needs fewer bits at equal quality; on the mean curves; "
                       "log-rate interpolated over the shared metric range (pchip: scipy PchipInterpolator; "
                       "cubic: 3rd-order polyfit, the original Bjøntegaard)",
            "null": "not available, or infinite (e.g. PSNR of a lossless point)",
            "published": published_note or (f"dashed curves: {PUBLISHED_SOURCE}" if published else None),
        },
        "machine": started,
        "codecs": summary,
        "published": published,
        "bd_rate": bd,
        "effort": effort,
        "checks": {"passed": not failures, "failures": failures},
        "wall_s": wall_s,
        "cpu_s_jobs": sum(r["cpu_s"] for r in results),
    }
    (args.out / "results.json").write_text(json.dumps(_json_safe(report), indent=1))
    plot_rd(summary, published, args.out / "rd.png", f"Rate-distortion on {title}")
    md = [f"# BD-rate on {title}", "",
          "Bjøntegaard delta rate, negative = the test codec needs fewer bits than the anchor for the same",
          "quality. Computed on the mean curves (bpp and metric averaged per quality point over the images),",
          "interpolating log-rate over the metric range both curves share. — : no overlap or metric missing.", ""]
    if published:
        md += [f"Published curves: {PUBLISHED_SOURCE}.", ""]
    for method, heading in (("pchip", "PCHIP (scipy PchipInterpolator)"), ("cubic", "Cubic polyfit")):
        md += [f"## {heading}", "", bd_markdown(bd[method]) if bd[method] else "(no pairs to compare)", ""]
    (args.out / "bdrate.md").write_text("\n".join(md))

    if effort:
        (args.out / "effort.md").write_text(f"# Encoder effort on {title}\n\n" + effort_markdown(effort) + "\n")
        plot_effort(effort, args.out / "effort.png", f"Encoder effort on {title}")
    print_means(summary)
    print("\nBD-rate (PCHIP):\n" + (bd_markdown(bd["pchip"]) if bd["pchip"] else "(no pairs to compare)"))
    if effort:
        print("\nEffort (BD-rate PSNR/PCHIP against effort 1 on the same images):\n" + effort_markdown(effort))
    print(f"\nwrote {args.out}/results.json, rd.png, bdrate.md{', effort.md, effort.png' if effort else ''} in {wall_s:.0f} s "
          f"({report['cpu_s_jobs']:.0f} CPU s in jobs)")
    if failures:
        print("SANITY CHECKS FAILED:\n  " + "\n  ".join(failures), file=sys.stderr)
        return 1
    print("sanity checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
