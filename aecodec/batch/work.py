"""What a batch job does, engine-free: the job's options (:class:`Job`), the list of its items
(:func:`plan`), and the work on one item (:class:`Worker`) that returns the item's manifest row.

Ray is not imported here: :mod:`aecodec.batch.engine` runs :class:`Worker` in a pool of Ray actors,
and the tests run it directly. Every image goes through the same public calls as the ``aecodec``
commands (:func:`aecodec.codec.api.encode`, :func:`~aecodec.codec.api.decode`,
:func:`~aecodec.codec.files.save_image`), so a batch output is byte for byte the command's output.

Outputs never touch inputs. :func:`plan` refuses, before any work and even with ``force``, a
destination that is the source folder or lies inside it (after resolving symbolic links and
``..``: a rerun would take the outputs for inputs, a decode would replace the images it came
from), and any output that resolves to an input or into the source folder (a symbolic link in the
destination). A file already at an output path is skipped when it verifies; otherwise a worker
replaces it only if an earlier run of the job wrote it (:attr:`Item.owned`, from the manifest) or
with ``force`` — a file of the user's is never written over without ``force``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import resource
import socket
import tempfile
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import BatchError, CodecError, one_line

__all__ = ["Job", "Item", "plan", "Worker", "RD_QUALITIES", "KINDS"]

KINDS = ("encode", "decode", "rd")
ATTEMPTS = 2  # an image whose worker died this many times working on it is not tried again
ATTEMPTS_DIR = ".aecodec-attempts"  # under the job's output folder: one marker per image being worked on
RD_QUALITIES = (0.0, 15.0, 30.0, 45.0, 60.0, 75.0, 90.0, 100.0)  # the Kodak benchmark's aecodec points


@dataclass(frozen=True)
class Job:
    """A batch job's options: ``kind`` (encode, decode or rd) and what ``aecodec encode`` /
    ``decode`` take. ``quality`` None with no target means the default (75)."""

    kind: str
    quality: float | None = None
    target_size: int | None = None
    target_bpp: float | None = None
    effort: int = 1
    model: str | None = None
    image_format: str = "png"  # decode: the outputs' format, by extension
    max_pixels: int | None = None  # decode: the pixel cap (None: the decoder's default)
    qualities: tuple[float, ...] = RD_QUALITIES  # rd
    force: bool = False

    def __post_init__(self):
        from ..codec.api import check_effort, check_quality, check_target

        if self.kind not in KINDS:
            raise CodecError(f"unknown batch job {self.kind!r} ({', '.join(KINDS)})")
        if sum(v is not None for v in (self.quality, self.target_size, self.target_bpp)) > 1:
            raise CodecError("give one of quality, target size or target bpp, not several")
        if self.quality is not None:
            check_quality(self.quality)
        check_target(self.target_size, self.target_bpp)
        check_effort(self.effort)
        if not self.qualities:
            raise CodecError("give at least one quality")
        for q in self.qualities:
            check_quality(q)
        if self.kind == "decode":
            from PIL import Image

            if Image.registered_extensions().get("." + self.image_format.lower().lstrip(".")) is None:
                raise CodecError(f"unknown image format {self.image_format!r} (png, webp, tif, bmp, jpg, …)")

    @property
    def suffix(self) -> str:
        """The outputs' suffix: .aec (encode), the image format's (decode); rd writes no files."""
        return {"encode": ".aec", "decode": "." + self.image_format.lower().lstrip(".")}.get(self.kind, "")

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}


@dataclass
class Item:
    """One input: ``input`` / ``output`` as the user named them (the manifest's columns; output
    None for rd), ``src`` / ``dst`` the absolute paths the workers use (they may run elsewhere,
    in another working folder)."""

    index: int
    input: str
    output: str | None
    src: str
    dst: str | None
    error: str | None = None  # refused before any work (two inputs onto one output)
    previous: dict | None = None  # rd: the image's row from an earlier run (reused if it still holds)
    marker: str | None = None  # the file that counts the workers that died working on it (:meth:`Worker._attempt`)
    owned: bool = False  # an earlier run wrote ``dst`` (its manifest says so): replaced if it fails to verify


def _inputs(job: Job, src: Path) -> list[Path]:
    """The job's inputs under ``src`` (recursively, sorted): images to encode or rd, .aec files to
    decode; or ``src`` itself when it is a file."""
    if src.is_file():
        return [src]
    if not src.is_dir():
        raise CodecError(f"{src}: no such file or directory")
    if job.kind == "decode":
        return sorted(p for p in src.rglob("*.aec") if p.is_file())
    from ..codec.images import image_files

    return image_files([src], recursive=True)


def plan(job: Job, src: str | os.PathLike, dst: str | os.PathLike | None,
         others: tuple[str | os.PathLike, ...] = ()) -> list[Item]:
    """The job's items: each input under ``src`` with its output under ``dst`` at the same relative
    path (the suffix changed). Two inputs that would write one output (``a.png`` and ``a.jpg``):
    the second and any later one get an ``error`` and are not worked on. A ``dst`` that is ``src``
    or inside it, and an output — or one of the job's ``others`` (its manifest, rd.json, …) — that
    resolves to an input, into ``src`` or onto another output, are refused
    (:class:`~aecodec.errors.BatchError`), ``force`` or not."""
    from ..codec.files import longest_name

    src = Path(src)
    if dst is not None:
        check_folders(src, Path(dst))
    inputs = _inputs(job, src)
    name_max = longest_name(Path(dst)) if dst is not None else 0
    items, taken = [], {}
    for i, path in enumerate(inputs):
        rel = path.relative_to(src) if path != src else Path(path.name)
        out = None if dst is None or job.kind == "rd" else Path(dst) / rel.with_suffix(job.suffix)
        item = Item(i, str(path), None if out is None else str(out), os.path.abspath(path),
                    None if out is None else os.path.abspath(out))
        if dst is not None:
            key = hashlib.sha1(os.fsencode(item.src)).hexdigest()
            item.marker = os.path.abspath(Path(dst) / ATTEMPTS_DIR / key)
        if item.dst is not None:
            if item.dst in taken:
                item.error = f"{out}: {taken[item.dst]} is written there already"
            elif len(os.fsencode(out.name)) > name_max:  # found out now, not after the image is coded
                item.error = f"{out}: file name too long (at most {name_max} bytes, with room for its temp file's)"
            taken.setdefault(item.dst, item.input)
        items.append(item)
    if dst is not None:
        _check_outputs(items, src, others)
    return items


def check_folders(src: Path, dst: Path) -> None:
    """Refuse a destination folder ``dst`` that is the source folder ``src`` or lies inside it, once
    symbolic links and ``..`` are resolved; and one that is not a folder or cannot be written."""
    if os.path.lexists(dst) and not dst.is_dir():
        raise BatchError(f"{dst}: {'a dangling symbolic link' if dst.is_symlink() else 'not a directory'}")
    real_src, real_dst = Path(os.path.realpath(src)), Path(os.path.realpath(dst))
    if src.is_dir() and (real_dst == real_src or real_src in real_dst.parents):
        where = "the input folder" if real_dst == real_src else "inside the input folder"
        via = f" ({dst} resolves to {real_dst})" if os.path.abspath(dst) != str(real_dst) else ""
        raise BatchError(f"{dst}: the output folder is {where} {src}{via}; give one outside it "
                         "(outputs there would replace inputs or be taken as inputs by the next run)")
    existing = next(p for p in (real_dst, *real_dst.parents) if p.exists())
    try:  # what the job will do there: create a file (permissions alone miss read-only file systems)
        fd, probe = tempfile.mkstemp(dir=existing, prefix=".aecodec-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise BatchError(f"{dst}: cannot write in {existing} ({exc.strerror or one_line(exc)})") from None


def _check_outputs(items: list[Item], src: Path, others) -> None:
    """Refuse the job if an output or one of ``others`` resolves (through a symbolic link in the
    destination) to an input, into the source folder, or onto another output. One ``realpath`` per
    folder, one ``lstat`` per file."""
    folders: dict[str, str] = {}

    def real(path: str) -> str:
        head, name = os.path.split(os.path.abspath(path))
        if head not in folders:
            folders[head] = os.path.realpath(head)
        full = os.path.join(folders[head], name)
        return os.path.realpath(full) if os.path.islink(full) else full

    inputs = {real(item.src): item.input for item in items}
    real_src = os.path.realpath(src) if src.is_dir() else None
    outputs: dict[str, str] = {}
    for name in [item.output for item in items if item.dst is not None and not item.error] + [str(o) for o in others]:
        out = real(name)
        if out in inputs:
            raise BatchError(f"{name}: resolves to the input {inputs[out]}; an output never replaces an input")
        if real_src is not None and out.startswith(real_src.rstrip(os.sep) + os.sep):
            raise BatchError(f"{name}: resolves to {out}, inside the input folder {src} (a symbolic link on the "
                             "way?); outputs never go there")
        if out in outputs:
            raise BatchError(f"{name}: resolves to {outputs[out]}, another output of this job")
        outputs[out] = name


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


class Worker:
    """Works on items, one at a time, with the model loaded once (in the constructor, so a missing
    model fails the job at start, not on every image). Ray Data calls it with batches
    ``{"item": [json, …]}`` and gets ``{"row": [json, …]}``; :meth:`run` works on one item."""

    def __init__(self, job: Job | dict, threads: int | None = None, device: str = "cpu"):
        from ..codec import api

        self.job = job if isinstance(job, Job) else Job(**{**job, "qualities": tuple(job["qualities"])})
        self.threads = threads or None  # the transforms' threads (onnxruntime's; None: its default)
        self.device = device
        self.where = f"{socket.gethostname()}:{os.getpid()}"
        if self.job.kind != "decode":  # a decode loads the model each file names (cached per process)
            _, self.model_id, self.digest = api.load_model(self.job.model, device=device, threads=self.threads)

    def __call__(self, batch: dict) -> dict:
        import numpy as np

        rows = [json.dumps(self.run(Item(**json.loads(s)))) for s in batch["item"]]
        return {"row": np.array(rows, dtype=object)}

    def run(self, item: Item) -> dict:
        """The manifest row of one item: input, output, status (done, skipped or failed), width,
        height, bytes (of the .aec file), bpp, bytes in / out, seconds, error, worker (host:pid) and
        the worker's peak memory so far."""
        start = time.perf_counter()
        row = {"input": item.input, "output": item.output, "status": "done", "width": None, "height": None,
               "bytes": None, "bpp": None, "bytes_in": None, "bytes_out": None, "seconds": None, "error": None}
        try:
            if item.error:
                raise CodecError(item.error)
            getattr(self, "_" + self.job.kind)(item, row)
        except MemoryError:
            row.update(status="failed", error=f"{item.input}: not enough memory")
        except Exception as exc:  # one bad input never stops the job: it becomes its row's error
            row.update(status="failed", error=_message(exc, item))
        row.update(seconds=round(time.perf_counter() - start, 4), worker=self.where,
                   peak_rss_mb=round(_peak_rss_mb(), 1))
        return row

    @contextmanager
    def _attempt(self, item: Item):
        """Around the work on an image: a marker file counts the attempts that never finished. A
        worker killed mid-image (out of memory, a crash) is restarted by Ray and the image retried;
        after :data:`ATTEMPTS` such deaths the image fails instead of killing workers forever."""
        if item.marker is None:
            yield
            return
        marker = Path(item.marker)
        try:
            died = int(marker.read_text() or 0)
        except (OSError, ValueError):
            died = 0
        if died >= ATTEMPTS:
            marker.unlink(missing_ok=True)
            raise CodecError(f"{item.input}: its worker died {died} times working on it (out of memory?); "
                             "not tried again")
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(str(died + 1))
        try:
            yield
        finally:  # reached unless the process died
            marker.unlink(missing_ok=True)

    # -------------------------------------------------------------------------- encode
    def _encode(self, item: Item, row: dict) -> None:
        from ..codec import api, files

        row["bytes_in"] = os.path.getsize(item.src) if os.path.isfile(item.src) else None
        if not self.job.force and self._encoded_ok(item, row):
            row["status"] = "skipped"
            return
        _refuse_foreign(item, self.job)
        j = self.job
        with self._attempt(item):
            data = api.encode(item.src, j.quality, target_size=j.target_size, target_bpp=j.target_bpp,
                              effort=j.effort, model=j.model, device=self.device, threads=self.threads)
            Path(item.dst).parent.mkdir(parents=True, exist_ok=True)
            files.write_atomic(item.dst, data, overwrite=True)
        _header(api.info(data), row, "bytes_out")

    def _encoded_ok(self, item: Item, row: dict) -> bool:
        """Whether ``item``'s output is already there, newer than its input, a valid file (header and
        CRC) of this model, at this quality or within this size budget (effort is not recorded in a
        file, so it is not checked); if so, its header fills ``row``."""
        from ..codec import api
        from ..codec.format import FormatError

        try:
            if os.path.getmtime(item.dst) < os.path.getmtime(item.src):
                return False
            i = api.info(Path(item.dst).read_bytes())
        except (OSError, FormatError):
            return False
        if i["model_id"] != self.model_id or not self.digest.startswith(i["weights_hash"]):
            return False
        budget = api.check_target(self.job.target_size, self.job.target_bpp)
        if budget is not None:
            if i["bytes"] > budget(i["width"], i["height"]):
                return False
        elif i["quality"] != api.check_quality(api.DEFAULT_QUALITY if self.job.quality is None else self.job.quality):
            return False
        _header(i, row, "bytes_out")
        return True

    # -------------------------------------------------------------------------- decode
    def _decode(self, item: Item, row: dict) -> None:
        from ..codec import api, files

        cap = {} if self.job.max_pixels is None else {"max_pixels": self.job.max_pixels}
        data = files.read_file(item.src, **cap)
        _header(api.info(data), row, "bytes_in")
        if not self.job.force and self._decoded_ok(item, row):
            row["status"] = "skipped"
        else:
            _refuse_foreign(item, self.job)
            with self._attempt(item):
                img = api.decode(data, device=self.device, threads=self.threads, **cap)
                Path(item.dst).parent.mkdir(parents=True, exist_ok=True)
                files.save_image(img, item.dst, overwrite=True)
        row["bytes_out"] = os.path.getsize(item.dst)

    @staticmethod
    def _decoded_ok(item: Item, row: dict) -> bool:
        """Whether ``item``'s output image is already there, newer than its .aec file, of the size
        the file's header gives, and whole (Pillow's ``verify``: for PNG, every chunk's CRC)."""
        from PIL import Image

        try:
            if os.path.getmtime(item.dst) < os.path.getmtime(item.src):
                return False
            with Image.open(item.dst) as im:
                if im.size != (row["width"], row["height"]):
                    return False
                im.verify()
        except Exception:  # missing, unreadable or damaged: decode it again
            return False
        return True

    # -------------------------------------------------------------------------- rd
    def _rd(self, item: Item, row: dict) -> None:
        """The rate–distortion points of one image: per quality, bytes, bpp, PSNR and MS-SSIM (dB) of
        the decoded image against the pixels the codec read (alpha, coded losslessly, left out); or
        the row of an earlier run, when it still holds (same model, effort, qualities; input unchanged)."""
        from ..codec.images import prepare_image

        model = f"{self.model_id}@{self.digest[:16]}"
        mtime = os.path.getmtime(item.src)
        p = item.previous
        if (not self.job.force and p and p.get("status") in ("done", "skipped") and p.get("model") == model
                and p.get("effort") == self.job.effort and p.get("input_mtime") == mtime
                and [x["quality"] for x in p.get("points") or ()] == list(self.job.qualities)):
            row.update({k: v for k, v in p.items() if k not in ("seconds", "worker", "peak_rss_mb")}, status="skipped")
            return
        with self._attempt(item):
            self._measure(item, row, prepare_image(item.src))
        row.update(model=model, effort=self.job.effort, input_mtime=mtime)

    def _measure(self, item: Item, row: dict, prepared) -> None:
        """:meth:`_rd`'s measurement of an image read by :func:`~aecodec.codec.images.prepare_image`."""
        import numpy as np

        from ..codec import api
        from ..codec.format import Layout
        from ..metrics import image_metrics

        rgb, _, layout = prepared
        gray = layout in Layout.GRAYS
        pixels = rgb.shape[0] * rgb.shape[1]
        ref = rgb[..., 0] if gray else rgb
        row.update(width=rgb.shape[1], height=rgb.shape[0], bytes_in=os.path.getsize(item.src), points=[])
        for q in self.job.qualities:
            t0 = time.perf_counter()
            data = api.encode(item.src, q, effort=self.job.effort, model=self.job.model, device=self.device,
                              threads=self.threads)
            t1 = time.perf_counter()
            img = api.decode(data, device=self.device, threads=self.threads)
            t2 = time.perf_counter()
            rec = np.asarray(img.convert("L" if gray else "RGB"))
            m = image_metrics(ref, rec)
            row["points"].append({"quality": q, "bytes": len(data), "bpp": round(8 * len(data) / pixels, 6),
                                  "psnr": _finite(m["psnr"]), "ms_ssim_db": _finite(m["ms_ssim_db"]),
                                  "encode_s": round(t1 - t0, 4), "decode_s": round(t2 - t1, 4)})


