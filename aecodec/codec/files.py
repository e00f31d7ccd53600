"""Files: atomic writes (temp file + rename: never a partial output, never an overwrite unless
asked), reading with one-line errors, and saving decoded images in the format their name asks for."""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

from PIL import Image

from .api import decode, encode
from .errors import CodecError, one_line

__all__ = ["write_atomic", "read_file", "save_image", "encode_file", "decode_file"]


def write_atomic(path: str | os.PathLike, data: bytes | None = None, *, save=None, overwrite: bool = False) -> None:
    """Write ``data`` (or call ``save(tmp_path)``) to a temp file beside ``path``, then rename.

    Never leaves a partial file: on any error (or Ctrl-C) the temp file is removed.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise CodecError(f"{path}: output directory {path.parent} does not exist")
    if path.exists() and not overwrite:
        raise CodecError(f"{path}: already exists (use --force to overwrite)")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            if data is not None:
                f.write(data)
        if save is not None:
            save(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def read_file(src: str | os.PathLike) -> bytes:
    """The bytes of a file, with one-line errors for a missing file or a directory."""
    try:
        return Path(src).read_bytes()
    except FileNotFoundError:
        raise CodecError(f"{src}: no such file") from None
    except IsADirectoryError:
        raise CodecError(f"{src}: is a directory") from None


_NO_ALPHA = {"JPEG", "BMP", "PPM"}


def save_image(img: Image.Image, dst: str | os.PathLike, *, overwrite: bool = False) -> None:
    """Save with the format chosen from the file name (PNG for unknown or no extension)."""
    ext = Path(dst).suffix.lower()
    fmt_name = Image.registered_extensions().get(ext, "PNG") if ext else "PNG"
    if fmt_name in _NO_ALPHA and img.mode in ("RGBA", "LA"):
        warnings.warn(f"{fmt_name} cannot store alpha; the alpha channel is dropped", stacklevel=2)
        img = img.convert("RGB" if img.mode == "RGBA" else "L")
    kwargs = {"quality": 95} if fmt_name in ("JPEG", "WEBP", "AVIF") else {}

    def save(tmp: str) -> None:
        img.save(tmp, format=fmt_name, **kwargs)

    try:
        write_atomic(dst, save=save, overwrite=overwrite)
    except (KeyError, OSError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise CodecError(f"{dst}: cannot write {fmt_name} ({one_line(exc)})") from None


def encode_file(src, dst: str | os.PathLike, quality: float | None = None, *, overwrite: bool = False,
                **kwargs) -> bytes:
    """:func:`aecodec.codec.api.encode` ``src`` and write the bytes to ``dst`` atomically."""
    data = encode(src, quality, **kwargs)
    write_atomic(dst, data, overwrite=overwrite)
    return data


def decode_file(src: str | os.PathLike, dst: str | os.PathLike, *, overwrite: bool = False, **kwargs) -> Image.Image:
    """:func:`aecodec.codec.api.decode` the file ``src`` and save the image to ``dst`` atomically."""
    img = decode(read_file(src), **kwargs)
    save_image(img, dst, overwrite=overwrite)
    return img
