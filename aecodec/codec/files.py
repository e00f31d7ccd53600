"""Files: atomic writes (temp file + rename: never a partial output, never an overwrite unless
asked), reading with one-line errors, and saving decoded images in the format their name asks for."""

from __future__ import annotations

import io
import os
import re
import secrets
import warnings
from pathlib import Path

from PIL import Image

from ..errors import CodecError, one_line
from .api import decode, encode

__all__ = ["write_atomic", "check_output", "temp_target", "read_file", "save_image", "check_image_format", "encode_file", "decode_file"]

_TEMP = re.compile(r"\.(?P<name>.+)\.[0-9a-f]{8}\.tmp\Z")  # what _create_beside names a temp file


def write_atomic(path: str | os.PathLike, data: bytes | None = None, *, save=None, overwrite: bool = False) -> None:
    """Write ``data`` (or call ``save(tmp_path)``) to a temp file beside ``path``, fsync it, then rename.

    Never leaves a partial file: on any error (or Ctrl-C) the temp file is removed, and errors name
    ``path``, never the temp file. Refuses what :func:`check_output` refuses, except that it finds
    an unwritable folder only when it creates the temp file. The new file's mode is 0o666 less the
    umask, as for ``open``.
    """
    path = Path(path)
    _check_path(path, overwrite)
    try:
        fd, tmp = _create_beside(path)
    except OSError as exc:
        raise CodecError(f"{path}: cannot write here ({exc.strerror or one_line(exc)})") from None
    try:
        with os.fdopen(fd, "wb") as f:
            if data is not None:
                f.write(data)
            if save is not None:
                save(tmp)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno and exc.filename in (None, tmp):
            raise OSError(exc.errno, exc.strerror, str(path)) from None
        raise
    _fsync_dir(path.parent)


def check_output(path: str | os.PathLike, *, overwrite: bool = False) -> None:
    """Whether :func:`write_atomic` can write ``path``, found out before any work: a
    :class:`CodecError` saying why not. Refused: a folder that is missing or is not one, a name that
    leaves no room for the temp file's (:data:`TEMP_EXTRA` bytes more), a directory at ``path``,
    anything already there — a dangling symbolic link included — unless ``overwrite``, and a folder
    where no file can be created (no permission, a read-only file system), found by creating and
    removing the temp file itself."""
    path = Path(path)
    _check_path(path, overwrite)
    try:
        fd, tmp = _create_beside(path)
    except OSError as exc:
        raise CodecError(f"{path}: cannot write in {path.parent} ({exc.strerror or one_line(exc)})") from None
    os.close(fd)
    os.unlink(tmp)


def _create_beside(path: Path) -> tuple[int, str]:
    """A new hidden temp file beside ``path``, opened for writing; the kernel applies the umask."""
    while True:
        tmp = str(path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666), tmp
        except FileExistsError:
            continue


TEMP_EXTRA = len("." + ".01234567.tmp")  # bytes a temp file's name adds to its output's


