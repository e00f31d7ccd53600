"""aecodec beside JPEG, WebP, AVIF and JPEG XL at the same file size: :func:`compare` codes and
measures (:mod:`.budget`), :mod:`.page` draws the self-contained HTML page ``aecodec compare``
writes, :mod:`.codecs` wraps each codec (the benchmarks use the same wrappers).

    >>> import aecodec
    >>> c = aecodec.compare("photo.png", size=30_000)
    >>> [(k.label, k.num_bytes, round(k.psnr, 2)) for k in c.coded]
"""

from .budget import DEFAULT_CODECS, compare
from .results import Coded, Comparison, CurvePoint

__all__ = ["compare", "DEFAULT_CODECS", "Coded", "Comparison", "CurvePoint"]
