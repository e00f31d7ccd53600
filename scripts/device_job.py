"""The GPU training job: pack its luggage here, run it there against a deadline, land its weights here.

    python scripts/device_job.py pack [--carry .carry]     here: wheels, all training photos, Kodak → .carry/
    bash scripts/device_train.sh                           there (one `run` call): preflight, train, export,
                                                           portability, speed → $OUT
    python scripts/device_job.py join FILES_AT [DEST]      here: reassemble the weights, check the checksum
    python scripts/device_job.py land WEIGHTS              here: full Kodak benchmark; ship only if better

The device machine has Python 3.12 and CUDA torch but neither compressai nor a network; a call carries
at most 64 MiB and brings back at most 8 files of ≤ 16 MiB, and the whole call may last 10 minutes.
So the job is planned backwards from a deadline (``DEADLINE`` seconds after ``JOB_START``, default
560 s = 9 min 20 s): a preflight (≤ 90 s) proves every stage on a few inputs and measures how long
each will take; training then stops early enough that the export and the checks still fit; the
weights are written to ``$OUT`` before anything optional runs, and ``job.json`` is rewritten after
every stage, so whatever was done comes back even if the call is killed.

Settings (environment): DEADLINE (560) DEVICE (cuda; cpu = the dry run the tests use) BATCH (auto,
or a number) BATCHES (16,32,64: what auto tries) CROP (256) LR (1e-4) ANNEAL (1: the LR decays to its
floor by the end of the chunk; 0: the global schedule of STEPS) COMPILE (auto: on CUDA, on where the
preflight's probe shows it pays; 0; 1; probe: auto on any device) AMP (bf16) REQUIRE_WHEELS (1 on
cuda) PORTABILITY_IMAGES (24) SPEED_MP (12) LOG_EVERY (200) CARRY (.carry). scripts/README.md has the
stages, the budget and the landing.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import io
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the working tree is the package there (nothing is installed)

LIMIT_MIB = 64  # what one device call carries, the working tree included
BACK_MIB = 15  # parts of the weights that come back (files of at most 16 MiB)
MARGIN_MIB = 1.5
# What the device machine lacks: training's entropy models, its loss, and the coder its evaluation
# codes real files with (format 3). The runtime bundle (onnx) is made by `land`, here.
WHEELS = {"compressai": "1.2.8", "pytorch_msssim": "1.0.0", "constriction": "0.5.0"}
KODAK_QUALITY = 95  # Kodak travels as JPEG 4:4:4 q 95 (4.5 MiB instead of 15)
PREFLIGHT_S = 90


def env(name: str, default: str) -> str:
    return os.environ.get(name, default)


# ============================================================================ here: pack
def tree_bytes() -> int:
    """Bytes of what a call carries besides .carry: tracked and untracked-not-ignored files."""
    out = subprocess.run(["git", "ls-files", "-z", "-co", "--exclude-standard"], cwd=ROOT,
                         capture_output=True, check=True).stdout.decode()
    return sum((ROOT / p).stat().st_size for p in out.split("\0") if p and (ROOT / p).is_file())


def fetch_wheels(dest: Path) -> None:
    """cp312 wheels for the device (compressai's is manylinux_2_34: name that platform)."""
    if all(glob.glob(str(dest / f"{n}-{v}-*.whl")) for n, v in WHEELS.items()):
        return
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                    "--python-version", "3.12", "--implementation", "cp",
                    *[a for p in ("manylinux_2_34_x86_64", "manylinux_2_28_x86_64", "manylinux_2_17_x86_64",
                                  "manylinux2014_x86_64") for a in ("--platform", p)],
                    "-d", str(dest), *[f"{n.replace('_', '-')}=={v}" for n, v in WHEELS.items()]], check=True)


def shrink(im, crop: int):
    """The training copy of a photo: half size, but the short side never under ``crop``."""
    from PIL import Image

    w, h = im.size
    s = min(1.0, max(crop / min(w, h), 0.5))
    if s < 1:
        im = im.resize((round(w * s), round(h * s)), Image.LANCZOS, reducing_gap=3.0)
    return im


def jpeg(im, quality: int) -> bytes:
    """JPEG 4:4:4 (chroma kept), Huffman-optimised where Pillow can: its optimising writer fails
    ("Suspension not allowed here") on a few small busy photos whose file outgrows w·h bytes."""
    buf = io.BytesIO()
    try:
        with libjpeg_quiet():
            im.save(buf, "JPEG", quality=quality, subsampling=0, optimize=True)
    except OSError:
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=quality, subsampling=0)
    return buf.getvalue()


