"""Rate–distortion cost of the exact (fixed-point) entropy path against plain floating point.

    python -m benchmarks.exact_cost --dataset ../shared/datasets/kodak --out benchmarks/results/exact-cost.json

Same weights, same machine, real bitstreams both ways: the "float" variant computes h_s in
float32 with the raw (unquantised) weights and activations and picks CDF indexes as CompressAI
does; the "exact" variant is what aecodec ships. Reports mean bpp / PSNR per quality and the
BD-rate (PSNR) of exact vs float.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch.nn.functional as F

from aecodec.codec import api
from aecodec.codec import format as fmt
from aecodec.codec.format import Layout
from aecodec.codec.images import image_files, load_rgb
from aecodec.metrics import psnr

from .bdrate import bd_rate


def float_variant(net):
    """A private copy of ``net`` whose h_s runs in plain float32 with CompressAI's index rule (the
    shared, cached model is left as it is)."""
    m = copy.deepcopy(net)

    def entropy_parameters(z_hat):
        x = z_hat.float()
        for i, layer in enumerate(m.h_s.layers):
            x = layer(x)
            if i < len(m.h_s.layers) - 1:
                x = F.relu(x)
        scales, means = x.chunk(2, 1)
        return m.gaussian_conditional.build_indexes(scales), means

    m.entropy_parameters = entropy_parameters
    return m


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", type=Path, default=Path("../shared/datasets/kodak"))
    ap.add_argument("--qualities", type=float, nargs="+", default=[0, 25, 50, 75, 100])
    ap.add_argument("--out", type=Path)
    a = ap.parse_args(argv)
    net, model_id, digest = api.load_model()
    images = [load_rgb(f) for f in image_files([a.dataset])]
    curves = {}
    t0 = time.time()
    for variant, m in (("exact", net), ("float", float_variant(net))):
        bpps, psnrs = [], []
        for q in a.qualities:
            b, p = [], []
            for img in images:  # the codec's own path (tiles, container), with this variant's h_s
                data = api.encode_with(m, model_id, digest, img, None, Layout.RGB, api.check_quality(q))
                out = np.asarray(api.decode_with(m, fmt.unpack(data)))
                b.append(8 * len(data) / (img.shape[0] * img.shape[1]))
                p.append(psnr(img, out))
            bpps.append(float(np.mean(b)))
            psnrs.append(float(np.mean(p)))
            print(f"{variant} q{q:g}: {bpps[-1]:.4f} bpp {psnrs[-1]:.3f} dB", flush=True)
        curves[variant] = {"bpp": bpps, "psnr": psnrs}
    bd = bd_rate(curves["float"]["bpp"], curves["float"]["psnr"], curves["exact"]["bpp"], curves["exact"]["psnr"])
    result = {"model": f"{model_id}@{digest}", "images": len(images), "qualities": a.qualities,
              "curves": curves, "bd_rate_exact_vs_float_percent": bd,
              "seconds": round(time.time() - t0, 1)}
    print(f"BD-rate (PSNR) of the exact path vs float: {bd:+.3f} %")
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
