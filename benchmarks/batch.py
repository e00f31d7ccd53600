"""Many images on one machine: the plain CLI against ``aecodec batch`` on Ray, images per second.

    python -m benchmarks.batch --images ../shared/datasets/kodak --out benchmarks/results/batch.json --page

Each configuration is one whole command over the folder (start-up included: Python, Ray, the
workers, the model), run ``--repeat`` times, interleaved, on the folder and on the folder twice over
(the difference: the rate of the added images, and the command's fixed cost); encode, then decode
of the .aec files of the images:

- ``cli-loop``: a shell loop, one ``aecodec encode`` process per image;
- ``cli``: one ``aecodec encode IMAGE… -o DIR/`` process (one image after another, onnxruntime's threads);
- ``ray-1``: ``aecodec batch encode`` with one worker of all the cores;
- ``ray-N``: N workers of one core each (N = the cores).

Peak memory: the CLI process's (``/usr/bin/time``), and each Ray worker's (its own
``getrusage``, in the manifest) with the driver's beside it.

``--page [PAGE]`` (default docs/batch.md; ``--readme`` is its old name) rewrites that page's block
between ``<!-- batch:begin -->`` and ``<!-- batch:end -->`` from the results.
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

from aecodec.batch import read_manifest
from aecodec.codec.images import image_files
from aecodec.device import cpu_name
from benchmarks.report import BATCH_PAGE, page_link, replace_block
from benchmarks.speed import _process, _steal


def _configs(kind: str, folder: Path, out: Path, cores: int) -> dict[str, list[list[str]]]:
    """Each configuration's commands over the inputs in ``folder`` (a list: the loop runs one per input)."""
    cli = [sys.executable, "-m", "aecodec"]
    inputs = sorted(folder.iterdir())
    each = lambda p: [*cli, kind, str(p), "-o", f"{out}/", "--force", "--quiet"]  # noqa: E731
    batch = [*cli, "batch", kind, str(folder), str(out), "--force", "--quiet"]
    return {"cli-loop": [each(p) for p in inputs], "cli": [[*cli, kind, *map(str, inputs), "-o", f"{out}/",
                                                             "--force", "--quiet"]],
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
    return {"wall_s": wall, "process_peak_rss_MB": rss, "worker_peak_rss_MB": max(workers.values()) if workers else None}


def _folders(images: list[Path], d: Path, threads: int) -> dict[tuple[str, int], Path]:
    """The inputs of each (kind, copies): the images once and twice over (links under other names),
    and their .aec files (made once by the plain CLI)."""
    folders = {}
    aec = d / "aec"
    aec.mkdir()
    _process([sys.executable, "-m", "aecodec", "encode", *map(str, images), "-o", f"{aec}/", "--quiet"], threads)
    for copies in (1, 2):
        for kind, files in (("encode", images), ("decode", sorted(aec.glob("*.aec")))):
            folder = folders[kind, copies] = d / f"{kind}-{copies}"
            folder.mkdir()
            for c in range(copies):
                for p in files:
                    (folder / f"{c}-{p.name}").symlink_to(p.resolve())
    return folders


def measure(folder: Path, repeat: int, threads: int, limit: int | None) -> dict:
    """Every configuration on the folder and on the folder twice over, ``repeat`` times, interleaved:
    the rate over the whole command, and the rate of the added images (start-up excluded)."""
    images = image_files([folder])[:limit]
    if not images:
        raise SystemExit(f"no images in {folder}")
    n, cores = len(images), os.cpu_count() or 1
    runs: dict[tuple[str, str, int], list[dict]] = {}
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        folders = _folders(images, d, threads)
        for r in range(repeat):
            for kind in ("encode", "decode"):
                for copies in (1, 2):
                    for name, cmds in _configs(kind, folders[kind, copies], d / "out", cores).items():
                        if name == "cli-loop" and copies == 2:
                            continue  # a process per image: its rate does not change with the count
                        res = _run(cmds, threads, d / "out")
                        runs.setdefault((kind, name, copies), []).append(res)
                        print(f"[{r + 1}/{repeat}] {kind} {name} × {copies * n}: {res['wall_s']:.1f} s",
                              file=sys.stderr, flush=True)
    table: dict[str, dict] = {}
    for (kind, name, copies), rs in runs.items():
        if copies == 2:
            continue
        once = min(x["wall_s"] for x in rs)
        row = {"images": n, "min_s": round(once, 1), "median_s": round(statistics.median(x["wall_s"] for x in rs), 1),
               "images_per_s": round(n / once, 3),
               "process_peak_rss_MB": round(max(x["process_peak_rss_MB"] for x in rs))}
        if rs[0]["worker_peak_rss_MB"] is not None:
            row["worker_peak_rss_MB"] = round(max(x["worker_peak_rss_MB"] for x in rs))
        twice = runs.get((kind, name, 2))
        if twice:
            extra = min(x["wall_s"] for x in twice) - once
            row["twice_min_s"] = round(once + extra, 1)
            row["marginal_images_per_s"] = round(n / extra, 3) if extra > 0 else None
            row["fixed_s"] = round(once - extra, 1)  # the whole command less the time of n images
        else:  # one process per image: every image pays the start-up
            row["marginal_images_per_s"] = row["images_per_s"]
        table.setdefault(kind, {})[name] = row
    w, h = _size(images[0])
    return {"images": n, "folder": folder.name, "size": f"{w}x{h}", "cores": cores, "repeat": repeat,
            "results": table}


def _size(path: Path) -> tuple[int, int]:
    from PIL import Image

    with Image.open(path) as im:
        return im.size


def markdown(res: dict, path: str, page_dir: Path | None = None) -> str:
    """The batch block: ``path`` (the results file) linked relative to ``page_dir`` (None: as given)."""
    m, n = res["machine"], res["images"]
    engine = f"onnxruntime {m['onnxruntime']}" if "onnxruntime" in m else f"torch {m['torch']}"
    lines = [f"**Many images** (`{res['command']}`, {res['date']}, {m['cpu']}, {res['cores']} cores, {engine}, "
             f"Ray {m['ray']}, {m['steal_percent']} % of the CPU time taken by the host; "
             f"[`{path}`]({page_link(path, page_dir)})): {n} images of {res['folder']} ({res['size']}), quality 75. "
             f"Each configuration "
             f"is one whole command over the folder, start-up included (Python, Ray, the workers, the model), best "
             f"of {res['repeat']}, interleaved; run again on the folder twice over, the difference gives the rate "
             f"of the added images — what a large corpus sees — and the fixed cost of the command.", "",
             f"| | encode {n} | images/s | added images/s | fixed | decode {n} | images/s | added images/s | peak memory (encode) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    labels = {"cli-loop": "`aecodec encode` / `decode` per file (a shell loop)",
              "cli": "`aecodec encode` / `decode` of all files `-o DIR/` (one process)",
              "ray-1": "`aecodec batch`, 1 worker × all cores"}
    enc, dec = res["results"]["encode"], res["results"]["decode"]
    for name in enc:
        e, d = enc[name], dec[name]
        mem = (f"{e['process_peak_rss_MB']} MB" if "worker_peak_rss_MB" not in e
               else f"{e['worker_peak_rss_MB']} MB per worker + driver {e['process_peak_rss_MB']} MB")
        label = labels[name] if name in labels else f"`aecodec batch`, {name.split('-')[1]} workers × 1 core"
        fixed = f"{e['fixed_s']} s" if "fixed_s" in e else "each image"
        lines.append(f"| {label} | {e['min_s']} s | {e['images_per_s']} | {e['marginal_images_per_s']} | {fixed} "
                     f"| {d['min_s']} s | {d['images_per_s']} | {d['marginal_images_per_s']} | {mem} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=Path, required=True, help="Folder of images (e.g. Kodak).")
    ap.add_argument("--out", type=Path, required=True, help="Results JSON to write.")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--limit", type=int, default=None, help="Only the first N images.")
    ap.add_argument("--page", "--readme", type=Path, nargs="?", const=BATCH_PAGE, metavar="PAGE",
                    help=f"Rewrite this page's <!-- batch:begin --> block (no value: {BATCH_PAGE}).")
    a = ap.parse_args(argv)
    from importlib.metadata import version

    import ray

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
           "machine": {"cpu": cpu_name(), "onnxruntime": version("onnxruntime"), "ray": ray.__version__,
                       "steal_percent": round(steal, 1)}, **res}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(res, indent=2) + "\n")
    print(markdown(res, str(a.out)))
    if a.page:
        a.page.write_text(replace_block(a.page.read_text(), "batch", markdown(res, str(a.out), a.page.parent)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
