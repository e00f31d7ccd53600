"""The same bytes and pixels whatever onnxruntime's thread count or concurrent threads; no global cuDNN switch."""

from __future__ import annotations

import threading

import numpy as np
import torch

import aecodec
from aecodec.codec import api
from aecodec.codec import format as fmt
from aecodec.codec.images import prepare_image
from aecodec.codec.pipeline import decode_y_hat
from tests.helpers import smooth_image


def _codec(threads: int):
    """The shipped model as the codec runs it, its onnxruntime sessions on ``threads`` intra-op threads."""
    from aecodec.models import runtime

    net = runtime.load(threads=threads)
    assert net.transforms.threads == threads
    return net


def _encode_with(net, img) -> bytes:
    rgb, alpha, layout = prepare_image(img)
    return api.encode_with(net, net.model_id, net.weights_hash, rgb, alpha, layout, 50)


def _decode_with(net, data: bytes):
    c = fmt.unpack(data)
    return decode_y_hat(net, c), np.asarray(api.decode_with(net, c))


def test_latents_and_pixels_do_not_depend_on_the_thread_count(images):
    """onnxruntime on one thread or two: the same entropy-decoded latents (the exact path), pixels
    within 1 (g_s in float32) — measured identical."""
    img = images[-1]
    one, two = _codec(1), _codec(2)
    enc1, enc2 = _encode_with(one, img), _encode_with(two, img)
    for data in (enc1, enc2):
        y1, p1 = _decode_with(one, data)
        y2, p2 = _decode_with(two, data)
        assert isinstance(y1, np.ndarray) and y1.dtype == np.float32
        assert np.array_equal(y1, y2)
        assert np.abs(p1.astype(int) - p2.astype(int)).max() <= 1
        assert np.array_equal(p1, p2)


def test_decoding_never_switches_cudnn_globally(monkeypatch):
    def no_switch(*a, **k):
        raise AssertionError("the decode path switched torch.backends.cudnn's global flags")

    monkeypatch.setattr(torch.backends.cudnn, "flags", no_switch)
    data = aecodec.encode(smooth_image(40, 60), quality=50)
    assert aecodec.decode(data).size == (60, 40)


def test_four_threads_give_the_same_bytes_and_pixels_as_one():
    images = [smooth_image(70 + 9 * i, 90 - 7 * i, seed=i) for i in range(4)]
    qualities = [20, 45, 70, 95]
    files = [aecodec.encode(im, quality=q) for im, q in zip(images, qualities)]
    pixels = [np.asarray(aecodec.decode(d)) for d in files]
    results: dict = {}

    def work(i: int) -> None:
        for _ in range(2):
            d = aecodec.encode(images[i], quality=qualities[i])
            results.setdefault(i, []).append((d, np.asarray(aecodec.decode(files[i]))))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(4):
        for d, px in results[i]:
            assert d == files[i]
            assert np.array_equal(px, pixels[i])
