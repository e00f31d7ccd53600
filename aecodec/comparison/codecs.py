"""Codecs under test, each a small subclass of `Codec`.

`Codec.run(image, quality)` encodes a PIL image (mode "RGB" or "L", no metadata) to real bytes, decodes
them, and returns the reconstruction with bpp = len(bytes) * 8 / pixels and the wall-clock encode and
decode times. A subclass only says how to encode (and, if Pillow cannot open the bytes, how to decode)
and which quality values to sweep: `qualities` run from worst to best, so rate should rise along them.

Sweeps are chosen so that each curve covers roughly 0.1-2 bpp on Kodak. Encoder settings are the
libraries' defaults unless stated in `settings()`; threads are limited to one where the library allows,
because the benchmark already runs one job per core.
"""

from __future__ import annotations

import io
import lzma
import math
import struct
import time
from dataclasses import dataclass

import numpy as np
from PIL import Image

__all__ = [
    "Codec",
    "CodecUnavailable",
    "RunResult",
    "CODECS",
    "CLASSICAL",
    "get_codec",
]


class CodecUnavailable(Exception):
    """The codec cannot run here (library missing, API not written yet); the message says why."""


@dataclass
class RunResult:
    """One encode/decode round trip."""

    num_bytes: int
    bpp: float
    encode_s: float
    decode_s: float
    reconstruction: Image.Image


class Codec:
    """Base class: a named codec with a quality sweep, measured from its real bytes."""

    name: str = ""  # stable kebab-case id, used on the command line and in results.json
    label: str = ""  # legend text
    extension: str = ""  # a file's name ending, for the files `aecodec compare` offers to download
    qualities: tuple[float, ...] = ()  # full sweep, from worst to best
    gray_ok: bool = True  # the encoder takes mode "L" directly; otherwise gray is sent as RGB

    def check(self) -> None:
        """Raise CodecUnavailable if the codec cannot run here."""

    def settings(self) -> dict:
        """Fixed encoder settings, recorded in results.json."""
        return {}

    def encode(self, image: Image.Image, quality: float) -> bytes:
        raise NotImplementedError

    def decode(self, data: bytes) -> Image.Image:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            return im.copy()

    def run(self, image: Image.Image, quality: float) -> RunResult:
        """Encode then decode `image`; the reconstruction has the same mode and size as `image`."""
        source = image if (image.mode == "RGB" or self.gray_ok) else image.convert("RGB")
        t0 = time.perf_counter()
        data = self.encode(source, quality)
        t1 = time.perf_counter()
        rec = self.decode(data)
        t2 = time.perf_counter()
        if rec.size != image.size:
            raise ValueError(f"{self.name}: decoded size {rec.size} != input size {image.size}")
        if rec.mode != image.mode:
            rec = rec.convert(image.mode)
        pixels = image.width * image.height
        return RunResult(len(data), len(data) * 8 / pixels, t1 - t0, t2 - t1, rec)


class PillowCodec(Codec):
    """A codec reached through `Image.save(format=...)`; subclasses give `params(quality)`."""

    format: str = ""

    def params(self, quality: float) -> dict:
        raise NotImplementedError

    def encode(self, image: Image.Image, quality: float) -> bytes:
        buf = io.BytesIO()
        image.save(buf, format=self.format, **self.params(quality))
        return buf.getvalue()


class JPEG420(PillowCodec):
    name, label, format = "jpeg-420", "JPEG 4:2:0", "JPEG"
    extension = ".jpg"
    qualities = (5, 10, 20, 30, 50, 70, 85, 90)

    def params(self, quality):
        return {"quality": int(quality), "subsampling": 2}

    def settings(self):
        return {"library": "libjpeg-turbo via Pillow", "subsampling": "4:2:0", "optimize": False}


class JPEG444(JPEG420):
    name, label = "jpeg-444", "JPEG 4:4:4"
    qualities = (5, 10, 20, 30, 45, 60, 75, 85)

    def params(self, quality):
        return {"quality": int(quality), "subsampling": 0}

    def settings(self):
        return {**super().settings(), "subsampling": "4:4:4"}


