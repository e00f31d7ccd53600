"""Training: a step runs, a run resumes where it stopped, an export codes images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import aecodec
from aecodec.cli import app
from aecodec.models.checkpoint import load_checkpoint
from aecodec.train import TrainOptions, lr_at, train

from .conftest import smooth_image


@pytest.fixture
def data_dir(tmp_path) -> Path:
    d = tmp_path / "photos"
    d.mkdir()
    for i in range(4):
        Image.fromarray(smooth_image(80 + 8 * i, 96, seed=i)).save(d / f"p{i}.png")
    return d


def opts(data_dir, out, **kw) -> TrainOptions:
    base = dict(data=[data_dir], out=out, steps=6, batch_size=2, crop=64, N=16, M=24, warmup=2,
                device="cpu", log_every=1)
    base.update(kw)
    return TrainOptions(**base)


def test_training_resumes_where_it_stopped(data_dir, tmp_path):
    ckpt = tmp_path / "run.pt"
    logs = []
    train(opts(data_dir, ckpt, steps=3), log=logs.append)
    model, state = load_checkpoint(ckpt)
    assert state["step"] == 3 and (model.config.N, model.config.M) == (16, 24)
    assert all(v.dtype in (torch.float32, torch.int32, torch.int64, torch.uint8) for v in state["state_dict"].values())
    train(opts(data_dir, ckpt, steps=5, resume=ckpt), log=logs.append)
    _, state = load_checkpoint(ckpt)
    assert state["step"] == 5
    assert any("starting at step 3" in l for l in logs)
    steps_logged = [int(l.split()[1]) for l in logs if l.startswith("step ")]
    assert steps_logged == [1, 2, 3, 4, 5]
    losses = [float(l.split()[3]) for l in logs if l.startswith("step ")]
    assert all(np.isfinite(losses))
    assert [c["to_step"] for c in state["training"]["chunks"]] == [3, 5]


def test_resumed_run_equals_an_uninterrupted_run(data_dir, tmp_path):
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    train(opts(data_dir, a, steps=4), log=lambda *_: None)
    train(opts(data_dir, b, steps=2), log=lambda *_: None)
    train(opts(data_dir, b, steps=4, resume=b), log=lambda *_: None)
    sa, sb = load_checkpoint(a)[1]["state_dict"], load_checkpoint(b)[1]["state_dict"]
    for k in sa:
        torch.testing.assert_close(sa[k], sb[k], rtol=1e-4, atol=1e-5, msg=k)


def test_lr_schedule_warms_up_then_decays():
    o = TrainOptions(data=[], out=Path("x"), steps=1000, warmup=100, lr=1e-4)
    lrs = [lr_at(s, o) for s in (0, 50, 99, 100, 500, 999)]
    assert lrs[0] < lrs[1] < lrs[2] == pytest.approx(1e-4)
    assert lrs[3] > lrs[4] > lrs[5] >= 1e-5 - 1e-12


def test_train_and_export_commands_make_a_usable_model(data_dir, tmp_path, monkeypatch):
    runner = CliRunner()
    run, weights = tmp_path / "run.pt", tmp_path / "w" / "tiny.pt"
    r = runner.invoke(app, ["train", str(data_dir), "-o", str(run), "--steps", "2", "--batch-size", "2",
                            "--crop", "64", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["export", str(run), "-o", str(weights)])
    assert r.exit_code == 0, r.output
    img = smooth_image(40, 40)
    data = aecodec.encode(img, quality=50, model=weights)
    assert aecodec.decode(data, model=weights).size == (40, 40)
    # Without model=, decode finds the weights by the file's id + hash along AECODEC_MODEL_PATH
    # (the shipped weights of the same id have another hash and are passed over).
    with pytest.raises(aecodec.ModelNotFound, match="install the matching weights"):
        aecodec.decode(data)
    monkeypatch.setenv("AECODEC_MODEL_PATH", str(weights.parent))
    (weights.parent / "mean-scale-vr-128.pt").write_bytes(weights.read_bytes())
    assert aecodec.decode(data).size == (40, 40)
