"""Hostile input, round 2: what a header, a payload or an odd shape may cost, and what aecodec
leaves behind in the process that hosts it."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import threading

import numpy as np
import pytest
import torch

import aecodec
from aecodec.codec import format as fmt
from aecodec.codec import geometry, pipeline
from aecodec.models import fixed_point, zoo

from .conftest import smooth_image
from .fuzz_decoder import craft


def _craft(width: int, height: int, tile_units: int, sections: list[bytes]) -> bytes:
    """A file written byte by byte, as an attacker would: any header, any sections, a valid CRC."""
    return craft(width, height, tile_units, sections, weights_hash=zoo.load()[2])


# --- memory set by the header -------------------------------------------------------------------
def test_a_56_byte_file_claiming_one_4096_pixel_tile_is_refused_not_allocated():
    bomb = _craft(4096, 4096, 4096 // 64, [b"", b""])
    assert len(bomb) == 56
    with pytest.raises(aecodec.FormatError, match="invalid tile size 4096"):
        aecodec.decode(bomb)
    for units in (256, 1024):  # 16384 and 65536-pixel tiles
        with pytest.raises(aecodec.FormatError, match="invalid tile size"):
            aecodec.decode(_craft(65535, 1, units, [b"", b""]))


def test_an_empty_payload_is_a_format_error_not_a_noise_image():
    for w, h in ((1024, 1024), (1, 1)):
        with pytest.raises(aecodec.FormatError, match="cannot be a rANS string"):
            aecodec.decode(_craft(w, h, 16, [b"", b""]))


def test_a_large_claim_with_junk_strings_is_refused_before_any_image_sized_allocation(monkeypatch):
    """16 tiles of 2048 (67 MP) with 8-byte junk strings: refused at the first tile, and nothing
    of the image's size is allocated before every tile has decoded."""
    data = _craft(8192, 8192, 32, [bytes(range(8))] * 32)
    sizes = []
    real_empty = torch.empty

    def empty(*shape, **kw):
        sizes.append(int(np.prod(shape[0] if len(shape) == 1 and isinstance(shape[0], tuple) else shape)))
        return real_empty(*shape, **kw)

    monkeypatch.setattr(torch, "empty", empty)
    with pytest.raises(aecodec.FormatError, match="corrupt latent data"):
        aecodec.decode(data)
    assert max(sizes, default=0) < 10**6, sizes


def test_decode_works_in_pieces_bounded_by_the_decoder_not_by_the_files_tile(monkeypatch):
    """A file with one 2048-pixel tile is synthesised in pieces of SYNTH_PIECE (+ margins) and its
    exact h_s runs over pieces of PIECE ẑ positions (+ halo), whatever the tile: memory follows the
    decoder's pieces, not the header."""
    img = smooth_image(300, 1100, seed=3)
    data = aecodec.encode(img, quality=40, tile=2048)
    assert fmt.unpack(data).tile == 2048 and len(fmt.unpack(data).tiles) == 1
    net = zoo.load()[0]
    synth_windows, hs_inputs = [], []
    real_synth, real_run = type(net).synthesize, type(net.h_s)._run

    def synth(self, y_hat, level):
        synth_windows.append(tuple(y_hat.shape[-2:]))
        return real_synth(self, y_hat, level)

    def run(self, z_hat, exact):
        hs_inputs.append(tuple(z_hat.shape[-2:]))
        return real_run(self, z_hat, exact)

    monkeypatch.setattr(type(net), "synthesize", synth)
    monkeypatch.setattr(type(net.h_s), "_run", run)
    out = np.asarray(aecodec.decode(data))
    ls = net.config.stride // 4
    assert len(synth_windows) == 2  # 1100 px wide: two pieces of at most 1024
    assert max(max(w) for w in synth_windows) <= (pipeline.SYNTH_PIECE + 2 * geometry.MARGIN) // ls
    # the same pixels as a file with 1024-pixel tiles would give (same quality, seamless)
    assert 10 * np.log10(255**2 / ((out.astype(float) - img) ** 2).mean()) > 25
    # h_s: the hyper-latent is 5 × 18 positions; with PIECE 16 that is two pieces
    assert max(max(s) for s in hs_inputs) <= fixed_point.PIECE + 2 * fixed_point.HALO


