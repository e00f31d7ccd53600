"""aecodec.models.aux_transform (AuxT): a zero-initialised Haar shortcut that a model learns and codes with."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aecodec.codec import api
from aecodec.codec import format as fmt
from aecodec.models import runtime
from aecodec.models.aux_transform import HaarAnalysis, HaarSynthesis, haar_basis
from aecodec.models.checkpoint import load_checkpoint
from aecodec.train import export, train
from tests.helpers import smooth_image, train_opts

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny training runs: one thread
opts = train_opts


def test_the_haar_basis_is_orthonormal_with_the_block_mean_first():
    h = haar_basis().double()
    torch.testing.assert_close(h @ h.T, torch.eye(256, dtype=torch.float64), atol=1e-6, rtol=0)
    torch.testing.assert_close(h[0], torch.full((256,), 1 / 16, dtype=torch.float64))
    assert (h[1:].sum(1).abs() < 1e-6).all()  # every other basis vector is a difference


def test_the_haar_shortcuts_with_identity_projections_invert_each_other():
    a, s = HaarAnalysis(768), HaarSynthesis(768)
    with torch.no_grad():
        a.proj.weight.copy_(torch.eye(768)[:, :, None, None])
        s.proj.weight.copy_(torch.eye(768)[:, :, None, None])
        x = torch.rand(2, 3, 32, 48)
        y = a(x)
        assert y.shape == (2, 768, 2, 3)
        # The first coefficient of each block and colour is 16 × the block's mean.
        torch.testing.assert_close(y[:, ::256], 16 * torch.nn.functional.avg_pool2d(x, 16), atol=1e-5, rtol=0)
        torch.testing.assert_close(s(y), x, atol=1e-5, rtol=0)


def test_an_auxt_model_trains_its_shortcut_and_codes_real_files(data_dir, tmp_path):
    train(opts(data_dir, tmp_path / "run.pt", steps=4, aux_transform=True, lr=1e-3), log=lambda *_: None)
    export(tmp_path / "run.pt", tmp_path / "w.pt", log=lambda *_: None)
    model, ck = load_checkpoint(tmp_path / "w.pt")
    assert model.config.aux_transform and model.aux_s.proj.weight.any()  # it learned
    net = runtime.from_torch(model, ck["model_id"], ck["weights_hash"])  # the codec over the torch model's transforms
    rgb = smooth_image(72, 100, seed=5)
    data = api.encode_with(net, ck["model_id"], ck["weights_hash"][:16], rgb, None, fmt.Layout.RGB, 50)
    out = np.asarray(api.decode_with(net, fmt.unpack(data)))
    assert out.shape == rgb.shape and out.dtype == np.uint8
    # The shortcut is part of the decoder: without it the same file decodes to other pixels.
    model.aux_s = None
    assert not np.array_equal(np.asarray(api.decode_with(net, fmt.unpack(data))), out)
