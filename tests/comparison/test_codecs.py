"""benchmarks.codecs: each codec round trips with bpp from its bytes; aecodec through its API or skipped."""

from __future__ import annotations

import sys
import time
import types

import numpy as np
import pytest

from aecodec.metrics import psnr
from benchmarks import rd
from benchmarks.codecs import CLASSICAL, AECodec, Codec, CodecUnavailable, get_codec
from tests.helpers import aecodec_api_or_skip, synthetic


def codec_or_skip(name) -> Codec:
    codec = get_codec(name)
    try:
        codec.check()
    except CodecUnavailable as e:
        pytest.skip(f"{name} unavailable: {e}")
    return codec


@pytest.mark.parametrize("name", CLASSICAL)
@pytest.mark.parametrize("image", [synthetic(), synthetic(75, 61, "L", seed=3)], ids=["rgb-96x80", "gray-75x61"])
def test_each_classical_codec_round_trips_a_small_image_with_bpp_from_its_bytes(name, image):
    codec = codec_or_skip(name)
    runs = []
    for q in (codec.qualities[1], codec.qualities[-1]):
        t = time.perf_counter()
        runs.append((codec.run(image, q), time.perf_counter() - t))
    (low, _), (high, _) = runs
    for r, wall in runs:
        assert r.reconstruction.size == image.size and r.reconstruction.mode == image.mode
        assert r.num_bytes > 0 and r.bpp == pytest.approx(r.num_bytes * 8 / (image.width * image.height))
        assert 18 < psnr(image, r.reconstruction) < 60
        assert 0 < r.encode_s and 0 < r.decode_s and r.encode_s + r.decode_s <= wall  # seconds, inside the call
    assert high.bpp > low.bpp and psnr(image, high.reconstruction) > psnr(image, low.reconstruction)


def test_aecodec_is_skipped_with_a_reason_when_its_api_is_missing(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "aecodec", types.ModuleType("aecodec"))
    with pytest.raises(CodecUnavailable, match="aecodec.encode"):
        AECodec().check()

    def raise_import_error(image, quality):
        raise ImportError("no weights backend")

    fake = types.ModuleType("aecodec")
    fake.encode, fake.decode = raise_import_error, lambda data: None
    monkeypatch.setitem(sys.modules, "aecodec", fake)
    synthetic().save(tmp_path / "a.png")
    out = rd.run_job((str(tmp_path / "a.png"), "aecodec", [50]))
    assert out["status"] == "skipped" and "ImportError" in out["reason"] and out["points"] == []


def test_aecodec_round_trips_through_its_public_api():
    aecodec_api_or_skip()
    image = synthetic()
    import aecodec

    r = AECodec().run(image, 75)
    data = aecodec.encode(image, quality=75)
    assert r.reconstruction.size == image.size and r.reconstruction.mode == "RGB"
    assert r.num_bytes == len(data) and np.array_equal(np.asarray(r.reconstruction), np.asarray(aecodec.decode(data)))
    assert psnr(image, r.reconstruction) > 25