def _check_path(path: Path, overwrite: bool) -> None:
    """:func:`check_output` without creating anything."""
    if path.name in ("", ".", ".."):
        raise CodecError(f"{path}: not a file name")
    try:
        name_max = os.pathconf(path.parent if path.parent.is_dir() else ".", "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):  # no pathconf (Windows), a folder too long to ask
        name_max = 255
    if len(os.fsencode(path.name)) + TEMP_EXTRA > name_max:
        raise CodecError(f"{path}: file name too long ({len(os.fsencode(path.name))} bytes; at most "
                         f"{name_max - TEMP_EXTRA}, as its temp file adds {TEMP_EXTRA})")
    try:
        if not path.parent.is_dir():
            what = "is not a directory" if os.path.lexists(path.parent) else "does not exist"
            raise CodecError(f"{path}: output directory {path.parent} {what}")
        if path.is_dir():
            raise CodecError(f"{path}: is a directory")
        if os.path.lexists(path) and not overwrite:
            what = "a dangling symbolic link" if path.is_symlink() and not path.exists() else "already exists"
            raise CodecError(f"{path}: {what} (use --force to overwrite)")
    except OSError as exc:  # a path too long for the system, a loop of links
        raise CodecError(f"{path}: {exc.strerror or one_line(exc)}") from None


def temp_target(path: str | os.PathLike) -> Path | None:
    """The output a temp file of :func:`write_atomic` was for, or None when ``path`` is not one —
    how a job finds the leftovers of a process killed mid-write (nothing else can remove them)."""
    path = Path(path)
    m = _TEMP.match(path.name)
    return path.parent / m.group("name") if m else None


def _fsync_dir(directory: Path) -> None:
    """Make a rename durable, where the platform allows (not on Windows; some filesystems refuse)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


def read_file(src: str | os.PathLike) -> bytes:
    """The bytes of a file, with one-line errors for a missing file or a directory."""
    try:
        return Path(src).read_bytes()
    except FileNotFoundError:
        raise CodecError(f"{src}: no such file") from None
    except IsADirectoryError:
        raise CodecError(f"{src}: is a directory") from None


_NO_ALPHA = {"JPEG", "BMP", "PPM"}
# zlib level of the PNGs we write: the same pixels as Pillow's default (6) in about half the time,
# for files a little larger.
PNG_COMPRESS_LEVEL = 4


def _format_of(ext: str) -> str | None:
    """Pillow's format for a file extension (``.png``), or None. The common formats are found the
    way ``Image.save`` finds them, without importing every Pillow plugin first (``Image.init`` is
    a noticeable share of a decode command's own time); the others after it."""
    if not ext:
        return None
    Image.preinit()
    return Image.EXTENSION.get(ext) or Image.registered_extensions().get(ext)


def save_image(img: Image.Image, dst: str | os.PathLike, *, overwrite: bool = False) -> None:
    """Save with the format chosen from the file name (PNG for unknown or no extension)."""
    ext = Path(dst).suffix.lower()
    fmt_name = _format_of(ext) or "PNG"
    if fmt_name in _NO_ALPHA and img.mode in ("RGBA", "LA"):
        warnings.warn(f"{fmt_name} cannot store alpha; the alpha channel is dropped", stacklevel=2)
        img = img.convert("RGB" if img.mode == "RGBA" else "L")
    kwargs = {"quality": 95} if fmt_name in ("JPEG", "WEBP", "AVIF") else {}
    if fmt_name == "PNG":
        kwargs = {"compress_level": PNG_COMPRESS_LEVEL}

    def save(tmp: str) -> None:
        img.save(tmp, format=fmt_name, **kwargs)

    try:
        write_atomic(dst, save=save, overwrite=overwrite)
    except (CodecError, FileNotFoundError):
        raise
    except (KeyError, OSError, ValueError) as exc:  # no writer, a mode the format cannot store, a write error
        reason = "no writer" if isinstance(exc, KeyError) else getattr(exc, "strerror", None) or one_line(exc)
        raise CodecError(f"{dst}: cannot write {fmt_name} ({reason})") from None


def check_image_format(dst: str | os.PathLike) -> None:
    """Whether :func:`save_image` has a writer for ``dst``'s format, found out before any decode: a
    :class:`CodecError` when Pillow cannot write it (a read-only format like FITS, a stub like HDF5
    whose handler is not installed, one that takes neither gray nor RGB pixels)."""
    fmt_name = _format_of(Path(dst).suffix.lower()) or "PNG"
    reasons = []
    for mode in ("RGB", "L"):
        try:
            Image.new(mode, (1, 1)).save(io.BytesIO(), format=fmt_name)
            return
        except KeyError:
            raise CodecError(f"{dst}: cannot write {fmt_name} (Pillow reads it but has no writer)") from None
        except (OSError, ValueError) as exc:
            reasons.append(one_line(exc))
    raise CodecError(f"{dst}: cannot write {fmt_name} ({reasons[0]})")


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
