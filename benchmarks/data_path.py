"""The training data path against torchvision's: is the hand-written part at least as fast?

    python -m benchmarks.data_path --out benchmarks/results/data-path.json

Two measurements on the training photos:

* **decode** — a photo file to a uint8 (3, H, W) tensor: the codec's loader
  (:func:`aecodec.codec.images.load_rgb`, Pillow; EXIF orientation, 16-bit, palettes) against
  ``torchvision.io.decode_image``;
* **crops** — a batch of random crops with random horizontal flips, as floats in [0, 1]:
  :class:`aecodec.train.CropSampler` (the whole batch in one gather) against
  ``torchvision.transforms.v2`` (``RandomCrop`` + ``RandomHorizontalFlip`` per crop, then a stack),
  both from the same pre-scaled copies, on the CPU and, where there is one, on the GPU.

Each is timed as the median of several repeats; "unavailable" (with the reason) when torchvision
cannot do it here — e.g. a CUDA build of torchvision beside a CPU torch, whose image extension
does not load.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent


def _torchvision():
    """torchvision, or the reason it cannot be imported. A CUDA build beside a CPU torch lacks its
    ``nms`` operator schemas; registering them (../shared/ENVIRONMENT.md) lets its Python parts load."""
    try:
        import torchvision
        return torchvision, None
    except RuntimeError as exc:
        if "torchvision::nms" not in str(exc):
            return None, str(exc).splitlines()[0]
    for name in list(sys.modules):
        if name.startswith("torchvision"):
            del sys.modules[name]
    lib = torch.library.Library("torchvision", "FRAGMENT")
    for op in ("nms", "qnms"):
        lib.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _torchvision.lib = lib  # keep the registration alive
    try:
        import torchvision
        return torchvision, "CUDA build beside a CPU torch: nms schemas registered by hand"
    except Exception as exc:
        return None, str(exc).splitlines()[0]


def _median_s(fn, repeat: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def decode(files: list[Path]) -> dict:
    from aecodec.codec.images import load_rgb

    out = {"photos": len(files),
           "pillow_ms_per_photo": 1e3 * _median_s(lambda: [load_rgb(f) for f in files], 3) / len(files)}
    try:
        from torchvision.io import decode_image, read_file
        out["torchvision_ms_per_photo"] = 1e3 * _median_s(lambda: [decode_image(read_file(str(f))) for f in files], 3) / len(files)
    except Exception as exc:
        out["torchvision"] = f"unavailable: {str(exc).splitlines()[0]}"
    return out


def crops(images: list[torch.Tensor], crop: int, batch: int, device: torch.device, tv) -> dict:
    from aecodec.train import CropSampler

    sampler = CropSampler(images, crop, device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def ours():
        sampler.sample(batch)
        sync()

    out = {"device": str(device), "batch": batch, "crop": crop,
           "crop_sampler_ms": 1e3 * _median_s(ours, 50)}
    if tv is None:
        out["torchvision"] = "unavailable"
        return out
    from torchvision.transforms import v2

    t = v2.Compose([v2.RandomCrop(crop), v2.RandomHorizontalFlip()])
    copies = [im.to(device) for im in images if min(im.shape[1:]) >= crop]

    def theirs():
        idx = torch.randint(0, len(copies), (batch,)).tolist()
        torch.stack([t(copies[i]) for i in idx]).float().div_(255)
        sync()

    out["torchvision_v2_ms"] = 1e3 * _median_s(theirs, 50)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.data_path", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared/datasets/train")
    p.add_argument("--photos", type=int, default=48, help="photos to decode and cut crops from")
    p.add_argument("--crop", type=int, default=128)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=None, help="write the results here (JSON)")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    from aecodec.codec.images import image_files, load_rgb
    from benchmarks.rd import machine_info

    tv, note = _torchvision()
    files = image_files([a.data], recursive=True)[: a.photos]
    images = [torch.from_numpy(load_rgb(f).transpose(2, 0, 1).copy()) for f in files]
    r = {"machine": machine_info(), "threads": a.threads, "torchvision": getattr(tv, "__version__", None),
         "torchvision_note": note, "decode": decode(files),
         "crops": [crops(images, a.crop, a.batch, torch.device("cpu"), tv)]}
    if torch.cuda.is_available():
        r["crops"].append(crops(images, a.crop, 64, torch.device("cuda"), tv))
    text = json.dumps(r, indent=1) + "\n"
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(text)
    print(json.dumps({k: r[k] for k in ("torchvision", "torchvision_note", "decode", "crops")}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
