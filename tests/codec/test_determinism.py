"""The same bytes and pixels whatever the thread count or concurrent threads; no global cuDNN switch."""

from __future__ import annotations

import threading

import numpy as np
import torch

import aecodec
from tests.helpers import smooth_image


def _decode_with_threads(data: bytes, threads: int):
    import aecodec
    from aecodec.codec.api import decode_latents
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return decode_latents(data), np.asarray(aecodec.decode(data))
    finally:
        torch.set_num_threads(old)


def _encode_with_threads(img, threads: int) -> bytes:
    import aecodec
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return aecodec.encode(img, quality=50)
    finally:
        torch.set_num_threads(old)


def test_latents_and_pixels_do_not_depend_on_the_thread_count(images):
    img = images[-1]
    enc1, enc2 = _encode_with_threads(img, 1), _encode_with_threads(img, 2)
    for data in (enc1, enc2):
        y1, p1 = _decode_with_threads(data, 1)
        y2, p2 = _decode_with_threads(data, 2)
        assert torch.equal(y1, y2)
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
