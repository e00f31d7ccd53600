"""aecodec — a learned image codec.

    >>> import aecodec
    >>> data = aecodec.encode("photo.png", quality=75)   # bytes
    >>> img = aecodec.decode(data)                        # PIL.Image.Image
    >>> PIL.Image.open("photo.aec")                      # Pillow plugin, registered on import
    >>> aecodec.compare("photo.png", size=30_000)         # beside JPEG, WebP, AVIF, JPEG XL at that size

Importing aecodec is cheap: onnxruntime is imported on the first encode or decode; torch never,
except for what needs it (--effort ≥ 2, files of format 1 and 2, training).
"""

from .codec.pil_plugin import register as _register_pillow_plugin
from .errors import AecodecError, CodecError, FormatError, ModelNotFound

__version__ = "0.2.0"
__all__ = ["encode", "decode", "encode_file", "decode_file", "info", "compare", "AecodecError", "CodecError", "FormatError",
           "ModelNotFound"]

_register_pillow_plugin()

_API = {"encode", "decode", "info"}
_FILES = {"encode_file", "decode_file"}


def __getattr__(name):
    if name in _API:
        from .codec import api

        return getattr(api, name)
    if name == "compare":
        from .comparison import compare

        return compare
    if name in _FILES:
        from .codec import files

        return getattr(files, name)
    raise AttributeError(f"module 'aecodec' has no attribute {name!r}")
