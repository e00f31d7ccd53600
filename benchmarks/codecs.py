"""The codecs under test: they live in :mod:`aecodec.comparison.codecs`, where ``aecodec compare``
uses the same wrappers, so that a page and a benchmark measure one thing one way."""

from aecodec.comparison.codecs import *  # noqa: F401,F403
from aecodec.comparison.codecs import CLASSICAL, CODECS, EFFORT_CODECS, EFFORT_QUALITIES, AECodec, Codec  # noqa: F401
from aecodec.comparison.codecs import CodecUnavailable, RunResult, get_codec  # noqa: F401
