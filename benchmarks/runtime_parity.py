"""The runtime and the torch path give the same pictures: Kodak through both, every file decoded by both.

    python -m benchmarks.runtime_parity --out benchmarks/results/runtime-parity.json

The runtime runs g_a, h_a and g_s in onnxruntime (the shipped bundle) and h_s's exact path in numpy;
the torch path is the same codec on the shipped checkpoint's torch model (its g_a, h_a, g_s, and
its own exact h_s in torch, ``models/fixed_point.py``). For each Kodak image and quality, each path
encodes a file, and each file is decoded by both. Recorded per quality: whether every file decoded
to identical latents ŷ by both paths (and the torch exact h_s gave the numpy one's CDF indexes and
means on every tile), the largest pixel difference between the two decodes of a file, how many
values differ, the mean PSNR of each path's decode, and the mean bpp of each path's files.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date
from pathlib import Path

import numpy as np

from aecodec.codec import api
from aecodec.codec import format as fmt
from aecodec.codec.images import image_files, load_rgb
from aecodec.device import cpu_name
from aecodec.metrics import psnr
from aecodec.models import runtime
from aecodec.models.zoo import DEFAULT_MODEL_ID, SHIPPED_DIR


def torch_entropy_parameters_agree(torch_net, data: bytes) -> bool:
    """Whether the torch model's exact h_s gives the numpy path's CDF indexes and means on every
    tile of a file (from the z_hat the runtime decoded)."""
    import torch

    ok = []

    def check(_rect, lat):
        indexes, means = torch_net.entropy_parameters(torch.from_numpy(lat["z_hat"]))
        ok.append(np.array_equal(indexes.numpy(), lat["indexes"]) and np.array_equal(means.numpy(), lat["means"]))

    api.decode_with(runtime.load(), fmt.unpack(data), on_tile=check)
    return all(ok)


def run(kodak: Path, qualities: list[float], limit: int | None = None) -> dict:
    paths = {"runtime": runtime.load(), "torch": runtime.load(SHIPPED_DIR / f"{DEFAULT_MODEL_ID}.pt")}
    torch_net = paths["torch"].torch_model()
    rows = []
    for q in qualities:
        stats = {"quality": q, "images": 0, "identical_latents": True, "torch_exact_h_s_agrees": True,
                 "max_pixel_difference": 0, "values_differing": 0, "values": 0,
                 "psnr": {"runtime": [], "torch": []}, "bpp": {"runtime": [], "torch": []}}
        for f in image_files([kodak])[:limit]:
            rgb = load_rgb(f)
            for writer, net in paths.items():
                data = api.encode_with(net, net.model_id, net.weights_hash, rgb, None, fmt.Layout.RGB,
                                       api.check_quality(q))
                stats["bpp"][writer].append(8 * len(data) / (rgb.shape[0] * rgb.shape[1]))
                c = fmt.unpack(data)
                latents = {reader: api.decode_latents(data, model=None if reader == "runtime" else
                                                      SHIPPED_DIR / f"{DEFAULT_MODEL_ID}.pt")
                           for reader in paths}
                stats["identical_latents"] &= bool(np.array_equal(latents["runtime"], latents["torch"]))
                stats["torch_exact_h_s_agrees"] &= torch_entropy_parameters_agree(torch_net, data)
                pixels = {reader: np.asarray(api.decode_with(m, c)).astype(int) for reader, m in paths.items()}
                diff = np.abs(pixels["runtime"] - pixels["torch"])
                stats["max_pixel_difference"] = max(stats["max_pixel_difference"], int(diff.max()))
                stats["values_differing"] += int((diff > 0).sum())
                stats["values"] += diff.size
                if writer == "runtime":  # PSNR of the same file decoded by each path
                    for reader in paths:
                        stats["psnr"][reader].append(psnr(rgb, pixels[reader].astype(np.uint8)))
            stats["images"] += 1
        for key in ("psnr", "bpp"):
            stats[key] = {k: round(float(np.mean(v)), 4) for k, v in stats[key].items()}
        stats["psnr_difference_dB"] = round(stats["psnr"]["runtime"] - stats["psnr"]["torch"], 4)
        rows.append(stats)
        print(json.dumps(stats), flush=True)
    return {"date": str(date.today()), "cpu": cpu_name(), "dataset": str(kodak), "qualities": rows}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kodak", type=Path, default=Path("../shared/datasets/kodak"))
    ap.add_argument("--qualities", default="25,50,75")
    ap.add_argument("--limit", type=int, help="only the first N images")
    ap.add_argument("--out", type=Path)
    a = ap.parse_args(argv)
    result = {"command": " ".join(["python -m benchmarks.runtime_parity", *(argv if argv is not None else sys.argv[1:])]),
              **run(a.kodak, [float(q) for q in a.qualities.split(",")], a.limit)}
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(result, indent=1))
    ok = all(r["identical_latents"] and r["torch_exact_h_s_agrees"] and r["max_pixel_difference"] <= 1
             for r in result["qualities"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
