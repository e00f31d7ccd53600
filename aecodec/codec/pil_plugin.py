"""Pillow plugin: after ``import aecodec``, ``PIL.Image.open("x.aec")`` decodes and
``img.save("x.aec", quality=80)`` (or ``target_size=50_000`` / ``target_bpp=0.5``; ``effort=1…9``)
encodes."""

from __future__ import annotations

from PIL import Image, ImageFile

from . import format as fmt


def _accept(prefix: bytes) -> bool:
    return prefix[:4] == fmt.MAGIC


class AecImageFile(ImageFile.ImageFile):
    format = "AEC"
    format_description = "aecodec learned image codec"

    def _open(self) -> None:
        self._data = self.fp.read()
        try:
            header = fmt.unpack(self._data, header_only=True)
        except fmt.FormatError as exc:
            raise SyntaxError(str(exc)) from None
        self._size = (header.width, header.height)
        self._mode = fmt.Layout.PIL_MODES[header.layout]
        self.info["quality"] = header.quality
        self.info["model"] = f"{header.model_id}@{header.weights_hash}"
        self.tile = []

    def load(self):
        if self._im is None and self._data is not None:
            from .api import decode

            img = decode(self._data)
            self.im = img.im
            self._data = None
        return Image.Image.load(self)


def _save(im: Image.Image, fp, filename) -> None:
    from .api import encode

    info = im.encoderinfo
    fp.write(encode(im, quality=info.get("quality"), target_size=info.get("target_size"),
                    target_bpp=info.get("target_bpp"), effort=info.get("effort", 1)))


def register() -> None:
    Image.register_open(AecImageFile.format, AecImageFile, _accept)
    Image.register_save(AecImageFile.format, _save)
    Image.register_extension(AecImageFile.format, ".aec")
    Image.register_mime(AecImageFile.format, "image/x-aec")