def test_the_exact_path_in_pieces_equals_one_pass_bit_for_bit():
    net = zoo.load()[0]
    gen = torch.Generator().manual_seed(1)
    for h, w in ((5, 7), (37, 9), (16, 16), (1, 1)):
        z_hat = net.exact_hyper_input(torch.randn(1, net.config.N, h, w, generator=gen) * 3)
        whole = net.h_s.exact(z_hat, piece=max(h, w))
        for piece in (1, 2, 3, 5):
            assert torch.equal(net.h_s.exact(z_hat, piece=piece), whole), (h, w, piece)


def test_an_alpha_plane_above_pillows_bomb_limit_decodes(monkeypatch):
    """The alpha section is a PNG of the image's size, already checked against aecodec's own pixel
    cap (2**28, above Pillow's 1.8e8 error limit): Pillow's DecompressionBombError must not escape
    as a traceback, nor refuse a valid file. (The limit is lowered here to keep the image small.)"""
    from PIL import Image

    rgba = np.dstack([smooth_image(40, 56), np.full((40, 56), 77, np.uint8)])
    data = aecodec.encode(rgba, quality=50)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 40×56 is now above 2× the limit: an error in Image.open
    out = np.asarray(aecodec.decode(data))
    assert out.shape == (40, 56, 4) and (out[..., 3] == 77).all()


def test_a_corrupt_alpha_section_is_a_format_error():
    rgba = np.dstack([smooth_image(40, 56), np.full((40, 56), 77, np.uint8)])
    c = fmt.unpack(aecodec.encode(rgba, quality=50))
    for alpha in (c.alpha[:20], c.alpha[:8] + bytes(len(c.alpha) - 8), b"\x89PNG\r\n\x1a\n" + bytes(40)):
        with pytest.raises(aecodec.FormatError, match="corrupt alpha section"):
            aecodec.decode(fmt.pack(dataclasses.replace(c, alpha=alpha)))


