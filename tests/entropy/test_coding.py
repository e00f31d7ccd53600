"""aecodec.entropy.coding: CompressAI's strings from cached tables; real bits match the likelihoods and symbol_bits."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import aecodec
from aecodec.entropy.coding import symbol_bits
from aecodec.models import zoo


def test_entropy_coding_gives_compressais_strings_and_values(net):
    """aecodec's compress/decompress (cached tables, numpy conversion) against CompressAI's own
    EntropyModel methods on the same model: the same strings, the same decoded values; and the
    cached tables follow a change of the tables (update at export)."""
    from aecodec._compressai import compressai

    base = compressai().entropy_models.EntropyModel
    gc, eb = net.gaussian_conditional, net.entropy_bottleneck
    g = torch.Generator().manual_seed(0)
    y = torch.randn(1, 8, 6, 5, generator=g) * 6
    means = torch.randn(1, 8, 6, 5, generator=g)
    indexes = torch.randint(0, gc._quantized_cdf.shape[0], (1, 8, 6, 5), generator=g, dtype=torch.int32)
    with torch.inference_mode():
        ours, theirs = gc.compress(y, indexes, means), base.compress(gc, y, indexes, means)
        assert ours == theirs
        assert torch.equal(gc.decompress(ours, indexes, means=means), base.decompress(gc, theirs, indexes, means=means))
        z = torch.randn(1, net.config.N, 3, 4, generator=g) * 3
        z_str = eb.compress(z)
        assert z_str == compressai().entropy_models.EntropyBottleneck.compress(eb, z)  # through super()
        z_hat = eb.decompress(z_str, (3, 4))
        assert torch.equal(z_hat, torch.round(z - eb._get_medians().reshape(1, -1, 1, 1)) + eb._get_medians().reshape(1, -1, 1, 1))
    import copy

    other = copy.deepcopy(gc)
    with torch.inference_mode():
        before = other.compress(y, indexes, means)
        for name in ("_quantized_cdf", "_cdf_length", "_offset"):  # other tables (in place): the
            getattr(other, name).copy_(getattr(other, name).flip(0))  # cache must not serve the old ones
        assert other.compress(y, indexes, means) == base.compress(other, y, indexes, means) != before


@pytest.mark.parametrize("quality", [25, 75])
def test_real_bits_match_the_likelihood_estimate(kodak, quality):
    """The file size (rANS + container) is within 5 % of -log2 of the model's likelihoods."""
    img = Image.open(kodak / "kodim23.png").convert("RGB")
    data = aecodec.encode(img, quality=quality)
    net, _, _ = zoo.load()
    x = torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1)[None].float() / 255
    level = aecodec.codec.api.quality_to_level(quality, net.config.num_levels)
    with torch.no_grad():
        out = net(x, torch.tensor([level]))
    estimate = sum(float(-torch.log2(l).sum()) for l in out["likelihoods"].values())
    assert abs(8 * len(data) - estimate) / estimate < 0.05, (8 * len(data), estimate)


def test_symbol_bits_match_compressais_rans_coder_including_escapes():
    import torch

    from aecodec._compressai import compressai

    gc = compressai().entropy_models.GaussianConditional(None)
    gc.update_scale_table(torch.exp(torch.linspace(np.log(0.11), np.log(64), 32)))
    g = torch.Generator().manual_seed(0)
    indexes = torch.randint(0, 32, (1, 4, 64, 64), generator=g, dtype=torch.int32)
    scales = gc.scale_table[indexes.long()]
    symbols = torch.round(torch.randn(indexes.shape, generator=g) * scales * 3)  # wide: escapes
    symbols[0, 0, 0, :8] = torch.tensor([-5000, 5000, 70000, -70000, 2**20, 300, -300, 0])
    bits, escapes = symbol_bits(symbols.int(), indexes, gc._quantized_cdf, gc._cdf_length, gc._offset)
    coded = 8 * len(gc.compress(symbols, indexes)[0])
    assert escapes > 100
    assert 32 < coded - float(bits.sum()) <= 64  # only the rANS termination is left over