def _refuse_foreign(item: Item, job: Job) -> None:
    """Refuse to write over a file at ``item``'s output that no run of this job wrote (a user's
    photo.png where photo.aec decodes to), a dangling symbolic link included, unless ``force``."""
    if not job.force and not item.owned and os.path.lexists(item.dst):
        raise CodecError(f"its output {item.output} already exists and was not written by this job "
                         "(use --force to overwrite)")


def _header(info: dict, row: dict, side: str) -> None:
    """``row``'s columns from an .aec file's header (:func:`aecodec.codec.api.info`); its size also
    as ``side`` (bytes_out of an encode, bytes_in of a decode)."""
    row.update(width=info["width"], height=info["height"], quality=info["quality"], bytes=info["bytes"],
               bpp=round(info["bpp"], 6))
    row[side] = info["bytes"]


def _finite(v: float | None) -> float | None:
    return None if v is None or not math.isfinite(v) else round(v, 4)


def _message(exc: BaseException, item: Item) -> str:
    """One line that starts with the input's name as the user gave it: the library's message (most
    name the input already, by the absolute path the worker used), else the exception's type and
    first line."""
    from ..codec.format import FormatError
    from ..errors import CheckpointError, ModelNotFound

    if isinstance(exc, (CodecError, FormatError, ModelNotFound, CheckpointError)):
        text = str(exc)
    elif isinstance(exc, OSError) and exc.strerror:
        text = exc.strerror
    else:
        text = f"{type(exc).__name__}: {one_line(exc)}"
    for prefix in (item.input + ": ", item.src + ": "):
        if text.startswith(prefix):
            text = text[len(prefix):]
    return f"{item.input}: {text}"
