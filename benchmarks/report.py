"""Write the measured Kodak results into the README and the shipped weights' record.

    python -m benchmarks.report --results benchmarks/results/kodak/results.json \\
        --readme README.md --weights aecodec/models/weights/mean-scale-vr-128.pt

README: the block between ``<!-- results:begin -->`` and ``<!-- results:end -->`` is replaced by a
table of aecodec at each benchmarked quality against JPEG at the same bpp (JPEG's PSNR
interpolated in log-bpp along its measured curve), the BD-rate table, the plot, and the machine
(the date stays in ``results.json``). The speed block (``<!-- speed:begin -->``) lives in
``--speed-page`` (docs/performance.md) and is rewritten there from ``--speed``. Weights:
``<weights>.json`` beside the file records how they were made (from the checkpoint's training
record) and their Kodak RD per quality.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

import numpy as np


def _interp_at(bpp: float, curve: list[dict], key: str) -> float | None:
    xs = np.log([p["bpp"] for p in curve])
    ys = np.array([p[key] for p in curve], dtype=float)
    order = np.argsort(xs)
    xs, ys = xs[order], ys[order]
    x = np.log(bpp)
    if x < xs[0] or x > xs[-1]:
        return None
    return float(np.interp(x, xs, ys))


def results_markdown(r: dict, results_path: Path, readme_dir: Path) -> str:
    codecs = r["codecs"]
    ours = codecs["aecodec"]["mean"]
    jpeg = codecs["jpeg-420"]["mean"]
    lines = ["| quality | bpp | PSNR (dB) | MS-SSIM (dB) | JPEG 4:2:0 PSNR at that bpp | Δ vs JPEG |",
             "|---:|---:|---:|---:|---:|---:|"]
    for p in ours:
        j = _interp_at(p["bpp"], jpeg, "psnr")
        ms = f"{p['ms_ssim_db']:.2f}" if p.get("ms_ssim_db") is not None else "—"
        jt, dt = ("—", "—") if j is None else (f"{j:.2f}", f"{p['psnr'] - j:+.2f} dB")
        lines.append(f"| {p['quality']:g} | {p['bpp']:.3f} | {p['psnr']:.2f} | {ms} | {jt} | {dt} |")
    bd = r["bd_rate"]
    table = bd.get("pchip", bd)
    rows = [row for row in (table if isinstance(table, list) else table.get("rows", []))
            if row.get("test") == "aecodec"]
    bd_lines = ["| aecodec vs | BD-rate PSNR | BD-rate MS-SSIM (dB) |", "|---|---:|---:|"]
    for row in rows:
        f = lambda v: "—" if v is None else f"{v:+.1f} %"
        bd_lines.append(f"| {codecs.get(row['anchor'], {}).get('label', row['anchor'])} | {f(row.get('psnr'))} | "
                        f"{f(row.get('ms_ssim_db'))} |")
    m = r["machine"]
    folder = results_path.parent
    plot, bd_md, raw = (page_link(p, readme_dir) for p in (folder / "rd.png", folder / "bdrate.md", results_path))
    return "\n".join([
        f"Measured on {m['cpu_model']} ({m['usable_cpus']} cores, no GPU), "
        f"torch {m['versions']['torch']}, Pillow {m['versions']['Pillow']} "
        f"(libjpeg-turbo {m['codec_libraries'].get('libjpeg_turbo')}, libwebp {m['codec_libraries'].get('webp')}, "
        f"libavif {m['codec_libraries'].get('avif')}), by `python -m benchmarks.rd --dataset "
        f"path/to/kodak --out {results_path.parent}` ({r['wall_s'] / 60:.1f} min). "
        f"Mean over the {len(r['dataset']['images'])} images of `{r['dataset']['name']}`; bpp from the real "
        f"file bytes (container included).",
        "", *lines, "", *bd_lines, "",
        f"Full BD-rate tables: [`{results_path.parent / 'bdrate.md'}`]({bd_md}); "
        f"raw numbers: [`{results_path}`]({raw}).", "",
        f"![Rate-distortion on Kodak]({plot})",
    ])


def speed_markdown(sp: dict, path: Path, page_dir: Path | None = None) -> str:
    """The speed block (docs/performance.md) from ``benchmarks/speed.py``'s results, linking ``path``
    relative to ``page_dir`` (the page's folder; None: as given). Parts the results lack (older
    runs: no runtime install, baseline, engines or classical codecs) are left out."""
    m = sp["machine"]
    steal = f", {m['steal_percent']} % of the CPU time taken by the host (steal)" if "steal_percent" in m else ""
    command = sp.get("command", "python -m benchmarks.speed --rss-megapixels 50")
    engines = ", ".join(f"{k} {m[k]}" for k in ("onnxruntime", "torch") if m.get(k))
    lines = [f"**Speed** (`{command}`, {sp['date']}, {m['cpu']}, {m['threads']} threads, {engines}, "
             f"quality {sp['quality']:g}{steal}; [`{path}`]({page_link(path, page_dir)})).", ""]
    if "runtime_install" in sp:
        ri = sp["runtime_install"]
        largest = ", ".join(f"{k} {v:g}" for k, v in ri["largest"].items())
        lines += [f"The runtime install (`pip install aecodec`, no torch) takes **{ri['venv_MB']:g} MB** on disk, "
                  f"{ri['site_packages_MB']:g} MB of them packages (largest, MB: {largest}).", ""]
    if "commands" in sp:
        c = sp["commands"]
        labels = {"floor": "`python -c \"import os, numpy, onnxruntime; os._exit(0)\"` (the runtime's floor)",
                  "import torch": "`python -c \"import os, torch; os._exit(0)\"` (the floor)",
                  "encode": "`aecodec encode -q 75`", "decode": "`aecodec decode` (to PNG)", "info": "`aecodec info`",
                  "baseline encode": "aecodec 0.1 (torch, CompressAI) `encode -q 75`",
                  "baseline decode": "aecodec 0.1 (torch, CompressAI) `decode`"}
        where = " by the runtime install" if "runtime venv" in str(c.get("runtime", "")) else ""
        lines += [f"Whole commands on {c['image']}{where}, start-up included (the interpreter, imports, loading the "
                  f"model, coding, writing the file), {c['repeat']} runs each, interleaved:", "",
                  "| command | min | median | peak RSS |", "|---|---:|---:|---:|"]
        for name, label in labels.items():
            if name in c:
                r = c[name]
                lines.append(f"| {label} | {r['min_s']:.2f} s | {r['median_s']:.2f} s | {r['peak_rss_MB']} MB |")
        lines.append("")
    lines += ["Through the Python API, model already loaded (median / minimum of the runs):", "",
              "| transforms | image | bpp | encode | decode | encode MP/s | decode MP/s |",
              "|---|---|---:|---:|---:|---:|---:|"]
    for r in sp["speed"]:
        enc, dec = (f"{r[f'{k}_s']:.2f}" + (f" / {r[f'{k}_min_s']:.2f}" if f"{k}_min_s" in r else "") + " s"
                    for k in ("encode", "decode"))
        lines.append(f"| {r.get('engine', r.get('device'))} | {r['size']} ({r['megapixels']} MP) | {r['bpp']:.3f} | "
                     f"{enc} | {dec} | {r['encode_MPps']} | {r['decode_MPps']} |")
    if sp.get("classical"):
        lines += ["", "The classical codecs on the same image through Pillow (median / minimum):", "",
                  "| codec | bpp | encode | decode |", "|---|---:|---:|---:|"]
        for r in sp["classical"]:
            lines.append(f"| {r['codec']} | {r['bpp']:.3f} | {1000 * r['encode_s']:.1f} / {1000 * r['encode_min_s']:.1f} ms "
                         f"| {1000 * r['decode_s']:.1f} / {1000 * r['decode_min_s']:.1f} ms |")
    pm = sp.get("peak_memory")
    if pm:
        lines += ["", f"**Peak memory** on a {pm['size']} ({pm['megapixels']} MP) photo, whole CLI process "
                      f"({pm['tool']}): encode {pm['encode_peak_rss_MB']} MB in {pm['encode_wall_s']} s, "
                      f"decode {pm['decode_peak_rss_MB']} MB in {pm['decode_wall_s']} s "
                      f"({pm['file_bytes']} bytes)."]
    return "\n".join(lines)


SPEED_PAGE = Path("docs/performance.md")  # the page that shows the speed block (benchmarks.speed)
BATCH_PAGE = Path("docs/batch.md")  # the page that shows the batch block (benchmarks.batch)


def page_link(path: Path | str, page_dir: Path | None) -> str:
    """``path`` (relative to the working directory) as a link from a page in ``page_dir``."""
    return str(path) if page_dir is None else os.path.relpath(Path(path).resolve(), Path(page_dir).resolve())


def replace_block(text: str, name: str, block: str) -> str:
    new, n = re.subn(rf"(<!-- {name}:begin -->\n).*?(\n<!-- {name}:end -->)",
                     lambda m: m.group(1) + block + m.group(2), text, flags=re.S)
    if n != 1:
        raise SystemExit(f"the page has no <!-- {name}:begin --> … <!-- {name}:end --> block")
    return new


def _bd_rows(r: dict) -> list[dict]:
    bd = r["bd_rate"]
    table = bd.get("pchip", bd)
    return table if isinstance(table, list) else table.get("rows", [])


def weights_record(r: dict, weights: Path) -> dict:
    from aecodec.models.checkpoint import read_checkpoint

    ckpt = read_checkpoint(weights)
    training = ckpt.get("training", {})
    chunks = training.get("chunks", [])
    return {
        "model_id": ckpt["model_id"], "weights_hash": ckpt["weights_hash"], "file": weights.name,
        "file_bytes": weights.stat().st_size, "storage": ckpt.get("storage", "fp32"),
        "architecture": ckpt["arch"], "config": ckpt["config"],
        "training": {"data": training.get("data"), "distortion": training.get("distortion"),
                     "batch_size": training.get("batch_size"), "crop": training.get("crop"),
                     "peak_lr": training.get("lr"), "steps": training.get("steps"),
                     "device_minutes": round(sum(c.get("minutes", 0) for c in chunks), 1),
                     "cpu_minutes": round(sum(c.get("minutes", 0) for c in chunks
                                              if not str(c.get("device", "cpu")).startswith("cuda")), 1),
                     "gpu_minutes": round(sum(c.get("minutes", 0) for c in chunks
                                              if str(c.get("device", "cpu")).startswith("cuda")), 1),
                     "devices": sorted({c.get("device_name", c.get("device")) for c in chunks}),
                     "chunks": chunks},
        "kodak": {"date": r["machine"]["date"][:10], "images": len(r["dataset"]["images"]),
                  "per_quality": [{k: p[k] for k in ("quality", "bpp", "psnr", "ms_ssim_db") if k in p}
                                  for p in r["codecs"]["aecodec"]["mean"]],
                  "bd_rate_psnr": {row["anchor"]: row.get("psnr") for row in _bd_rows(r) if row.get("test") == "aecodec"}},
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", type=Path, default=Path("benchmarks/results/kodak/results.json"))
    ap.add_argument("--readme", type=Path, default=Path("README.md"))
    ap.add_argument("--weights", type=Path)
    ap.add_argument("--speed", type=Path, default=Path("benchmarks/results/speed.json"))
    ap.add_argument("--speed-page", type=Path, default=SPEED_PAGE,
                    help="the page whose speed block is rewritten from --speed")
    a = ap.parse_args(argv)
    r = json.loads(a.results.read_text())
    text = a.readme.read_text()
    text = replace_block(text, "results", results_markdown(r, a.results, a.readme.parent.resolve()))
    a.readme.write_text(text)
    if a.speed.is_file():
        page = a.speed_page.read_text()
        a.speed_page.write_text(replace_block(page, "speed", speed_markdown(json.loads(a.speed.read_text()), a.speed,
                                                                           a.speed_page.parent)))
        print(f"updated {a.speed_page}")
    if a.weights:
        rec = weights_record(r, a.weights)
        a.weights.with_suffix(".json").write_text(json.dumps(rec, indent=1) + "\n")
        print(f"wrote {a.weights.with_suffix('.json')}")
    print(f"updated {a.readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
