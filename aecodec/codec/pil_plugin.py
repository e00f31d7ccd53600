"""Pillow plugin: after ``import aecodec``, ``PIL.Image.open("x.aec")`` decodes and
``img.save("x.aec", quality=80)`` (or ``target_size=50_000`` / ``target_bpp=0.5``; ``effort=1…9``)
encodes.

Written to Pillow's documented plugin interface ("Writing your own image plugin"): ``_open`` sets
``_size`` and ``_mode`` and one tile for a Python decoder (``ImageFile.PyDecoder`` with
``_pulls_fd``) that decodes the whole file on ``load()``. ``_mode`` is what Pillow ≥ 10.1 reads
(10.0 had a plain ``mode`` attribute), hence ``pillow>=10.1`` in pyproject.toml.

The pixel cap is Pillow's: ``Image.open`` warns above ``Image.MAX_IMAGE_PIXELS`` and refuses above
twice it (``Image.MAX_IMAGE_PIXELS = None`` lifts it), up to the largest image aecodec encodes.
"""

from __future__ import annotations

from PIL import Image, ImageFile

from . import format as fmt


def _accept(prefix: bytes) -> bool:
    return prefix[:4] == fmt.MAGIC


class AecImageFile(ImageFile.ImageFile):
    format = "AEC"
    format_description = "aecodec learned image codec"

    def _open(self) -> None:
        try:  # the header only: Pillow's own bomb check (Image.MAX_IMAGE_PIXELS) judges the size next
            header = fmt.read_header(self.fp.read, max_pixels=fmt.MAX_ENCODE_PIXELS)
        except fmt.FormatError as exc:
            raise SyntaxError(str(exc)) from None
        self._size = (header.width, header.height)
        self._mode = fmt.Layout.PIL_MODES[header.layout]
        self.info["quality"] = header.quality
        self.info["model"] = f"{header.model_id}@{header.weights_hash}"
        # the whole file, from offset 0, goes to the decoder on load()
        self.tile = [(AecImageFile.format, (0, 0) + self._size, 0, None)]


class AecDecoder(ImageFile.PyDecoder):
    _pulls_fd = True

    def decode(self, buffer):
        from .api import decode
        from .files import read_file

        # Image.open already applied Pillow's limit (Image.MAX_IMAGE_PIXELS: a warning above it, an
        # error above twice it; None lifts it), so aecodec's own cap is not applied a second time
        img = decode(read_file(self.fd, max_pixels=fmt.MAX_ENCODE_PIXELS), max_pixels=fmt.MAX_ENCODE_PIXELS)
        if img.mode != self.mode:  # decode() returns the layout's mode; be safe all the same
            img = img.convert(self.mode)
        self.set_as_raw(img.tobytes(), img.mode)
        return -1, 0


def _save(im: Image.Image, fp, filename) -> None:
    from .api import encode

    info = im.encoderinfo
    fp.write(encode(im, quality=info.get("quality"), target_size=info.get("target_size"),
                    target_bpp=info.get("target_bpp"), effort=info.get("effort", 1)))


def register() -> None:
    Image.register_open(AecImageFile.format, AecImageFile, _accept)
    Image.register_decoder(AecImageFile.format, AecDecoder)
    Image.register_save(AecImageFile.format, _save)
    Image.register_extension(AecImageFile.format, ".aec")
    Image.register_mime(AecImageFile.format, "image/x-aec")
