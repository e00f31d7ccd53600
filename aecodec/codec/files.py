"""Files: atomic writes (temp file + rename: never a partial output, never an overwrite unless
asked), reading with one-line errors, and saving decoded images in the format their name asks for."""

from __future__ import annotations

import contextlib
import io
import os
import re
import secrets
import stat
import sys
import warnings
import zlib
from pathlib import Path
from typing import BinaryIO

from PIL import Image

from ..errors import CodecError, FormatError, one_line
from . import format as fmt
from .api import decode, encode

__all__ = ["write_atomic", "check_output", "same_file", "file_identity", "temp_target", "read_file", "read_header", "save_image", "check_image_format", "named", "encode_file", "decode_file"]

_TEMP = re.compile(r"\.(?P<name>.+)\.[0-9a-f]{8}\.tmp\Z")  # what _create_beside names a temp file


def write_atomic(path: str | os.PathLike, data: bytes | None = None, *, save=None, overwrite: bool = False) -> None:
    """Write ``data`` (or call ``save(tmp_path)``) to a temp file beside ``path``, fsync it, then rename.

    Never leaves a partial file: on any error (or Ctrl-C) the temp file is removed, and errors name
    ``path``, never the temp file. Refuses what :func:`check_output` refuses, except that it finds
    an unwritable folder only when it creates the temp file. The new file's mode is 0o666 less the
    umask, as for ``open``.
    """
    path = Path(path)
    fd, tmp = _open_temp(path, overwrite)
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
    fd, tmp = _open_temp(Path(path), overwrite)
    os.close(fd)
    os.unlink(tmp)


def _open_temp(path: Path, overwrite: bool) -> tuple[int, str]:
    """The temp file of ``path`` created (:func:`_create_beside`) once ``path`` passes
    :func:`_check_path`; a :class:`CodecError` naming ``path`` if the folder takes no new file."""
    _check_path(path, overwrite)
    try:
        return _create_beside(path)
    except OSError as exc:
        raise CodecError(f"{path}: cannot write in {path.parent} ({exc.strerror or one_line(exc)})") from None


def _create_beside(path: Path) -> tuple[int, str]:
    """A new hidden temp file beside ``path``, opened for writing; the kernel applies the umask."""
    while True:
        tmp = str(path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666), tmp
        except FileExistsError:
            continue


TEMP_EXTRA = len("." + ".01234567.tmp")  # bytes a temp file's name adds to its output's


def longest_name(folder: Path) -> int:
    """The longest file name (bytes) :func:`write_atomic` can write in ``folder``, or in the
    nearest folder above it that exists: the file system's limit less :data:`TEMP_EXTRA`."""
    try:
        existing = next(p for p in (folder.absolute(), *folder.absolute().parents) if p.is_dir())
        limit = os.pathconf(existing, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):  # no pathconf (Windows), a folder too long to ask
        limit = 255
    return limit - TEMP_EXTRA


def _check_path(path: Path, overwrite: bool) -> None:
    """:func:`check_output` without creating anything."""
    if path.name in ("", ".", ".."):
        raise CodecError(f"{path}: not a file name")
    longest = longest_name(path.parent)
    if len(os.fsencode(path.name)) > longest:
        raise CodecError(f"{path}: file name too long ({len(os.fsencode(path.name))} bytes; at most "
                         f"{longest}, as its temp file adds {TEMP_EXTRA})")
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