@contextlib.contextmanager
def libjpeg_quiet():
    """libjpeg prints its warnings to the process's stderr (file descriptor 2): hold them back."""
    sys.stderr.flush()
    saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def pack(a) -> int:
    from PIL import Image

    from aecodec.codec.images import image_files, load_rgb

    carry = Path(a.carry)
    carry.mkdir(parents=True, exist_ok=True)
    if carry.resolve().is_relative_to(ROOT):  # git must ignore it, or it would travel twice
        exclude = Path(subprocess.run(["git", "rev-parse", "--git-path", "info/exclude"], cwd=ROOT,
                                      capture_output=True, text=True, check=True).stdout.strip())
        exclude = exclude if exclude.is_absolute() else ROOT / exclude
        rel = f"/{carry.resolve().relative_to(ROOT)}/"
        exclude.parent.mkdir(parents=True, exist_ok=True)
        if rel not in (exclude.read_text().splitlines() if exclude.is_file() else []):
            with exclude.open("a") as f:
                f.write(rel + "\n")
    for sub in ("kodak", "train"):
        shutil.rmtree(carry / sub, ignore_errors=True)
        (carry / sub).mkdir()
    if not a.no_wheels:
        fetch_wheels(carry / "wheels")
    if a.init:
        shutil.copy(a.init, carry / "init.pt")
    else:
        (carry / "init.pt").unlink(missing_ok=True)

    kodak = image_files([a.kodak])
    for p in kodak:
        (carry / "kodak" / f"{p.stem}.jpg").write_bytes(jpeg(Image.fromarray(load_rgb(p)), KODAK_QUALITY))

    files = image_files(a.train, recursive=True)
    if not files:
        print(f"pack: no photos in {', '.join(a.train)}", file=sys.stderr)
        return 2
    used = {"tree": tree_bytes(), "wheels": _size(carry / "wheels"), "init": _size(carry / "init.pt"),
            "kodak": _size(carry / "kodak")}
    budget = int((a.limit_mib - MARGIN_MIB) * 2**20) - sum(used.values())
    photos = [shrink(Image.fromarray(load_rgb(p)), a.crop) for p in files]
    # The JPEG quality that fits: estimated on every 4th photo, then confirmed on all of them.
    sample = photos[::4]
    q = next((q for q in range(a.max_quality, a.min_quality - 1, -1)
              if sum(len(jpeg(im, q)) for im in sample) * len(photos) / len(sample) <= budget), a.min_quality)
    while True:
        blobs = [jpeg(im, q) for im in photos]
        if sum(map(len, blobs)) <= budget or q <= a.min_quality:
            break
        q -= 1
    if sum(map(len, blobs)) > budget:
        print(f"pack: the {len(files)} photos need {sum(map(len, blobs)) / 2**20:.1f} MiB even at JPEG q {q}; "
              f"{budget / 2**20:.1f} MiB are left (tree {used['tree'] / 2**20:.1f} MiB)", file=sys.stderr)
        return 2
    for i, (p, blob) in enumerate(zip(files, blobs)):
        (carry / "train" / f"{i:05d}-{p.parent.name}-{p.stem}.jpg").write_bytes(blob)
    used["train"] = sum(map(len, blobs))
    manifest = {"photos": len(files), "sources": list(map(str, a.train)), "train_jpeg_quality": q,
                "train_megapixels": round(sum(im.width * im.height for im in photos) / 1e6, 1),
                "kodak_images": len(kodak), "kodak_jpeg_quality": KODAK_QUALITY, "crop_floor": a.crop,
                "limit_mib": a.limit_mib, "margin_mib": MARGIN_MIB,
                "mib": {k: round(v / 2**20, 2) for k, v in used.items()},
                "total_mib": round(sum(used.values()) / 2**20, 2), "bytes": dict(used)}
    (carry / "manifest.json").write_text(json.dumps(manifest, indent=1))
    print("what the call carries (MiB):")
    for k, v in manifest["mib"].items():
        print(f"  {k:7s} {v:6.2f}")
    print(f"  total   {manifest['total_mib']:6.2f} of {a.limit_mib} ({len(files)} of {len(files)} training photos, "
          f"{manifest['train_megapixels']} MP at JPEG q {q} 4:4:4; {len(kodak)} Kodak images)")
    return 0


def _size(p: Path) -> int:
    if p.is_file():
        return p.stat().st_size
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) if p.is_dir() else 0


