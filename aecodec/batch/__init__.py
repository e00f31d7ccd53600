"""Batch jobs over a corpus, spread over the cores of a machine or a Ray cluster:
``aecodec batch encode SRC DST``, ``batch decode SRC DST`` and ``batch rd SRC -o OUT``.

Layers: :mod:`~aecodec.batch.work` (the job's options, its items, the work on one item — no Ray),
:mod:`~aecodec.batch.engine` (Ray Data: a pool of actors over the items), and :func:`run_job` here
(the items in, the manifest and the summary out). The core package never imports this.

A job writes ``manifest.jsonl`` beside its outputs: one JSON row per input (input, output,
status done / skipped / failed, width, height, bytes, bpp, bytes in / out, seconds, error, worker),
in the order the images finished: appended to ``manifest.jsonl.partial`` as each finishes (so an
interrupted job leaves a record of what it did), renamed to ``manifest.jsonl`` at the end. Nothing
per image is kept in the driver's memory, so a job of millions of images needs no more of it.
A rerun skips each output that is already there and verifies (:class:`~aecodec.batch.work.Worker`);
``force`` redoes them.

Outputs never touch inputs (:func:`~aecodec.batch.work.plan`): a destination that is the source
folder or inside it, or an output that resolves to an input, is refused before any work, ``force``
or not. A file at an output path that fails to verify is replaced only if the manifest of an
earlier run lists it as written by the job, or with ``force``. A job whose cluster fails partway
(a node or worker dying, an object lost, the connection gone) raises :class:`JobFailed` saying
what failed and where, and keeps ``manifest.jsonl.partial``, the rows of the images that
finished: the name says the job did not finish, and a rerun resumes from the outputs it lists.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

from ..errors import BatchError
from .engine import JobFailed
from .work import ATTEMPTS_DIR, KINDS, RD_QUALITIES, Item, Job, plan

__all__ = ["Job", "Summary", "JobFailed", "run_job", "read_manifest", "rd_curve", "KINDS", "RD_QUALITIES"]

MANIFEST = "manifest.jsonl"


@dataclass
class Summary:
    """What a job did: counts by status, pixels, bytes in and out (of the images not failed), the
    wall time (engine start included) and the pool."""

    job: Job
    images: int = 0
    done: int = 0
    skipped: int = 0
    failed: int = 0
    megapixels: float = 0.0
    bytes_in: int = 0
    bytes_out: int = 0
    seconds: float = 0.0
    pool: str = ""
    manifest: str = ""

    def add(self, row: dict) -> None:
        setattr(self, row["status"], getattr(self, row["status"]) + 1)
        if row["status"] != "failed":
            self.megapixels += (row.get("width") or 0) * (row.get("height") or 0) / 1e6
            self.bytes_in += row.get("bytes_in") or 0
            self.bytes_out += row.get("bytes_out") or 0

    @property
    def images_per_second(self) -> float:
        return self.done / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        verb = {"encode": "encoded", "decode": "decoded", "rd": "measured"}[self.job.kind]
        parts = [f"{self.done} {verb}"] + ([f"{self.skipped} skipped (already done)"] if self.skipped else []) \
            + ([f"{self.failed} failed"] if self.failed else [])
        flow = f"; {_mb(self.bytes_in)} → {_mb(self.bytes_out)}" if self.job.kind != "rd" else ""
        return (f"{self.images} images ({self.megapixels:.1f} MP): {', '.join(parts)}{flow}; "
                f"{self.seconds:.1f} s, {self.images_per_second:.2f} images/s on {self.pool}")

    def to_dict(self) -> dict:
        return {"job": self.job.to_dict(), "images": self.images, "done": self.done, "skipped": self.skipped,
                "failed": self.failed, "megapixels": round(self.megapixels, 3), "bytes_in": self.bytes_in,
                "bytes_out": self.bytes_out, "seconds": round(self.seconds, 3),
                "images_per_second": round(self.images_per_second, 4), "pool": self.pool, "manifest": self.manifest}


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.1f} kB"


def read_manifest(path: str | os.PathLike) -> list[dict]:
    """The rows of a manifest (an unreadable line — a job killed mid-write — is skipped)."""
    return list(_rows(path))


def _rows(path: str | os.PathLike) -> Iterator[dict]:
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                try:
                    row = json.loads(line)
                except ValueError:
                    continue
                if isinstance(row, dict):
                    yield row
    except FileNotFoundError:
        return


def run_job(job: Job, src: str | os.PathLike, dst: str | os.PathLike, *, manifest: str | os.PathLike | None = None,
            on_row: Callable[[dict], None] | None = None, on_start: Callable[[int, str], None] | None = None,
            watch: bool = False, **engine) -> Summary:
    """Run ``job`` on the inputs under ``src`` with outputs (and, by default, the manifest) under
    ``dst``; ``engine`` goes to :func:`aecodec.batch.engine.connected` (address, workers,
    cpus_per_worker, gpus_per_worker). ``on_start(n, pool)`` is called once the pool is planned,
    ``on_row(row)`` per finished item. A job that cannot start (no Ray, no cluster at the address,
    a pool larger than the cluster, a missing ``src``, a ``dst`` inside ``src``, an output onto an
    input, a manifest path holding something else) raises a :class:`~aecodec.errors.CodecError`
    (:class:`~aecodec.errors.BatchError` for the engine's and the folders' reasons) before any
    folder or file is made; one whose cluster fails partway raises :class:`JobFailed`, the
    manifest's ``.partial`` file kept. ``watch`` (the command line's): if Ray ends this process
    (:func:`~aecodec.batch.engine.driver_watched`), a watcher says so in one line on stderr."""
    from . import engine as ray_engine

    start = time.perf_counter()
    ray_engine.ray_or_error()  # no Ray: said before the listing, which can take long
    dst = Path(dst)
    manifest = Path(manifest) if manifest is not None else dst / MANIFEST
    partial = manifest.with_name(manifest.name + ".partial")
    others = (manifest, partial) + ((dst / "rd.json", dst / "rd.png") if job.kind == "rd" else ())
    items = plan(job, src, dst, others)
    _check_manifest(manifest, job.force)
    _check_manifest(partial, job.force)
    _mark_owned(items, dst, itertools.chain(_rows(manifest), _rows(partial)),
                tail=os.path.realpath(manifest.parent) == os.path.realpath(dst))
    summary = Summary(job, images=len(items), manifest=str(manifest))
    with ray_engine.connected(**engine) as pool:
        summary.pool = pool.describe()
        if job.kind == "rd":
            _attach_previous(items, itertools.chain(_rows(manifest), _rows(partial)))
        dst.mkdir(parents=True, exist_ok=True)
        manifest.parent.mkdir(parents=True, exist_ok=True)
        _remove_leftovers(dst, items)
        if on_start is not None:
            on_start(len(items), summary.pool)
        with open(partial, "w", encoding="utf-8") as log:
            def row_done(row: dict) -> None:
                summary.add(row)
                log.write(json.dumps(row) + "\n")
                log.flush()
                if on_row is not None:
                    on_row(row)

            try:
                with ray_engine.driver_watched(partial, len(items)) if watch else contextlib.nullcontext():
                    ray_engine.run(job, items, pool, row_done)
            except KeyboardInterrupt:  # the images being worked on were stopped, not deadly: forget their attempts
                shutil.rmtree(dst / ATTEMPTS_DIR, ignore_errors=True)
                raise
            except JobFailed as exc:  # the attempt markers stay: a worker that died counts
                finished = summary.done + summary.skipped + summary.failed
                raise JobFailed(f"batch job stopped: {exc}; {finished} of {len(items)} images finished, their rows "
                                f"are in {partial}, and a rerun resumes") from None
            finally:
                os.fsync(log.fileno())
    os.replace(partial, manifest)
    summary.seconds = time.perf_counter() - start
    with contextlib.suppress(OSError):  # the workers' attempt markers: gone unless a worker died mid-image
        (dst / ATTEMPTS_DIR).rmdir()
    if job.kind == "rd":
        _write_rd(job, manifest, dst, summary)
    return summary


def _check_manifest(path: Path, force: bool) -> None:
    """Refuse a manifest path (or its ``.partial``) that holds something other than a manifest — a
    folder, or a file whose first line is not a row — unless ``force`` (a file): it is written over."""
    if path.is_dir():
        raise BatchError(f"{path}: is a directory (the manifest is written there)")
    if force or not os.path.lexists(path):
        return
    try:
        with open(path, "rb") as f:
            first = f.readline(1 << 16).strip()
        row = json.loads(first) if first else {}
    except (OSError, ValueError):
        row = None
    if not isinstance(row, dict) or first and not {"input", "status"} <= row.keys():
        raise BatchError(f"{path}: already exists and is not a manifest of aecodec batch "
                         "(the manifest is written there; use --force to overwrite)")


def _mark_owned(items: list[Item], dst: Path, rows: Iterable[dict], tail: bool) -> None:
    """Mark the items whose output an earlier run of the job wrote (a done or skipped row names it),
    so that a worker may replace it when it fails to verify. With the manifest in ``dst`` (``tail``)
    a row counts for the item of the same input whose output lies at the same place under ``dst``
    (a folder moved since is still the job's); a manifest elsewhere must name the very path."""
    written = [r for r in rows if r.get("status") in ("done", "skipped") and isinstance(r.get("output"), str)
               and isinstance(r.get("input"), str)]
    if not written:
        return
    if not tail:
        keys = {os.path.abspath(r["output"]) for r in written}
        for item in items:
            item.owned = item.dst in keys
        return
    base = os.path.abspath(dst)
    under = {item.index: Path(os.path.relpath(item.dst, base)).parts for item in items if item.dst}
    depth = max(map(len, under.values()), default=0)
    keys = {(os.path.abspath(r["input"]), parts[-k:]) for r in written for parts in [Path(r["output"]).parts]
            for k in range(1, min(depth, len(parts)) + 1)}
    for item in items:
        item.owned = item.index in under and (item.src, under[item.index]) in keys


def _remove_leftovers(dst: Path, items: list[Item]) -> None:
    """Temp files of this job's outputs that a killed worker left under ``dst`` (an interrupted or
    crashed run): removed before the work, in one walk of ``dst``."""
    from ..codec.files import temp_target

    outputs = {item.dst for item in items if item.dst}
    if not outputs:
        return
    for folder, _, names in os.walk(dst):
        for name in names:
            target = temp_target(Path(folder) / name)
            if target is not None and os.path.abspath(target) in outputs:
                (Path(folder) / name).unlink(missing_ok=True)


def _attach_previous(items: list[Item], rows: Iterable[dict]) -> None:
    """rd: give each item its row of an earlier run (the last one) for the worker to reuse."""
    last = {r.get("input"): r for r in rows}
    for item in items:
        item.previous = last.get(item.input)


RD_KEYS = ("bpp", "psnr", "ms_ssim_db", "encode_s", "decode_s")
_UNIT = 10**6  # the rows' values have at most 6 decimals (work.py rounds them): summed as integers of 1e-6


def rd_curve(rows: Iterable[dict], qualities) -> list[dict]:
    """The mean rate–distortion curve of rd rows (one pass; any iterable): per quality, the images
    measured, mean bpp, PSNR, MS-SSIM (dB; over the images large enough for it), seconds. The sums
    are exact, so the curve does not depend on the rows' order (the order images finished in)."""
    images = [0] * len(qualities)
    sums = [dict.fromkeys(RD_KEYS, 0) for _ in qualities]
    counts = [dict.fromkeys(RD_KEYS, 0) for _ in qualities]
    for r in rows:
        if r["status"] == "failed":
            continue
        for i, p in enumerate((r.get("points") or [])[:len(qualities)]):
            images[i] += 1
            for key in RD_KEYS:
                if p.get(key) is not None:
                    sums[i][key] += round(p[key] * _UNIT)
                    counts[i][key] += 1
    return [{"quality": q, "images": images[i],
             **{k: round(sums[i][k] / counts[i][k] / _UNIT, 4) if counts[i][k] else None for k in RD_KEYS}}
            for i, q in enumerate(qualities)]


def _write_rd(job: Job, manifest: Path, out: Path, summary: Summary) -> None:
    """rd.json (the job, its summary and the mean curve) and rd.png (PSNR and MS-SSIM against bpp;
    only with matplotlib, the [plots] extra)."""
    from ..codec.files import write_atomic
    from ..reports import has_matplotlib

    curve = rd_curve(_rows(manifest), job.qualities)
    models = sorted({r["model"] for r in _rows(manifest) if r.get("model")})
    doc = {**summary.to_dict(), "model": models[0] if len(models) == 1 else models, "curve": curve}
    write_atomic(out / "rd.json", (json.dumps(doc, indent=2) + "\n").encode(), overwrite=True)
    if has_matplotlib() and any(p["bpp"] is not None for p in curve):
        write_atomic(out / "rd.png", _rd_plot(curve, f"aecodec on {summary.images - summary.failed} images"),
                     overwrite=True)


def _rd_plot(curve: list[dict], title: str) -> bytes:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, label in zip(axes, ("psnr", "ms_ssim_db"), ("PSNR (dB)", "MS-SSIM (dB)")):
        pts = [(p["bpp"], p[key]) for p in curve if p["bpp"] is not None and p[key] is not None]
        if pts:
            ax.plot(*zip(*pts), "o-", label="aecodec (mean)")
        ax.set_xlabel("bits per pixel")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()
