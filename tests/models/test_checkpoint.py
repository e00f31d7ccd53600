"""aecodec.models.checkpoint: loading initialises nothing, inexact grids are refused, configs round trip."""

from __future__ import annotations

import pytest
import torch

from aecodec.models import fixed_point
from aecodec.models.checkpoint import load_checkpoint, save_checkpoint
from aecodec.models.hyperprior import HyperpriorConfig, MeanScaleHyperprior


def test_a_loaded_checkpoint_has_every_weight_of_the_file_and_initialised_no_convolution(tmp_path, monkeypatch):
    import torch
    import torch.nn as nn

    from aecodec.models.checkpoint import load_checkpoint, save_checkpoint
    from aecodec.models.hyperprior import HyperpriorConfig, MeanScaleHyperprior

    model = MeanScaleHyperprior(HyperpriorConfig(N=8, M=12))
    model.update()
    save_checkpoint(tmp_path / "m.pt", model, model_id="tiny")

    def initialised(self):
        raise AssertionError(f"{type(self).__name__} initialised while loading")

    for cls in (nn.Conv2d, nn.ConvTranspose2d):
        monkeypatch.setattr(cls, "reset_parameters", initialised)
    loaded, _ = load_checkpoint(tmp_path / "m.pt")
    want, got = model.state_dict(), loaded.state_dict()
    assert want.keys() == got.keys() and all(torch.equal(want[k], got[k]) for k in want)


def test_a_checkpoint_whose_fixed_point_grid_is_not_exact_is_refused(tmp_path):
    from aecodec.models.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
    from aecodec.models.hyperprior import HyperpriorConfig, MeanScaleHyperprior

    cfg = HyperpriorConfig(N=8, M=12, fixed_point=fixed_point.FixedPoint(w_bits=30, a_bits=20))
    assert fixed_point.check_bounds(cfg.N, cfg.M, cfg.fixed_point) >= 53
    path = tmp_path / "wide-grid.pt"
    save_checkpoint(path, MeanScaleHyperprior(cfg), model_id="wide-grid")
    with pytest.raises(CheckpointError, match="2\\*\\*53"):
        load_checkpoint(path)


@pytest.mark.usefixtures("one_thread")
def test_a_config_with_the_shortcut_round_trips_through_a_checkpoint(tmp_path):
    m = MeanScaleHyperprior(HyperpriorConfig(N=8, M=12, aux_transform=True))
    torch.nn.init.normal_(m.aux_a.proj.weight)
    save_checkpoint(tmp_path / "m.pt", m, model_id="aux-test")
    m2, _ = load_checkpoint(tmp_path / "m.pt")
    assert m2.config == m.config
    torch.testing.assert_close(m2.aux_a.proj.weight, m.aux_a.proj.weight)
