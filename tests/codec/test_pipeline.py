"""aecodec.codec.pipeline: tiles without seams, decoded in the decoder's pieces whatever the file's tile."""

from __future__ import annotations

import numpy as np

import aecodec
from aecodec.codec import format as fmt
from aecodec.codec import pipeline
from aecodec.metrics import psnr
from aecodec.entropy import exact
from aecodec.models import runtime
from tests.helpers import smooth_image


def test_tiled_encoding_has_no_visible_seams():
    """Tiles of 64 px vs one tile: same quality everywhere, no extra error along tile edges."""
    arr = smooth_image(192, 256, seed=3)
    one = np.asarray(aecodec.decode(aecodec.encode(arr, quality=80, tile=1024))).astype(float)
    tiled_data = aecodec.encode(arr, quality=80, tile=64)
    assert aecodec.info(tiled_data)["tiles"] == "4x3"
    tiled = np.asarray(aecodec.decode(tiled_data)).astype(float)
    err = ((tiled - arr) ** 2).mean(axis=2)
    edge = np.zeros(err.shape, bool)
    for k in range(64, 256, 64):
        edge[:, k - 2:k + 2] = True
    for k in range(64, 192, 64):
        edge[k - 2:k + 2, :] = True
    assert err[edge].mean() < 1.5 * err[~edge].mean() + 1.0
    assert abs(psnr(tiled.astype(np.uint8), arr) - psnr(one.astype(np.uint8), arr)) < 0.5


def test_decode_works_in_pieces_bounded_by_the_decoder_not_by_the_files_tile(monkeypatch):
    """A file with one 2048-pixel tile is synthesised in pieces of SYNTH_PIECE (+ margins) and its
    exact h_s runs over pieces of PIECE ẑ positions (+ halo), whatever the tile: memory follows the
    decoder's pieces, not the header."""
    img = smooth_image(300, 1100, seed=3)
    data = aecodec.encode(img, quality=40, tile=2048)
    assert fmt.unpack(data).tile == 2048 and len(fmt.unpack(data).tiles) == 1
    net = runtime.load()  # the model the codec runs (cached: the one aecodec.decode uses)
    synth_windows, hs_inputs = [], []
    real_synth, real_run = type(net).synthesize, type(net.coding.h_s)._run

    def synth(self, y_hat, level):
        synth_windows.append(tuple(y_hat.shape[-2:]))
        return real_synth(self, y_hat, level)

    def run(self, z_hat):
        hs_inputs.append(tuple(z_hat.shape[-2:]))
        return real_run(self, z_hat)

    monkeypatch.setattr(type(net), "synthesize", synth)
    monkeypatch.setattr(type(net.coding.h_s), "_run", run)
    out = np.asarray(aecodec.decode(data))
    ls = net.config.stride // 4
    assert len(synth_windows) == pipeline.synthesis_pieces(fmt.unpack(data)) == 3  # 1100 px wide: 3 pieces of 384
    assert max(max(w) for w in synth_windows) <= (pipeline.SYNTH_PIECE + 2 * pipeline.SYNTH_MARGIN) // ls
    # the same pixels as a file with 1024-pixel tiles would give (same quality, seamless)
    assert 10 * np.log10(255**2 / ((out.astype(float) - img) ** 2).mean()) > 25
    # h_s: the hyper-latent is 5 × 18 positions; with PIECE 16 that is two pieces
    assert len(hs_inputs) == 2 and max(max(s) for s in hs_inputs) <= exact.PIECE + 2 * exact.HALO


def test_synthesis_pieces_join_exactly(monkeypatch):
    """g_s reaches less than SYNTH_MARGIN pixels: an image synthesised in pieces is bit-identical
    to the same image synthesised in one pass."""
    data = aecodec.encode(smooth_image(500, 900, seed=5), quality=60)
    c = fmt.unpack(data)
    net = runtime.load()
    y_hat = pipeline.decode_y_hat(net, c)
    pieces = pipeline.synthesize_image(net, c, y_hat)
    assert pipeline.synthesis_pieces(c) == 6
    monkeypatch.setattr(pipeline, "SYNTH_PIECE", 1024)
    assert pipeline.synthesis_pieces(c) == 1
    assert np.array_equal(pieces, pipeline.synthesize_image(net, c, y_hat))