# ============================================================================ there: the job
class JobFailed(Exception):
    def __init__(self, stage: str, message: str, hint: str = ""):
        super().__init__(message)
        self.stage, self.hint = stage, hint


class Job:
    """The state of one device job: its clock, its report (job.json) and its log."""

    def __init__(self, out: Path):
        self.out = out
        self.t0 = float(env("JOB_START", str(time.time())))
        self.deadline = self.t0 + float(env("DEADLINE", "560"))
        self.report: dict = {"started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self.t0)),
                             "deadline_s": round(self.deadline - self.t0, 1), "stages": {}}
        self.stage = "start"
        self.chunk = Path(tempfile.mkdtemp(prefix="aec-job-")) / "chunk.pt"  # resumable, saved every 1.5 min

    def now(self) -> float:
        return time.time() - self.t0

    def left(self) -> float:
        return self.deadline - time.time()

    def begin(self, stage: str) -> None:
        self.stage = stage
        print(f"[{self.now():6.1f} s] {stage}", flush=True)

    def done(self, stage: str, **facts) -> None:
        self.report["stages"][stage] = {"at_s": round(self.now(), 1), **facts}
        self.save()

    def save(self) -> None:
        (self.out / "job.json").write_text(json.dumps(self.report, indent=1, default=str))


def install_wheels(job: Job, carry: Path, require: bool) -> None:
    """Install the carried wheels that fit this Python; fail naming any that is missing."""
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    found, missing = [], []
    for name, version in WHEELS.items():
        fits = [w for w in sorted(glob.glob(str(carry / "wheels" / f"{name}-{version}-*.whl")))
                if f"-{tag}-" in w or "-py3-none-any" in w]
        if fits:
            found.append(fits[0])
        elif require:
            missing.append(f"{name}-{version}-{tag if name in ('compressai', 'constriction') else 'py3-none-any'}*.whl")
    if missing:
        raise JobFailed("wheels", f"missing wheel(s) in {carry / 'wheels'}: {', '.join(missing)}",
                        "run `python scripts/device_job.py pack` here and carry .carry")
    if found:
        site = Path("/tmp/aec-site")
        r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                            "--no-cache-dir", "--upgrade", "--target", str(site), *found],
                           capture_output=True, text=True)
        if r.returncode:
            raise JobFailed("wheels", f"pip could not install {', '.join(map(os.path.basename, found))}: "
                            f"{(r.stderr or r.stdout).strip().splitlines()[-1:]}")
        sys.path.insert(0, str(site))
    job.done("wheels", installed=[os.path.basename(w) for w in found])


