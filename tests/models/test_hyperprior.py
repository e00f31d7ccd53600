"""aecodec.models.hyperprior: the decoder's channels-last synthesis and the search's synthesis compute g_s."""

from __future__ import annotations

import torch

from aecodec.codec import api
from aecodec.codec.pipeline import quality_to_level


def test_channels_last_synthesis_gives_the_same_bits_as_the_planar_one(net, images):
    """The decoder runs g_s on channels-last tensors for speed (MeanScaleHyperprior.synthesize);
    every decoded value must be the one the planar g_s gives, with 1 and 2 threads."""
    from aecodec.codec.geometry import pad_to_stride

    old = torch.get_num_threads()
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            for img in images:
                x = torch.from_numpy(pad_to_stride(img, net.config.stride).copy()).permute(2, 0, 1)[None].float() / 255
                for quality in (0, 75, 100):
                    level = quality_to_level(quality, net.config.num_levels)
                    with torch.inference_mode():
                        gain, inv_gain = net.gains(torch.tensor([level]))
                        y_hat = torch.round(net.g_a(x) * gain)
                        planar = net.synthesis(y_hat * inv_gain).clamp_(0, 1)
                        fast = net.synthesize(y_hat, level)
                    assert fast.is_contiguous(memory_format=torch.channels_last)
                    assert torch.equal(fast, planar), (threads, quality)
    finally:
        torch.set_num_threads(old)


def test_the_searchs_synthesis_is_the_models_g_s_values_and_gradients():
    import torch

    net = api.load_model()[0].torch_model()  # the torch model of the codec's weights, which the search runs
    y = (3 * torch.randn(1, net.config.M, 4, 6, generator=torch.Generator().manual_seed(1))).requires_grad_(True)
    ours, theirs = net.search_synthesis()(y), net.synthesis(y)
    assert ours.shape == theirs.shape and torch.allclose(ours, theirs, rtol=1e-4, atol=1e-4)
    weights = torch.rand_like(theirs)
    (g_ours,), (g_theirs,) = (torch.autograd.grad((out * weights).sum(), [y]) for out in (ours, theirs))
    assert torch.allclose(g_ours, g_theirs, rtol=1e-3, atol=1e-3 * float(g_theirs.abs().max()))
    assert all(p.grad is None for p in net.parameters())  # the shared model is untouched