class WebP(PillowCodec):
    name, label, format = "webp", "WebP", "WEBP"
    extension = ".webp"
    qualities = (0, 5, 20, 40, 60, 75, 85, 90)
    method = 4  # Pillow's default effort

    def params(self, quality):
        return {"quality": int(quality), "method": self.method}

    def settings(self):
        return {"library": "libwebp via Pillow", "method": self.method, "lossless": False}


class AVIF(PillowCodec):
    name, label, format = "avif", "AVIF", "AVIF"
    extension = ".avif"
    qualities = (10, 20, 30, 40, 50, 60, 72, 84)
    speed = 6  # Pillow's default

    def check(self):
        from PIL import features

        if not features.check("avif"):
            raise CodecUnavailable("this Pillow was built without AVIF support")

    def params(self, quality):
        return {"quality": int(quality), "speed": self.speed, "max_threads": 1}

    def settings(self):
        return {"library": "libavif (aom) via Pillow", "speed": self.speed, "subsampling": "4:2:0"}


class JPEGXL(PillowCodec):
    name, label, format = "jxl", "JPEG XL", "JXL"
    extension = ".jxl"
    qualities = (1, 15, 30, 50, 70, 80, 88, 92)
    effort = 7  # libjxl's default

    def check(self):
        try:
            import pillow_jxl  # noqa: F401  (registers the JXL plugin with Pillow)
        except ImportError as e:
            raise CodecUnavailable(f"pillow-jxl-plugin not installed: pip install 'aecodec[compare]' ({e})") from e

    def params(self, quality):
        return {"quality": int(quality), "effort": self.effort, "num_threads": 1}

    def settings(self):
        return {"library": "libjxl via pillow-jxl-plugin", "effort": self.effort}


class HEIC(PillowCodec):
    name, label, format = "heic", "HEIC (x265 intra)", "HEIF"
    extension = ".heic"
    qualities = (12, 18, 25, 32, 40, 47, 53, 60)

    def check(self):
        try:
            import pillow_heif
        except ImportError as e:
            raise CodecUnavailable(f"pillow-heif not installed ({e})") from e
        pillow_heif.register_heif_opener()

    def params(self, quality):
        return {"quality": int(quality)}

    def settings(self):
        return {"library": "libheif + x265 via pillow-heif", "chroma": "4:2:0",
                "note": "HEVC intra, the closest available stand-in for BPG"}


class JPEG2000(PillowCodec):
    """Quality is OpenJPEG's target PSNR in dB (quality_mode "dB", one layer): unlike a target
    compression ratio, it means the same on every image size."""

    name, label = "jpeg2000", "JPEG 2000"
    extension = ".jp2"
    qualities = (26, 28, 30, 32, 34, 36, 39, 42)

    def encode(self, image, quality):
        # 2**(levels) must not exceed the smaller side; OpenJPEG's default is 6 resolutions.
        resolutions = max(1, min(6, int(math.log2(min(image.size))) + 1))
        buf = io.BytesIO()
        image.save(buf, format="JPEG2000", irreversible=True, quality_mode="dB", quality_layers=[quality],
                   num_resolutions=resolutions,
                   mct=1 if image.mode == "RGB" else 0)  # mct: RGB -> YCbCr (ICT); Pillow's default is off
        return buf.getvalue()

    def settings(self):
        return {"library": "OpenJPEG via Pillow", "irreversible": True, "mct": "ICT for RGB",
                "quality_mode": "dB", "quality": "target PSNR in dB (one layer)"}