def preflight(job: Job, carry: Path, device_name: str) -> dict:
    """Prove every stage on a few inputs; measure what the plan needs. Returns the facts."""
    import numpy as np
    import torch

    job.begin("import")
    import aecodec  # noqa: F401
    from aecodec.codec.images import image_files, load_rgb
    from aecodec.models.checkpoint import load_checkpoint
    from aecodec.models.zoo import DEFAULT_MODEL_ID, SHIPPED_DIR
    from aecodec.train import CropSampler, load_images, optimise, optimisers, set_bf16

    versions = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
                "numpy": np.__version__}
    try:
        import compressai  # noqa: F401  (aecodec registered it without its __init__)
        from importlib.metadata import version
        versions["compressai"] = version("compressai")
    except Exception as exc:  # a version we cannot read is not a failure; the import above was the test
        versions["compressai"] = f"unknown ({exc.__class__.__name__})"
    job.done("import", versions=versions)

    job.begin("device")
    if device_name == "cuda" and not torch.cuda.is_available():
        raise JobFailed("device", "DEVICE=cuda but torch sees no CUDA GPU", f"torch {torch.__version__}, "
                        f"CUDA build {torch.version.cuda}; set DEVICE=cpu for a dry run")
    device = torch.device(device_name)
    gpu = {"name": "cpu", "threads": torch.get_num_threads()}
    if device.type == "cuda":
        free, total = torch.cuda.mem_get_info()
        cap = torch.cuda.get_device_capability()
        gpu = {"name": torch.cuda.get_device_name(), "capability": f"{cap[0]}.{cap[1]}",
               "memory_free_gib": round(free / 2**30, 1), "memory_total_gib": round(total / 2**30, 1),
               "bf16": torch.cuda.is_bf16_supported()}
    print(f"device: {gpu}", flush=True)
    job.report["device"] = gpu
    job.done("device")

    job.begin("data")
    init = carry / "init.pt" if (carry / "init.pt").is_file() else SHIPPED_DIR / f"{DEFAULT_MODEL_ID}.pt"
    model, ckpt = load_checkpoint(init)
    photos = sorted((carry / "train").glob("*"))
    kodak = image_files([carry / "kodak"])
    if not photos or not kodak:
        raise JobFailed("data", f"{carry}/train has {len(photos)} photos, {carry}/kodak {len(kodak)} images",
                        "run `python scripts/device_job.py pack` here and carry .carry")
    crop = int(env("CROP", "256"))
    t = time.time()
    images = load_images([carry / "train"])
    load_s = time.time() - t
    job.done("data", init=str(init), init_weights=ckpt["weights_hash"], init_step=ckpt.get("training", {}).get("steps"),
             photos=len(photos), kodak=len(kodak), load_s=round(load_s, 1))

    job.begin("codec")  # one Kodak image encoded on the device and decoded on the CPU (exact path), and back
    from benchmarks import portability

    weights, times = str(init), {}

    def timed(key, fn):
        t = time.perf_counter()
        out = fn()
        sync(device)
        times[key] = time.perf_counter() - t
        return out

    rgb = load_rgb(kodak[0])
    aecodec.decode(aecodec.encode(rgb, 50.0, model=weights, device=device.type), model=weights, device=device.type)
    data = timed("encode", lambda: aecodec.encode(rgb, 50.0, model=weights, device=device.type))
    timed("decode", lambda: aecodec.decode(data, model=weights, device=device.type))
    both = {d: timed(d, lambda: portability.check(kodak[:1], e, c, (50.0,), model=weights, log=lambda s: None))
            for d, e, c in (("out", device.type, "cpu"), ("back", "cpu", device.type))}
    for d, r in both.items():
        row = r["images"][0]
        if not row["ok"]:
            raise JobFailed("codec", f"{r['encode_device']} → {r['decode_device']}: latents "
                            f"{'identical' if row['latents_identical'] else 'DIFFER'}, max pixel diff "
                            f"{row['max_pixel_diff']} (the exact path does not hold on this machine)")
        if row["psnr"] < 20:
            raise JobFailed("codec", f"decoded image is garbage (PSNR {row['psnr']:.1f} dB)")
    job.done("codec", image=kodak[0].name, bytes=len(data), psnr=both["out"]["images"][0]["psnr"],
             seconds={k: round(v, 3) for k, v in times.items()})
    job.begin("train-step")  # bf16 on the device, through the training loop's own step
    model.to(device).train().to(memory_format=torch.channels_last)
    set_bf16(model, env("AMP", "bf16") == "bf16")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    t = time.time()
    sampler = CropSampler(images[:64], crop, device)
    opt, aux_opt = optimisers(model, 1e-9)  # a real step that moves nothing measurable

    def steps(batch: int, n: int, forward=None) -> float:
        """Seconds per step at ``batch`` (the first step, which may compile or tune, not counted)."""
        for i in range(n + 1):
            if i == 1:
                sync(device)
                t = time.perf_counter()
            x = sampler.sample(batch).contiguous(memory_format=torch.channels_last)
            level = torch.randint(0, model.config.num_levels, (batch,), device=device)
            r, _ = optimise(model, opt, aux_opt, x, level, forward=forward)
        sync(device)
        if not torch.isfinite(r["loss"]):
            raise JobFailed("train-step", f"loss is {r['loss'].item()} at batch {batch}")
        return (time.perf_counter() - t) / n

    candidates = [int(b) for b in env("BATCHES", "16,32,64").split(",")] if env("BATCH", "auto") == "auto" \
        else [int(env("BATCH", "16"))]
    timing = {}
    for b in candidates:
        try:
            timing[b] = steps(b, 3 if device.type == "cpu" else 8)
        except torch.cuda.OutOfMemoryError:
            break
        print(f"  batch {b}: {timing[b] * 1000:.0f} ms/step, {b / timing[b]:.0f} crops/s", flush=True)
    if not timing:
        raise JobFailed("train-step", f"batch {candidates[0]} does not fit in the device's memory")
    best = max(b / s for b, s in timing.items())
    batch = min(b for b, s in timing.items() if b / s >= 0.85 * best)  # more updates when crops/s are alike
    job.done("train-step", seconds=round(time.time() - t, 1), crop=crop,
             ms_per_step={b: round(s * 1000, 1) for b, s in timing.items()},
             crops_per_s={b: round(b / s) for b, s in timing.items()}, batch=batch)
    job.report["preflight_s"] = round(job.now(), 1)  # every stage has been proven by now
    if job.now() > PREFLIGHT_S:
        print(f"warning: the preflight took {job.now():.0f} s (> {PREFLIGHT_S} s)", flush=True)

    # torch.compile, only where it pays for its compile time within this job: measured, not assumed.
    use_compile, mode = False, env("COMPILE", "auto")
    if mode == "1":
        use_compile = True
    elif mode == "auto" and device.type == "cuda" or mode == "probe":  # probe: on any device
        job.begin("compile-probe")
        try:
            t = time.perf_counter()
            compiled = steps(batch, 8, forward=torch.compile(model))
            first = time.perf_counter() - t - 8 * compiled  # the compile (and its first step)
            left = job.left() - 120  # roughly what training will have
            # training compiles again (from the cache this probe filled): count the whole cost once more
            use_compile = (left - first) / compiled > 1.05 * left / timing[batch]
            job.done("compile-probe", compile_s=round(first, 1), ms_per_step=round(compiled * 1000, 1),
                     eager_ms_per_step=round(timing[batch] * 1000, 1), use=use_compile)
            if use_compile:
                timing[batch] = compiled
        except Exception as exc:  # compile is an optimisation: its failure costs only its time
            job.done("compile-probe", failed=f"{exc.__class__.__name__}: {str(exc)[:300]}", use=False)
        print(f"  torch.compile: {'on' if use_compile else 'off'} ({job.report['stages']['compile-probe']})",
              flush=True)
    model = sampler = opt = aux_opt = None  # (the closure above holds them: free the GPU memory)
    if device.type == "cuda":
        torch.cuda.empty_cache()

    return {"compile": use_compile, "batch": batch, "step_s": timing[batch], "load_s": load_s, "codec_s": times,
            "init": init, "ckpt": ckpt, "crop": crop, "device": device, "kodak": kodak,
            "codec_mp": rgb.shape[0] * rgb.shape[1] / 1e6}


def sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def plan(job: Job, pf: dict) -> dict:
    """Work backwards from the deadline: what the stages after training need, measured by the preflight."""
    cs = pf["codec_s"]
    n = min(len(pf["kodak"]), int(env("PORTABILITY_IMAGES", "24")))
    mp = float(env("SPEED_MP", "12"))
    reserve = {
        "export_and_write": 15.0,
        "portability": 1.3 * n * (cs["out"] + cs["back"]) + 5,  # as timed on one image, each direction
        "speed": 1.5 * (mp / pf["codec_mp"]) * (3 * cs["encode"] + 2 * cs["decode"]) + 5,  # warm-up + timed runs
        "margin": 10.0,
    }
    load = pf["load_s"] * 1.5 + 5  # training loads the photos and builds the sampler again
    stop_at = job.deadline - sum(reserve.values())
    train_s = stop_at - time.time() - load
    if train_s < 10:
        raise JobFailed("plan", f"only {train_s:.0f} s would be left for training (reserve {reserve})",
                        "raise DEADLINE or lower PORTABILITY_IMAGES / SPEED_MP")
    expected_steps = int(train_s / pf["step_s"])
    p = {"train_until_s": round(stop_at - job.t0, 1), "train_s": round(train_s, 1),
         "expected_steps": expected_steps, "reserve_s": {k: round(v, 1) for k, v in reserve.items()},
         "portability_images": n, "speed_megapixels": mp}
    print(f"plan: train {train_s:.0f} s (≈ {expected_steps} steps of batch {pf['batch']}), then "
          + ", ".join(f"{k} {v:.0f} s" for k, v in reserve.items()), flush=True)
    job.report["plan"] = p
    job.save()
    return {**p, "stop_at": stop_at}


