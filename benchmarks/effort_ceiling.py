"""The ceiling of the effort search: effort 9's method with more iterations than effort 9 spends.

    python -m benchmarks.effort_ceiling --dataset ../shared/datasets/kodak \
        --images kodim01,kodim07,kodim23 --iterations 0,44,150,500 --out benchmarks/results/effort-ceiling

``aecodec encode -e 9`` refines the latents with 30 Adam steps on ẑ alone and then
``refine.ITERATIONS[9]`` joint SGA steps on ŷ and ẑ (temperature and learning rate annealed over
those steps). This benchmark reruns exactly that search with the joint steps set to each of
``--iterations`` (0 is effort 1, the plain encoder, the anchor), codes every image at ``--qualities``
with the real coder, decodes with the unchanged decoder, and gives the BD-rate (PSNR and MS-SSIM,
real bytes) of each iteration count against effort 1 — per image and on the mean curve — with the
encode seconds. It shows how much of the rate latent refinement can save with the shipped weights
at all, whatever the time, i.e. what an effort level can reach on any machine.

Points are appended to ``<out>/points.jsonl`` as they finish, so an interrupted run continues where it
stopped; at the end it writes ``<out>/results.json``, ``ceiling.md`` and ``ceiling.png``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from unittest import mock

import numpy as np

from aecodec.metrics import image_metrics, ms_ssim_db
from benchmarks.bdrate import bd_rate
from benchmarks.codecs import EFFORT_QUALITIES
from benchmarks.rd import _init_worker, _json_safe, list_images, load_image, machine_info

EFFORT = 9  # the level whose joint-step count is replaced


def encode_point(image, quality: float, iterations: int) -> dict:
    """One point: ``image`` coded at ``quality`` with ``iterations`` joint steps (0: effort 1)."""
    import aecodec
    from aecodec.codec import refine

    with mock.patch.dict(refine.ITERATIONS, {EFFORT: iterations}):
        t = time.perf_counter()
        data = aecodec.encode(image, quality=quality, effort=1 if iterations == 0 else EFFORT)
        encode_s = time.perf_counter() - t
    rec = aecodec.decode(data)
    return {"quality": quality, "iterations": iterations, "bytes": len(data),
            "bpp": len(data) * 8 / (image.width * image.height), **image_metrics(image, rec),
            "encode_s": encode_s}


def _mean_curve(points: list[dict]) -> list[dict]:
    """Per quality: mean bpp, mean PSNR, MS-SSIM dB of the mean MS-SSIM (None where an image is too
    small for MS-SSIM), mean seconds."""
    curve = []
    for q in sorted({p["quality"] for p in points}):
        pts = [p for p in points if p["quality"] == q]
        ms = [p["ms_ssim"] for p in pts]
        curve.append({"quality": q, "n_images": len(pts), "bpp": float(np.mean([p["bpp"] for p in pts])),
                      "psnr": float(np.mean([p["psnr"] for p in pts])),
                      "ms_ssim_db": None if None in ms else ms_ssim_db(float(np.mean(ms))),
                      "encode_s": float(np.mean([p["encode_s"] for p in pts]))})
    return curve


def _bd(anchor: list[dict], test: list[dict], key: str):
    return bd_rate([p["bpp"] for p in anchor], [p[key] for p in anchor], [p["bpp"] for p in test],
                   [p[key] for p in test])


def ceiling_rows(points: list[dict]) -> list[dict]:
    """Each iteration count against 0 (effort 1), on the images both have every quality of."""
    by = {}
    for p in points:
        by.setdefault(p["iterations"], {}).setdefault(p["image"], []).append(p)
    anchor = by.get(0, {})
    nq = len({p["quality"] for p in points})
    rows = []
    for n in sorted(k for k in by if k != 0):
        images = sorted(i for i in by[n] if len(by[n][i]) == nq and len(anchor.get(i, [])) == nq)
        if not images:
            continue
        test_pts = [p for i in images for p in by[n][i]]
        anchor_pts = [p for i in images for p in anchor[i]]
        per_image = {i: _bd(sorted(anchor[i], key=lambda p: p["quality"]),
                            sorted(by[n][i], key=lambda p: p["quality"]), "psnr") for i in images}
        rows.append({"iterations": n, "n_images": len(images),
                     "bd_psnr": _bd(_mean_curve(anchor_pts), _mean_curve(test_pts), "psnr"),
                     "bd_ms_ssim_db": _bd(_mean_curve(anchor_pts), _mean_curve(test_pts), "ms_ssim_db"),
                     "bd_psnr_per_image": per_image,
                     "encode_s": float(np.mean([p["encode_s"] for p in test_pts]))})
    return rows


def ceiling_markdown(rows: list[dict]) -> str:
    def pct(v):
        return "—" if v is None else f"{v:+.1f} %"

    images = sorted({i for r in rows for i in r["bd_psnr_per_image"]})
    lines = ["| joint SGA steps | BD-rate PSNR | BD-rate MS-SSIM | " + " | ".join(images) + " | encode s / image |",
             "|---:|---:|---:|" + "---:|" * len(images) + "---:|"]
    for r in rows:
        cells = [pct(r["bd_psnr_per_image"].get(i)) for i in images]
        lines.append(f"| {r['iterations']} | {pct(r['bd_psnr'])} | {pct(r['bd_ms_ssim_db'])} | "
                     + " | ".join(cells) + f" | {r['encode_s']:.1f} |")
    return "\n".join(lines)


def plot_ceiling(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    pts = [r for r in rows if r["bd_psnr"] is not None]
    ax.plot([r["encode_s"] for r in pts], [r["bd_psnr"] for r in pts], "o-", color="black", label="mean curve")
    for r in pts:
        ax.annotate(f"{r['iterations']} steps", (r["encode_s"], r["bd_psnr"]), textcoords="offset points",
                    xytext=(5, 5), fontsize=8)
    for img in sorted({i for r in pts for i in r["bd_psnr_per_image"]}):
        ax.plot([r["encode_s"] for r in pts], [r["bd_psnr_per_image"].get(img) for r in pts], ".--", lw=0.8,
                label=img)
    ax.axhline(0, color="0.6", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("encode seconds per image (log)")
    ax.set_ylabel("BD-rate (PSNR) vs effort 1, %")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _ints(text: str) -> list[int]:
    try:
        values = sorted({int(v) for v in text.split(",") if v.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of integers: {text!r}")
    if not values or values[0] < 0:
        raise argparse.ArgumentTypeError(f"iteration counts must be ≥ 0, got {text!r}")
    return values


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of numbers: {text!r}")


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.effort_ceiling", description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", type=Path, required=True, help="folder of images")
    ap.add_argument("--images", default="", help="comma-separated file stems to use (default: all)")
    ap.add_argument("--iterations", type=_ints, default=_ints("0,44,150,500"),
                    help="joint SGA steps to try; 0 (effort 1, the anchor) is always added")
    ap.add_argument("--qualities", type=_floats, default=[float(q) for q in EFFORT_QUALITIES])
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--out", type=Path, required=True)
    return ap.parse_args(argv)


def main(argv=None) -> int:
    a = parse_args(argv)
    paths = list_images(a.dataset)
    if a.images:
        wanted = [s.strip() for s in a.images.split(",") if s.strip()]
        by_stem = {p.stem: p for p in paths}
        missing = [s for s in wanted if s not in by_stem]
        if missing:
            print(f"effort_ceiling: error: not in {a.dataset}: {', '.join(missing)}", file=sys.stderr)
            return 2
        paths = [by_stem[s] for s in wanted]
    if not paths:
        print(f"effort_ceiling: error: no images in {a.dataset}", file=sys.stderr)
        return 2
    from aecodec.codec import refine

    if a.threads:
        _init_worker(a.threads)
    iterations = sorted(set(a.iterations) | {0})
    a.out.mkdir(parents=True, exist_ok=True)
    log = a.out / "points.jsonl"
    points = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    done = {(p["image"], p["iterations"], p["quality"]) for p in points}
    machine = machine_info()
    t0 = time.perf_counter()
    for n in iterations:  # every image at the cheaper counts first: the table fills from the left
        for path in paths:
            image = None
            for q in a.qualities:
                if (path.name, n, q) in done:
                    continue
                image = image or load_image(path)
                p = {"image": path.name, **encode_point(image, q, n)}
                points.append(p)
                with log.open("a") as f:
                    f.write(json.dumps(_json_safe(p)) + "\n")
                print(f"{path.name} q{q:g} {n} steps: {p['bpp']:.4f} bpp {p['psnr']:.3f} dB "
                      f"{p['encode_s']:.1f} s", file=sys.stderr, flush=True)
    points = [p for p in points if p["iterations"] in iterations and p["quality"] in a.qualities
              and p["image"] in {path.name for path in paths}]
    rows = ceiling_rows(points)
    cmd = "python -m benchmarks.effort_ceiling " + " ".join(sys.argv[1:] if argv is None else argv)
    (a.out / "results.json").write_text(json.dumps(_json_safe(
        {"command": cmd, "machine": machine, "z_iterations": refine.Z_ITERATIONS[EFFORT],
         "qualities": a.qualities, "rows": rows, "points": points, "run_s": time.perf_counter() - t0}), indent=1) + "\n")
    md = ceiling_markdown(rows)
    (a.out / "ceiling.md").write_text(
        f"BD-rate against effort 1 (real bytes, qualities {', '.join(f'{q:g}' for q in a.qualities)}), "
        f"{machine['cpu_model']}, {machine['date'][:10]}:\n\n{md}\n")
    plot_ceiling(rows, a.out / "ceiling.png",
                 f"effort 9's search with more joint steps — {len(paths)} images, {machine['cpu_model']}")
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
