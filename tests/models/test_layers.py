"""aecodec.models.layers: layers built without random init, and GDN (CompressAI's, channels-last, its gradient)."""

from __future__ import annotations

import pytest
import torch


def test_a_layer_built_without_init_is_an_ordinary_layer_that_spent_no_random_numbers():
    import torch
    import torch.nn as nn

    from aecodec.models.layers import make_layer

    torch.manual_seed(0)
    state = torch.random.get_rng_state()
    conv = make_layer(nn.ConvTranspose2d, 8, 4, 5, stride=2, padding=2, output_padding=1, init=False)
    assert torch.equal(torch.random.get_rng_state(), state)  # no random initialisation ran
    assert type(conv) is nn.ConvTranspose2d and "reset_parameters" not in vars(conv)
    assert conv.weight.shape == (8, 4, 5, 5) and conv.output_padding == (1, 1)
    conv.reset_parameters()  # the class's method again
    assert not torch.equal(torch.random.get_rng_state(), state)
    torch.manual_seed(0)
    assert torch.equal(conv.weight, make_layer(nn.ConvTranspose2d, 8, 4, 5, stride=2, padding=2, output_padding=1).weight)


def test_thread_invariant_gdn_computes_compressais_gdn():
    from aecodec._compressai import compressai
    from aecodec.models.layers import GDN
    x = torch.randn(2, 16, 9, 7)
    for inverse in (False, True):
        ref = compressai().layers.GDN(16, inverse=inverse)
        with torch.no_grad():
            ref.gamma.add_(0.05 * torch.rand_like(ref.gamma))
        ours = GDN(16, inverse=inverse)
        ours.load_state_dict(ref.state_dict())
        torch.testing.assert_close(ours(x), ref(x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("inverse", [False, True])
def test_gdn_on_channels_last_input_computes_the_same_function(inverse):
    from aecodec.models.layers import GDN
    torch.manual_seed(0)
    gdn = GDN(16, inverse=inverse)
    with torch.no_grad():
        gdn.gamma.add_(0.05 * torch.rand_like(gdn.gamma))
    x = torch.randn(2, 16, 9, 7)
    xc = x.contiguous(memory_format=torch.channels_last).requires_grad_()
    ref = gdn(x.requires_grad_())
    out = gdn(xc)  # with autograd: no in-place ops on its way
    torch.testing.assert_close(out, ref, rtol=1e-6, atol=1e-6)
    out.sum().backward()
    ref.sum().backward()
    torch.testing.assert_close(xc.grad, x.grad, rtol=1e-5, atol=1e-6)
    with torch.inference_mode():
        torch.testing.assert_close(gdn(x.detach().contiguous(memory_format=torch.channels_last)), ref.detach(),
                                   rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("inverse", [True, False])
def test_the_searchs_gdn_has_the_models_values_and_exact_gradient(inverse):
    import torch

    from aecodec.models.layers import GDN, gdn_function

    torch.manual_seed(0)
    gdn = GDN(8, inverse=inverse).double()
    with torch.no_grad():  # a Γ and β away from their initial identity-like values
        gdn.gamma.add_(0.05 * torch.rand_like(gdn.gamma))
        gdn.beta.add_(0.3 * torch.rand_like(gdn.beta))
    gamma = gdn.gamma_reparam(gdn.gamma).reshape(8, 8).detach()
    beta = gdn.beta_reparam(gdn.beta).detach()
    x = torch.randn(2, 8, 5, 6, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        assert torch.allclose(gdn_function()(x, gamma, beta, inverse), gdn(x))
    # the hand-written backward against finite differences
    assert torch.autograd.gradcheck(lambda v: gdn_function()(v, gamma, beta, inverse), (x.requires_grad_(True),))