def run_training(job: Job, pf: dict, p: dict, carry: Path) -> Path:
    from aecodec.models.checkpoint import read_checkpoint
    from aecodec.train import TrainOptions, train

    job.begin("train")
    start_step = int(pf["ckpt"].get("training", {}).get("steps") or 0)
    lr = float(env("LR", "1e-4"))
    anneal = env("ANNEAL", "1") == "1"
    # ANNEAL: one whole cosine inside this chunk (warm-up = the steps already done), so the LR
    # reaches its floor as the chunk ends and the weights can ship as they are.
    steps = start_step + max(p["expected_steps"], 1) if anneal else int(env("STEPS", "200000"))
    o = TrainOptions(data=[carry / "train"], out=job.chunk, init_from=pf["init"],
                     steps=steps, warmup=start_step if anneal else 500, lr=lr, batch_size=pf["batch"],
                     crop=pf["crop"], amp=env("AMP", "bf16"), channels_last=True, compile=pf["compile"],
                     device=pf["device"].type, stop_at=p["stop_at"], save_every_minutes=1.5,
                     log_every=int(env("LOG_EVERY", "200")), progress=False)
    train(o, log=lambda s: print(s, flush=True))
    rec = read_checkpoint(o.out)["training"]["chunks"][-1]
    job.done("train", from_step=rec["from_step"], to_step=rec["to_step"], minutes=rec["minutes"],
             crops_per_s=rec["crops_per_s"], batch=pf["batch"], crop=pf["crop"], lr=lr, anneal=anneal,
             schedule_steps=steps)
    return o.out


def export_and_write(job: Job, chunk: Path) -> Path:
    """The mandatory end: fp32 weights in parts of ≤ 15 MiB, their checksum and record → $OUT."""
    import hashlib

    from aecodec.models.checkpoint import read_checkpoint
    from aecodec.train import export

    job.begin("export")
    weights = chunk.with_name("weights.pt")
    export(chunk, weights, storage="fp32", bundle=False, log=lambda s: print(s, flush=True))  # `land` makes the bundle
    data = weights.read_bytes()
    for i in range(0, len(data), BACK_MIB * 2**20):
        (job.out / f"weights.pt.part-{i // (BACK_MIB * 2**20):02d}").write_bytes(data[i:i + BACK_MIB * 2**20])
    (job.out / "weights.sha256").write_text(f"{hashlib.sha256(data).hexdigest()}  weights.pt\n")
    c = read_checkpoint(weights)
    (job.out / "record.json").write_text(json.dumps({"weights_hash": c["weights_hash"], "training": c["training"]},
                                                    indent=1))
    job.report["weights"] = {"hash": c["weights_hash"], "bytes": len(data), "step": c["training"].get("steps")}
    job.done("export", weights_hash=c["weights_hash"])
    return weights


def checks(job: Job, pf: dict, p: dict, weights: Path) -> None:
    """Optional, in the time left: portability both ways on the trained weights, then speed."""
    from benchmarks import portability, speed

    dev = pf["device"].type
    files = pf["kodak"][:p["portability_images"]]
    margin = p["reserve_s"]["margin"]
    job.begin("portability")
    res = {}
    for name, enc, dec, q in (("out", dev, "cpu", 75.0), ("back", "cpu", dev, 25.0)):
        r = portability.check(files, enc, dec, (q,), model=str(weights), stop_at=job.deadline - margin - 2,
                              log=lambda s: None)
        print(f"  {enc} → {dec} (q {q:g}): latents identical {r['latents_identical']}/{r['checked']} of "
              f"{r['planned']}, max pixel diff {r['max_pixel_diff']}", flush=True)
        rows = r["images"]
        d = res[f"{enc}->{dec}"] = {"quality": q, **{k: r[k] for k in ("planned", "checked", "latents_identical",
                                                                      "correct", "max_pixel_diff")}}
        if rows:  # the same files give the trained weights' rate and quality on (JPEG-carried) Kodak
            d["mean_bpp"] = round(sum(x["bpp"] for x in rows) / len(rows), 4)
            d["mean_psnr"] = round(sum(x["psnr"] for x in rows) / len(rows), 3)
        job.report["portability"] = res
        job.save()
    job.done("portability")

    job.begin("speed")
    mp = p["speed_megapixels"]
    if job.left() < margin + p["reserve_s"]["speed"] - 5:
        job.done("speed", skipped=f"{job.left():.0f} s left")
        return
    import numpy as np

    big = speed.mosaic(files[0].parent, mp)
    r = speed.speed(np.ascontiguousarray(big), dev, 75.0, repeat=1, model=str(weights))
    print(f"  {r}", flush=True)
    job.report["speed"] = r
    job.done("speed")