class PCA8x8(Codec):
    """A textbook transform codec: a per-image KLT (PCA) of 8x8 blocks, uniform quantisation, LZMA.

    RGB goes to YCbCr (JPEG's matrix) with 4:2:0 chroma. One 64x64 KLT basis is fitted to the mean-removed
    8x8 blocks of all planes; coefficients are quantised with one step size (the transform is orthonormal,
    so one step spreads the squared error evenly) and a dead zone, and stored component by component
    (int8, or int16 when needed), LZMA-compressed.
    The bitstream carries everything the decoder needs: a small header, the mean block (float16) and the
    first K basis vectors as int8, K being the last component with a non-zero coefficient. Quality is the
    quantiser step on the 0..255 pixel scale (smaller = better).
    """

    name, label = "pca-8x8", "PCA-8x8 (KLT)"
    extension = ".pca"
    qualities = (160, 110, 75, 50, 34, 23, 14, 9)
    _HEADER = "<4sIIBBf"  # magic, width, height, planes | (int16 coefficients) << 7, K, step
    _FILTERS = [{"id": lzma.FILTER_LZMA2, "preset": 9}]
    DEADZONE = 0.35  # rounding offset < 0.5 widens the zero bin: BD-rate ~ -8 % vs plain rounding (4 Kodak images)

    @staticmethod
    def _blocks(plane):
        h, w = plane.shape
        p = np.pad(plane, ((0, -h % 8), (0, -w % 8)), mode="edge")
        H, W = p.shape
        return p.reshape(H // 8, 8, W // 8, 8).transpose(0, 2, 1, 3).reshape(-1, 64)

    @staticmethod
    def _unblocks(blocks, padded, size):
        H, W = padded
        p = blocks.reshape(H // 8, W // 8, 8, 8).transpose(0, 2, 1, 3).reshape(H, W)
        return p[: size[1], : size[0]]

    @staticmethod
    def _basis(b_q):  # int8 basis -> orthonormal columns; encoder and decoder compute the same
        q, r = np.linalg.qr(b_q.astype(np.float64) / 127)
        return q * np.sign(np.diag(r))

    def _planes(self, image):
        if image.mode == "L":
            return [image]
        y, cb, cr = image.convert("YCbCr").split()
        half = ((image.width + 1) // 2, (image.height + 1) // 2)
        return [y, cb.resize(half, Image.Resampling.BOX), cr.resize(half, Image.Resampling.BOX)]

    def _quantise(self, x):
        return np.sign(x) * np.floor(np.abs(x) + self.DEADZONE)

    def encode(self, image, quality):
        planes = [np.asarray(p, dtype=np.float64) for p in self._planes(image)]
        allb = np.concatenate([self._blocks(p) for p in planes])  # (n_blocks, 64)
        mean = allb.mean(0).astype(np.float16)
        centred = allb - mean.astype(np.float64)
        eigval, eigvec = np.linalg.eigh(centred.T @ centred)
        basis = eigvec[:, np.argsort(eigval)[::-1]]  # (64, 64), columns by decreasing variance
        coef = self._quantise(centred @ basis / quality)
        nonzero = np.flatnonzero(np.abs(coef).max(0) > 0)
        k = int(nonzero[-1]) + 1 if len(nonzero) else 1
        b_q = np.clip(np.rint(basis[:, :k] * 127), -127, 127).astype(np.int8)
        coef = self._quantise(centred @ self._basis(b_q) / quality)  # (n_blocks, K)
        wide = int(np.abs(coef).max()) > 127  # int16 only when int8 cannot hold the coefficients
        coef = coef.astype(np.int16 if wide else np.int8)
        payload = mean.tobytes() + b_q.tobytes() + np.ascontiguousarray(coef.T).tobytes()
        header = struct.pack(self._HEADER, b"PCA8", image.width, image.height, len(planes) | wide << 7, k, quality)
        return header + lzma.compress(payload, format=lzma.FORMAT_RAW, filters=self._FILTERS)

    def decode(self, data):
        n = struct.calcsize(self._HEADER)
        magic, width, height, flags, k, step = struct.unpack(self._HEADER, data[:n])
        if magic != b"PCA8":
            raise ValueError("not a PCA-8x8 bitstream")
        n_planes, dtype = flags & 0x7F, np.int16 if flags & 0x80 else np.int8
        payload = lzma.decompress(data[n:], format=lzma.FORMAT_RAW, filters=self._FILTERS)
        mean = np.frombuffer(payload[:128], np.float16).astype(np.float64)
        b_q = np.frombuffer(payload[128 : 128 + 64 * k], np.int8).reshape(64, k)
        coef = np.frombuffer(payload[128 + 64 * k :], dtype).reshape(k, -1).T.astype(np.float64)
        blocks = coef * step @ self._basis(b_q).T + mean
        sizes = [(width, height)] + [((width + 1) // 2, (height + 1) // 2)] * (n_planes - 1)
        planes, start = [], 0
        for size in sizes:
            padded = (-(-size[1] // 8) * 8, -(-size[0] // 8) * 8)
            count = padded[0] * padded[1] // 64
            plane = self._unblocks(blocks[start : start + count], padded, size)
            planes.append(Image.fromarray(np.clip(np.rint(plane), 0, 255).astype(np.uint8), "L"))
            start += count
        if n_planes == 1:
            return planes[0]
        planes[1:] = [p.resize((width, height), Image.Resampling.BILINEAR) for p in planes[1:]]
        return Image.merge("YCbCr", planes).convert("RGB")

    def settings(self):
        return {"transform": "per-image KLT of 8x8 blocks (basis sent as int8)", "chroma": "YCbCr 4:2:0",
                "quantiser": "uniform, one step size = quality", "entropy_coder": "LZMA2 (raw, preset 9)"}


class AECodec(Codec):
    """Our codec through its public bytes API, so container overhead counts."""

    name, label = "aecodec", "aecodec"
    extension = ".aec"
    qualities = (0, 15, 30, 45, 60, 75, 90, 100)
    gray_ok = False  # aecodec.encode takes RGB
    effort = 1

    def _api(self):
        try:
            import aecodec
        except ImportError as e:
            raise CodecUnavailable(f"aecodec not importable ({e})") from e
        if not (callable(getattr(aecodec, "encode", None)) and callable(getattr(aecodec, "decode", None))):
            raise CodecUnavailable("aecodec.encode / aecodec.decode not available")
        return aecodec

    def check(self):
        self._api()

    def settings(self):
        try:
            return {"version": getattr(self._api(), "__version__", None), "effort": self.effort}
        except CodecUnavailable:
            return {"effort": self.effort}

    def encode(self, image, quality):
        try:
            extra = {"effort": self.effort} if self.effort != 1 else {}
            return self._api().encode(image, quality=float(quality), **extra)
        except ImportError as e:
            raise CodecUnavailable(f"aecodec.encode raised ImportError: {e}") from e

    def decode(self, data):
        return self._api().decode(data)


# Higher efforts search per image (seconds to a minute an encode on a CPU): three qualities
# spanning the curve, enough for a BD-rate against effort 1 over the range they cover.
EFFORT_QUALITIES = (15, 45, 75)


def _aecodec_at(effort: int) -> type[AECodec]:
    return type(f"AECodecEffort{effort}", (AECodec,), {
        "name": f"aecodec-e{effort}", "label": f"aecodec effort {effort}", "effort": effort,
        "qualities": EFFORT_QUALITIES, "__doc__": f"aecodec at --effort {effort}."})


_ALL = [AECodec, JPEG420, JPEG444, WebP, AVIF, JPEGXL, HEIC, JPEG2000, PCA8x8]

CODECS: dict[str, type[Codec]] = {c.name: c for c in _ALL}
CLASSICAL: tuple[str, ...] = tuple(n for n in CODECS if n != "aecodec")
# not in "all": run them with --efforts
EFFORT_CODECS: dict[str, type[Codec]] = {c.name: c for c in (_aecodec_at(e) for e in range(2, 10))}


def get_codec(name: str) -> Codec:
    try:
        return {**CODECS, **EFFORT_CODECS}[name]()
    except KeyError:
        raise KeyError(f"unknown codec {name!r}; choose from {', '.join(CODECS)}, {', '.join(EFFORT_CODECS)}") from None
