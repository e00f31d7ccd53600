"""Many images on one machine: the plain CLI against ``aecodec batch`` on Ray, images per second.

    python -m benchmarks.batch --images ../shared/datasets/kodak --out benchmarks/results/batch.json --readme README.md

Each configuration is one whole command over the folder (start-up included: Python, Ray, the
workers, the model), run ``--repeat`` times, interleaved; encode first, then decode of the files
it made:

- ``cli-loop``: a shell loop, one ``aecodec encode`` process per image;
- ``cli``: one ``aecodec encode IMAGE… -o DIR/`` process (one image after another, torch's threads);
- ``ray-1``: ``aecodec batch encode`` with one worker of all the cores;
- ``ray-N``: N workers of one core each (N = the cores).

Peak memory: the CLI process's (``/usr/bin/time``), and each Ray worker's (its own
``getrusage``, in the manifest) with the driver's beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from benchmarks.report import replace_block
from benchmarks.speed import _cpu_name, _process, _steal

from aecodec.batch import read_manifest
from aecodec.codec.images import image_files


def _configs(images: list[Path], out: Path, cores: int, kind: str) -> dict[str, list[list[str]]]:
    """Each configuration's commands (a list: the loop runs one per image)."""
    cli = [sys.executable, "-m", "aecodec"]
    if kind == "encode":
        src, one = images[0].parent, lambda p: [*cli, "encode", str(p), "-o", f"{out}/", "--force", "--quiet"]
        many = [*cli, "encode", *map(str, images), "-o", f"{out}/", "--force", "--quiet"]
    else:
        src = out.parent / "aec"
        files = sorted(src.glob("*.aec"))
        one = lambda p: [*cli, "decode", str(p), "-o", f"{out}/", "--force", "--quiet"]  # noqa: E731
        many = [*cli, "decode", *map(str, files), "-o", f"{out}/", "--force", "--quiet"]
        images = files
    batch = [*cli, "batch", kind, str(src), str(out), "--force", "--quiet"]
    return {"cli-loop": [one(p) for p in images], "cli": [many],
            "ray-1": [[*batch, "--workers", "1"]],
            f"ray-{cores}": [[*batch, "--workers", str(cores), "--cpus-per-worker", "1"]]}


def _run(commands: list[list[str]], threads: int, out: Path) -> dict:
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    wall, rss = 0.0, 0.0
    for argv in commands:
        w, m = _process(argv, threads)
        wall, rss = wall + w, max(rss, m)
    rows = read_manifest(out / "manifest.jsonl")
    workers: dict[str, float] = {}
    for r in rows:
        workers[r["worker"]] = max(workers.get(r["worker"], 0.0), r["peak_rss_mb"])
    busy: dict[str, float] = {}
    for r in rows:
        busy[r["worker"]] = busy.get(r["worker"], 0.0) + r["seconds"]
    return {"wall_s": wall, "process_peak_rss_MB": rss,
            "worker_peak_rss_MB": max(workers.values()) if workers else None,
            "busiest_worker_s": max(busy.values()) if busy else None}