def device_main() -> int:
    out = Path(os.environ.get("OUT") or "")
    if not str(out) or not out.is_dir():
        print("device_job: OUT is unset or not a folder (run this on the device machine; the dry run sets it)",
              file=sys.stderr)
        return 2
    job = Job(out)
    carry = Path(env("CARRY", str(ROOT / ".carry")))
    device_name = env("DEVICE", "cuda")
    try:
        job.begin("wheels")
        install_wheels(job, carry, env("REQUIRE_WHEELS", "1" if device_name == "cuda" else "0") == "1")
        pf = preflight(job, carry, device_name)
        p = plan(job, pf)
        try:
            try:
                chunk, broke = run_training(job, pf, p, carry), None
            except Exception as exc:
                if not pf["compile"] or job.chunk.is_file() or job.left() < 120:
                    raise
                print(f"training under torch.compile broke ({exc.__class__.__name__}: {str(exc)[:200]}); "
                      "training again without it", flush=True)
                job.report["compile_broke"] = f"{exc.__class__.__name__}: {str(exc)[:300]}"
                pf["compile"] = False
                chunk, broke = run_training(job, pf, p, carry), None
        except Exception as exc:  # keep what the last periodic save holds, then say what broke
            chunk, broke = job.chunk, exc
            if not chunk.is_file():
                raise
            fail(job, exc)
            print(f"exporting the last save of the chunk ({job.chunk})", flush=True)
        weights = export_and_write(job, chunk)
    except BaseException as exc:  # the diagnostic block, then a non-zero exit at once
        return fail(job, exc)
    try:
        checks(job, pf, p, weights)
    except Exception as exc:  # the weights are out already; say what broke and keep them
        job.report["checks_failed"] = f"{job.stage}: {exc.__class__.__name__}: {exc}"
        print(f"check {job.stage} failed ({exc.__class__.__name__}: {exc}); the weights are in $OUT", flush=True)
        traceback.print_exc(limit=4)
    job.report["finished_s"] = round(job.now(), 1)
    job.save()
    if broke is not None:
        return 3
    print(f"[{job.now():6.1f} s] done; files in $OUT: {', '.join(sorted(f.name for f in out.iterdir()))}", flush=True)
    return 0


def fail(job: Job, exc: BaseException) -> int:
    stage = exc.stage if isinstance(exc, JobFailed) else job.stage
    lines = [f"==== device job FAILED at stage '{stage}' after {job.now():.1f} s ====",
             f"error: {exc.__class__.__name__}: {exc}"]
    if getattr(exc, "hint", ""):
        lines.append(f"hint: {exc.hint}")
    lines.append(f"python {platform.python_version()} ({sys.executable}); DEVICE={env('DEVICE', 'cuda')}; "
                 f"CARRY={env('CARRY', '.carry')}; cwd {os.getcwd()}")
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        lines.append(f"torch {torch.__version__} (CUDA {torch.version.cuda}), cuda available "
                     f"{torch.cuda.is_available()}")
    if not isinstance(exc, JobFailed):
        tb = traceback.extract_tb(exc.__traceback__)[-3:]
        lines += [f"  at {Path(f.filename).name}:{f.lineno} in {f.name}: {f.line}" for f in tb]
    lines.append("=" * len(lines[0]))
    print("\n".join(lines), file=sys.stderr, flush=True)
    job.report["failed"] = {"stage": stage, "error": f"{exc.__class__.__name__}: {exc}",
                            "hint": getattr(exc, "hint", "")}
    job.save()
    return 3


