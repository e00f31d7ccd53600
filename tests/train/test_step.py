"""aecodec.train.step: the learning-rate schedule, bf16 transforms with an fp32 entropy path, MS-SSIM."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from aecodec.cli import app
from aecodec.models.checkpoint import load_checkpoint
from aecodec.train import TrainOptions, lr_at, rd_loss, set_bf16, train
from tests.helpers import logged, train_opts

opts = train_opts


def test_lr_schedule_warms_up_then_decays():
    o = TrainOptions(data=[], out=Path("x"), steps=1000, warmup=100, lr=1e-4)
    lrs = [lr_at(s, o) for s in (0, 50, 99, 100, 500, 999)]
    assert lrs[0] < lrs[1] < lrs[2] == pytest.approx(1e-4)
    assert lrs[3] > lrs[4] > lrs[5] >= 1e-5 - 1e-12


def test_bf16_runs_the_transforms_in_bf16_and_the_entropy_path_in_fp32():
    from aecodec.models.hyperprior import HyperpriorConfig, MeanScaleHyperprior

    model = MeanScaleHyperprior(HyperpriorConfig(N=16, M=24)).train()
    keys = set(model.state_dict())
    set_bf16(model, True)
    seen = {}

    def record(name):
        def hook(module, args, out):
            seen[name] = (args[0].dtype, (out[0] if isinstance(out, tuple) else out).dtype)
        return hook

    for name in ("g_a.0", "g_a.6", "h_a.0", "h_a.4", "g_s.0", "g_s.6", "h_s", "entropy_bottleneck",
                 "gaussian_conditional"):
        model.get_submodule(name).register_forward_hook(record(name))
    x, levels = torch.rand(2, 3, 64, 64), torch.tensor([0, 7])
    torch.manual_seed(0)  # the same training noise for both losses
    r = rd_loss(model, x, levels, "mse")
    r["loss"].backward()
    bf16, fp32 = torch.bfloat16, torch.float32
    assert seen["g_a.0"][1] == seen["g_s.0"][1] == seen["h_a.0"][1] == bf16  # autocast inside
    assert seen["g_a.6"] == seen["h_a.4"] == seen["g_s.6"] == (fp32, fp32)  # the last layers
    assert seen["h_s"] == seen["entropy_bottleneck"] == seen["gaussian_conditional"] == (fp32, fp32)
    assert set(model.state_dict()) == keys
    set_bf16(model, False)
    assert model(torch.rand(1, 3, 64, 64), torch.tensor([1.0]))["x_hat"].dtype == fp32
    torch.manual_seed(0)
    assert r["loss"].item() == pytest.approx(rd_loss(model, x, levels, "mse")["loss"].item(), rel=1e-3)


def test_ms_ssim_trains_at_crop_192_and_refuses_small_crops(data_dir, tmp_path):
    logs = []
    train(opts(data_dir, tmp_path / "ms.pt", steps=1, batch_size=1, crop=192, distortion="ms-ssim"),
          log=logs.append)
    mse_logs = []
    train(opts(data_dir, tmp_path / "mse.pt", steps=1, batch_size=1, crop=192), log=mse_logs.append)
    assert logged(logs, "loss")[0] != pytest.approx(logged(mse_logs, "loss")[0], rel=0.1)  # same crop, other D
    assert load_checkpoint(tmp_path / "ms.pt")[1]["training"]["chunks"][-1]["distortion"] == "ms-ssim"
    r = CliRunner().invoke(app, ["train", str(data_dir), "-o", str(tmp_path / "x.pt"), "--crop", "128",
                                 "--distortion", "ms-ssim", "--device", "cpu"])
    assert r.exit_code == 2 and "needs --crop of at least 161" in r.output
    assert not (tmp_path / "x.pt").exists()