def measure(folder: Path, repeat: int, threads: int, limit: int | None) -> dict:
    images = image_files([folder])[:limit]
    if not images:
        raise SystemExit(f"no images in {folder}")
    cores = os.cpu_count() or 1
    results: dict[str, dict[str, list]] = {}
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        (d / "src").mkdir()
        for p in images:  # the folder the batch commands read: just these images
            (d / "src" / p.name).symlink_to(p.resolve())
        images = sorted((d / "src").iterdir())
        aec = d / "aec"  # the files decode reads: made once by the plain CLI
        aec.mkdir()
        _process([sys.executable, "-m", "aecodec", "encode", *map(str, images), "-o", f"{aec}/", "--quiet"], threads)
        for r in range(repeat):
            for kind in ("encode", "decode"):
                for name, cmds in _configs(images, d / "out", cores, kind).items():
                    res = _run(cmds, threads, d / "out")
                    results.setdefault(kind, {}).setdefault(name, []).append(res)
                    print(f"[{r + 1}/{repeat}] {kind} {name}: {res['wall_s']:.1f} s "
                          f"({len(images) / res['wall_s']:.2f} images/s)", file=sys.stderr, flush=True)
    table = {}
    for kind, by in results.items():
        table[kind] = {}
        for name, runs in by.items():
            walls = [x["wall_s"] for x in runs]
            table[kind][name] = {
                "min_s": round(min(walls), 1), "median_s": round(statistics.median(walls), 1),
                "images_per_s": round(len(images) / min(walls), 3),
                "process_peak_rss_MB": round(max(x["process_peak_rss_MB"] for x in runs)),
                "worker_peak_rss_MB": (round(max(x["worker_peak_rss_MB"] for x in runs))
                                       if runs[0]["worker_peak_rss_MB"] is not None else None),
                "busiest_worker_s": (round(min(x["busiest_worker_s"] for x in runs), 1)
                                     if runs[0]["busiest_worker_s"] is not None else None)}
    w, h = _size(images[0])
    return {"images": len(images), "folder": folder.name, "size": f"{w}x{h}", "cores": cores, "repeat": repeat,
            "results": table}


def _size(path: Path) -> tuple[int, int]:
    from PIL import Image

    with Image.open(path) as im:
        return im.size


def markdown(res: dict, path: str) -> str:
    m = res["machine"]
    lines = [f"**Many images** (`{res['command']}`, {res['date']}, {m['cpu']}, {res['cores']} cores, torch "
             f"{m['torch']}, Ray {m['ray']}, {m['steal_percent']} % of the CPU time taken by the host; "
             f"[`{path}`]({path})): {res['images']} images of {res['folder']} ({res['size']}), quality 75, each "
             f"configuration one whole command over the folder (start-up included), best of {res['repeat']}, "
             "interleaved.", "",
             "| | encode | images/s | decode | images/s | peak memory (encode) |", "|---|---:|---:|---:|---:|---|"]
    labels = {"cli-loop": "`aecodec encode` per image (a shell loop)", "cli": "`aecodec encode *.png -o DIR/` (one process)",
              "ray-1": "`aecodec batch`, 1 worker × all cores"}
    enc, dec = res["results"]["encode"], res["results"]["decode"]
    for name in enc:
        e, d = enc[name], dec[name]
        mem = (f"{e['process_peak_rss_MB']} MB" if e["worker_peak_rss_MB"] is None
               else f"{e['worker_peak_rss_MB']} MB per worker (+ driver {e['process_peak_rss_MB']} MB)")
        label = labels[name] if name in labels else f"`aecodec batch`, {name.split('-')[1]} workers × 1 core"
        lines.append(f"| {label} | {e['min_s']} s | {e['images_per_s']} | {d['min_s']} s | {d['images_per_s']} | {mem} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=Path, required=True, help="Folder of images (e.g. Kodak).")
    ap.add_argument("--out", type=Path, required=True, help="Results JSON to write.")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--limit", type=int, default=None, help="Only the first N images.")
    ap.add_argument("--readme", type=Path, help="Rewrite this README's <!-- batch:begin --> block.")
    a = ap.parse_args(argv)
    import ray
    import torch

    threads = os.cpu_count() or 1
    s0 = _steal()
    t0 = time.time()
    res = measure(a.images, a.repeat, threads, a.limit)
    s1 = _steal()
    steal = 100 * (s1[0] - s0[0]) / max(1, s1[1] - s0[1])
    cmd = ["python -m benchmarks.batch", "--images", str(a.images), "--out", str(a.out)]
    cmd += ([f"--repeat {a.repeat}"] if a.repeat != 2 else []) + ([f"--limit {a.limit}"] if a.limit else [])
    res = {"command": " ".join(cmd), "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
           "minutes": round((time.time() - t0) / 60, 1),
           "machine": {"cpu": _cpu_name(), "torch": torch.__version__, "ray": ray.__version__,
                       "steal_percent": round(steal, 1)}, **res}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(res, indent=2) + "\n")
    print(markdown(res, str(a.out)))
    if a.readme:
        a.readme.write_text(replace_block(a.readme.read_text(), "batch", markdown(res, str(a.out))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