# ============================================================================ here: join and land
def join(a) -> int:
    import hashlib

    src = Path(a.files_at)
    parts = sorted(src.glob("weights.pt.part-*"))
    if not parts or not (src / "weights.sha256").is_file():
        print(f"join: no weights.pt.part-* and weights.sha256 in {src}", file=sys.stderr)
        return 2
    data = b"".join(p.read_bytes() for p in parts)
    want = (src / "weights.sha256").read_text().split()[0]
    if hashlib.sha256(data).hexdigest() != want:
        print(f"join: checksum mismatch ({len(parts)} parts, {len(data)} bytes): not written", file=sys.stderr)
        return 1
    dest = Path(a.dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(data)
    from aecodec.models.checkpoint import load_checkpoint

    _, c = load_checkpoint(dest)  # verifies the weights hash too
    print(f"{dest}: weights {c['weights_hash']}, step {c['training'].get('steps')}, checksum ok")
    if (src / "job.json").is_file():
        job = json.loads((src / "job.json").read_text())
        print(json.dumps({k: job.get(k) for k in ("device", "plan", "portability", "speed", "failed")}, indent=1))
    return 0


def land(a) -> int:
    """Benchmark WEIGHTS on all of Kodak (with every codec, as the README shows them) and ship them
    only if their BD-rate against JPEG 4:2:0 beats the shipped weights' by at least --min-gain points."""
    from aecodec.models.bundle import bundle_path
    from aecodec.models.checkpoint import load_checkpoint
    from aecodec.models.zoo import DEFAULT_MODEL_ID, SHIPPED_DIR
    from aecodec.train import export

    shipped = SHIPPED_DIR / f"{DEFAULT_MODEL_ID}.pt"
    files = [shipped, bundle_path(shipped)]  # the weights and their runtime bundle (export writes both)
    record = json.loads(shipped.with_suffix(".json").read_text())
    before = record["kodak"]["bd_rate_psnr"]["jpeg-420"]
    _, c = load_checkpoint(a.weights)  # readable, hash verified
    kept = [f.with_name(f.name + ".keep") for f in files]
    for f, k in zip(files, kept):
        shutil.copy(f, k)

    def restore():
        for f, k in zip(files, kept):
            shutil.move(k, f)

    results = ROOT / "benchmarks/results/kodak"
    tmp = Path(tempfile.mkdtemp(prefix="aec-land-"))
    try:
        digest = export(Path(a.weights), shipped, storage="mixed")  # CDF tables computed here, once
        r = subprocess.run([sys.executable, "-m", "benchmarks.rd", "--dataset", a.kodak, "--out", str(tmp),
                            "--no-progress"], cwd=ROOT)
        if r.returncode:
            raise SystemExit(f"land: the benchmark failed (exit {r.returncode}); shipped weights unchanged")
        rows = json.loads((tmp / "results.json").read_text())["bd_rate"]["pchip"]
        bd = {x["anchor"]: x["psnr"] for x in rows if x["test"] == "aecodec" and x["psnr"] is not None}
        after = bd["jpeg-420"]
        print("BD-rate (PSNR, PCHIP) of the candidate vs " + ", ".join(f"{k} {v:+.1f} %" for k, v in bd.items()))
        print(f"vs JPEG 4:2:0: shipped {record['weights_hash']} {before:+.1f} %, candidate {digest} {after:+.1f} %")
        if not after <= before - a.min_gain:
            raise SystemExit(f"land: not better by {a.min_gain} points; shipped weights unchanged")
    except BaseException:
        restore()
        raise
    if a.check:
        restore()
        print(f"land --check: these weights would land (results in {tmp}); shipped weights unchanged")
        return 0
    for k in kept:
        k.unlink()
    shutil.rmtree(results, ignore_errors=True)
    shutil.copytree(tmp, results)
    subprocess.run([sys.executable, "-m", "benchmarks.report", "--results",
                    str((results / "results.json").relative_to(ROOT)), "--readme", "README.md",
                    "--weights", str(shipped.relative_to(ROOT))], cwd=ROOT, check=True)
    print(f"shipped {c['model_id']}@{digest}: BD-rate vs JPEG {before:+.1f} % → {after:+.1f} %")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack", help="fill .carry/ with wheels, all training photos and Kodak")
    p.add_argument("--carry", default=str(ROOT / ".carry"))
    p.add_argument("--train", nargs="+", default=[str(ROOT.parent / "shared/datasets/train")])
    p.add_argument("--kodak", default=str(ROOT.parent / "shared/datasets/kodak"))
    p.add_argument("--init", help="weights to start from (default: the shipped weights, which travel anyway)")
    p.add_argument("--crop", type=int, default=256, help="no photo's short side is shrunk below this")
    p.add_argument("--limit-mib", type=float, default=LIMIT_MIB)
    p.add_argument("--max-quality", type=int, default=95)
    p.add_argument("--min-quality", type=int, default=75)
    p.add_argument("--no-wheels", action="store_true", help="do not download the cp312 wheels (dry runs)")
    sub.add_parser("device", help="the job itself (on the device machine; DEVICE=cpu for a dry run)")
    p = sub.add_parser("join", help="reassemble and check the weights that came back")
    p.add_argument("files_at")
    p.add_argument("dest", nargs="?", default="runs/gpu-chunk.pt")
    p = sub.add_parser("land", help="benchmark weights on Kodak; ship them only if better")
    p.add_argument("weights")
    p.add_argument("--kodak", default=str(ROOT.parent / "shared/datasets/kodak"))
    p.add_argument("--min-gain", type=float, default=2.0, help="BD-rate points vs JPEG the weights must win by")
    p.add_argument("--check", action="store_true", help="benchmark and compare only; ship nothing")
    a = ap.parse_args(argv)
    return {"pack": pack, "device": lambda _: device_main(), "join": join, "land": land}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