# --- damage behind a forged CRC -------------------------------------------------------------------
@pytest.mark.parametrize("how", ["zero", "ff", "tail", "byte"])
@pytest.mark.parametrize("section", [0, 1])
def test_damage_behind_a_recomputed_crc_is_refused_not_decoded_to_garbage(how, section):
    data = aecodec.encode(smooth_image(80, 120), quality=60)
    c = fmt.unpack(data)
    s = bytearray(c.tiles[0][section])
    if how == "zero":
        s[:] = bytes(len(s))
    elif how == "ff":
        s[:] = b"\xff" * len(s)
    elif how == "tail":
        s[-4:] = bytes(b ^ 0x5A for b in s[-4:])
    else:
        s[len(s) // 2] ^= 0x01
    zy = list(c.tiles[0])
    zy[section] = bytes(s)
    forged = fmt.pack(dataclasses.replace(c, tiles=(tuple(zy),)))
    with pytest.raises(aecodec.FormatError, match="corrupt latent data"):
        aecodec.decode(forged)


# --- padding cost ---------------------------------------------------------------------------------
@pytest.mark.parametrize("h,w", [(1, 20000), (20000, 1), (3, 4000), (17, 5000)])
def test_thin_images_are_coded_folded_in_proportion_to_their_pixels(h, w):
    """A 1×20 000 strip was coded as 64×20 032 pixels (87 bpp at 33 dB); folded — strips side by
    side, guard ramps between them, lines repeated up to 4 pixels — the coded area stays within 9×
    the pixels (plus two stride blocks), the file under 24 bpp, and the quality above 30 dB."""
    img = smooth_image(h, w, seed=2)
    data = aecodec.encode(img, quality=75)
    c = fmt.unpack(data)
    cw, ch = c.coded_size
    hp, wp = geometry.padded(ch, cw)
    assert c.strips > 1 and c.version == 2
    assert hp * wp <= 9 * h * w + 2 * 64 * 64, (c.strips, c.coded_size)
    assert 8 * len(data) / (h * w) < 24
    out = np.asarray(aecodec.decode(data))
    assert out.shape == img.shape
    assert 10 * np.log10(255**2 / ((out.astype(float) - img) ** 2).mean()) > 30


def test_ordinary_images_stay_version_1_files():
    for h, w in ((512, 768), (100, 3000), (40, 56)):
        c = fmt.unpack(aecodec.encode(smooth_image(h, w), quality=50))
        assert c.strips == 1 and c.version == 1


@pytest.mark.parametrize("h,w", [(1, 300), (2, 5000), (3, 500), (500, 3), (7, 129), (17, 10000), (100000, 1)])
def test_fold_and_unfold_are_inverse(h, w):
    rng = np.random.default_rng(h * w)
    strips = geometry.strips_for(w, h)
    for shape in ((h, w, 3), (h, w)):
        a = rng.integers(0, 256, shape, dtype=np.uint8)
        folded = geometry.fold(a, strips)
        assert folded.shape[:2][::-1] == geometry.coded_size(w, h, strips)
        assert np.array_equal(geometry.unfold(folded, w, h, strips), a)


def test_a_thin_image_with_alpha_keeps_its_alpha_exactly():
    rgba = np.dstack([smooth_image(2, 3000), (np.arange(6000).reshape(2, 3000) % 256).astype(np.uint8)])
    out = np.asarray(aecodec.decode(aecodec.encode(rgba, quality=60)))
    assert out.shape == (2, 3000, 4) and np.array_equal(out[..., 3], rgba[..., 3])


# --- process-global state -------------------------------------------------------------------------
def test_decoding_never_switches_cudnn_globally(monkeypatch):
    def no_switch(*a, **k):
        raise AssertionError("the decode path switched torch.backends.cudnn's global flags")

    monkeypatch.setattr(torch.backends.cudnn, "flags", no_switch)
    data = aecodec.encode(smooth_image(40, 60), quality=50)
    assert aecodec.decode(data).size == (60, 40)


def test_the_host_application_gets_the_whole_compressai_package():
    """aecodec imports only CompressAI's entropy coders (fast start-up); a host that imports
    compressai afterwards must get the full package, not a stub. (torchvision's CPU/CUDA op
    mismatch of this environment is worked around as ../shared/ENVIRONMENT.md measured.)"""
    code = """
import numpy as np, torch, aecodec
aecodec.decode(aecodec.encode(np.zeros((8, 8, 3), np.uint8)))
try:
    import torchvision  # noqa: F401
except RuntimeError:  # CUDA torchvision beside CPU torch: register the missing op schemas
    lib = torch.library.Library("torchvision", "FRAGMENT")
    lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
import compressai
from compressai.zoo import image_models
print(compressai.__version__, len(image_models) > 0)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-1] == "True"


def test_a_checkpoint_whose_fixed_point_grid_is_not_exact_is_refused(tmp_path):
    from aecodec.models.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
    from aecodec.models.hyperprior import HyperpriorConfig, MeanScaleHyperprior

    cfg = HyperpriorConfig(N=8, M=12, fixed_point=fixed_point.FixedPoint(w_bits=30, a_bits=20))
    assert fixed_point.check_bounds(cfg.N, cfg.M, cfg.fixed_point) >= 53
    path = tmp_path / "wide-grid.pt"
    save_checkpoint(path, MeanScaleHyperprior(cfg), model_id="wide-grid")
    with pytest.raises(CheckpointError, match="2\\*\\*53"):
        load_checkpoint(path)


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