def file_identity(path: str | os.PathLike) -> str:
    """What makes two paths one file: the resolved path (links and ``..`` followed)."""
    try:
        return str(Path(path).resolve())
    except (OSError, RuntimeError):  # a loop of links, a path too long: compare as written
        return os.path.abspath(path)


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether paths ``a`` and ``b`` name one file: the same resolved path, or (both existing) the
    same inode — a hard link. How an output is found to be an input, which it must never replace."""
    if file_identity(a) == file_identity(b):
        return True
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):
        return False


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


def read_file(src: str | os.PathLike | BinaryIO, *, max_pixels: int = fmt.DEFAULT_MAX_PIXELS) -> bytes:
    """The bytes of an .aec file — a path, ``-`` for stdin, or a binary stream — read in stages and
    no further than its header allows: the header (:func:`~aecodec.codec.format.read_header`), then
    exactly the size it announces, then one byte more to refuse trailing bytes. Only when the header
    and the length disagree is the rest read, up to the largest valid file of the header's image
    (:func:`~aecodec.codec.format.max_file_size`), to name the field at fault. So ``/dev/zero``, an
    endless pipe or a huge file with a forged header cost what a valid file would. Errors are one
    line: a missing file, a directory, a :class:`FormatError` naming ``src``."""
    with _open_aec(src) as f:
        head = bytearray()

        def read(n: int) -> bytes:
            b = _read_exactly(f, n)
            head.extend(b)
            return b

        h = named(src, fmt.read_header, read, max_pixels=max_pixels)
        try:
            fmt.check_sections(h.lengths, h.width, h.height, h.strips, h.tile, h.layout, h.version)
        except FormatError as exc:
            problem = str(exc)  # the table does not fit the header: read on to say why
        else:
            head.extend(_read_exactly(f, h.total - len(head)))
            more = f.read(1) if len(head) == h.total else b""
            if len(head) == h.total and not more:
                return bytes(head)
            head.extend(more)
            crc = int.from_bytes(head[h.total - 4:h.total], "big")
            if more and zlib.crc32(memoryview(head)[:h.total - 4]) == crc:  # a whole file, then more
                raise FormatError(f"{_name(src)}: trailing bytes after the {h.total} bytes the header announces")
            problem = f"trailing bytes: more than the {fmt.max_file_size(h)} bytes a file of a {h.width}×{h.height} image can have"
        # the header and the length disagree: read to the end, as far as a valid file of this image can go
        limit = fmt.max_file_size(h)
        size = _size_on_disk(f)
        if size is None or size <= limit:
            head.extend(_read_exactly(f, limit + 1 - len(head)))
        if len(head) > limit or (size or 0) > limit:
            raise FormatError(f"{_name(src)}: {problem}")
        named(src, fmt.check_file, h, memoryview(head))
        return bytes(head)


def read_header(src: str | os.PathLike | BinaryIO, *,
                max_pixels: int = fmt.MAX_ENCODE_PIXELS) -> tuple[fmt.Header, int | None]:
    """The header of an .aec file (see :func:`read_file`) without its payload, and the file's size
    on disk (None for a pipe or a device): what ``aecodec info`` shows. A regular file whose size is
    not the one its header announces is a :class:`FormatError`, found without reading the payload."""
    with _open_aec(src) as f:
        h = named(src, fmt.read_header, lambda n: _read_exactly(f, n), max_pixels=max_pixels)
        named(src, fmt.check_sections, h.lengths, h.width, h.height, h.strips, h.tile, h.layout, h.version)
        size = _size_on_disk(f)
        if size is not None and size != h.total:
            what = "truncated file" if size < h.total else "trailing bytes"
            raise FormatError(f"{_name(src)}: {what}: {size} bytes on disk, the header announces {h.total}")
        return h, size


def _size_on_disk(f) -> int | None:
    """The size of a regular file; None for a pipe, a device or a stream without a file."""
    try:
        st = os.fstat(f.fileno())
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return None
    return st.st_size if stat.S_ISREG(st.st_mode) else None


def _name(src) -> str:
    if src == "-":
        return "<stdin>"
    return str(src) if isinstance(src, (str, os.PathLike)) else str(getattr(src, "name", "<stream>"))


def named(src, fn, *args, **kwargs):
    """``fn(*args, **kwargs)``, its :class:`FormatError` prefixed with the file's name."""
    try:
        return fn(*args, **kwargs)
    except FormatError as exc:
        raise FormatError(f"{_name(src)}: {exc}") from None


@contextlib.contextmanager
def _open_aec(src):
    """A binary stream of ``src`` (a path, ``-`` for stdin, or a stream, left open)."""
    if src == "-":
        yield sys.stdin.buffer
        return
    if hasattr(src, "read"):
        yield src
        return
    try:
        f = open(src, "rb")
    except FileNotFoundError:
        raise CodecError(f"{src}: no such file") from None
    except IsADirectoryError:
        raise CodecError(f"{src}: is a directory") from None
    with f:
        yield f


def _read_exactly(f, n: int) -> bytes:
    """``n`` bytes of ``f``, fewer only at its end (a pipe may return less per read)."""
    parts, left = [], n
    while left > 0:
        b = f.read(min(left, 1 << 24))
        if not b:
            break
        parts.append(b)
        left -= len(b)
    return b"".join(parts)


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
    img = decode(read_file(src, max_pixels=kwargs.get("max_pixels", fmt.DEFAULT_MAX_PIXELS)), **kwargs)
    save_image(img, dst, overwrite=overwrite)
    return img
