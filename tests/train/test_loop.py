"""aecodec.train.loop: resuming, single-rate models, AMP, level bias, the training record, stopping on a signal."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import torch

import aecodec
from aecodec.models.checkpoint import load_checkpoint, read_checkpoint
from aecodec.train import train
from aecodec.train.loop import draw_levels
from tests.helpers import logged, smooth_image, train_opts

opts = train_opts


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
    assert [c["to_step"] for c in state["training"]["chunks"]] == [3, 5]


def test_resumed_run_equals_an_uninterrupted_run(data_dir, tmp_path):
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    train(opts(data_dir, a, steps=4), log=lambda *_: None)
    train(opts(data_dir, b, steps=2), log=lambda *_: None)
    train(opts(data_dir, b, steps=4, resume=b), log=lambda *_: None)
    sa, sb = load_checkpoint(a)[1]["state_dict"], load_checkpoint(b)[1]["state_dict"]
    for k in sa:
        torch.testing.assert_close(sa[k], sb[k], rtol=1e-4, atol=1e-5, msg=k)


def test_a_single_rate_model_with_its_own_id_trains_resumes_and_codes(data_dir, tmp_path):
    from aecodec.train import export

    run, weights = tmp_path / "run.pt", tmp_path / "single.pt"
    train(opts(data_dir, run, steps=2, lambdas=(0.0067,), model_id="single-0067"), log=lambda *_: None)
    train(opts(data_dir, run, steps=3, resume=run), log=lambda *_: None)  # keeps its id and level
    model, state = load_checkpoint(run)
    assert state["model_id"] == "single-0067" and model.config.lambdas == (0.0067,) and state["step"] == 3
    export(run, weights, log=lambda *_: None)
    data = aecodec.encode(smooth_image(40, 48), quality=30, model=weights)
    assert aecodec.info(data)["model_id"] == "single-0067"
    assert aecodec.decode(data, model=weights).size == (48, 40)


def test_amp_and_channels_last_train_on_cpu(data_dir, tmp_path):
    ckpt, logs = tmp_path / "amp.pt", []
    train(opts(data_dir, ckpt, steps=2, amp="bf16", channels_last=True, data_on_device=True), log=logs.append)
    fp32_logs = []
    train(opts(data_dir, tmp_path / "fp32.pt", steps=2, channels_last=True, data_on_device=True), log=fp32_logs.append)
    assert logged(logs, "loss") == pytest.approx(logged(fp32_logs, "loss"), rel=1e-3)  # measured: 1.3e-5
    model, state = load_checkpoint(ckpt)
    assert state["step"] == 2 and state["training"]["chunks"][-1]["amp"] == "bf16"
    assert all(v.dtype != torch.bfloat16 for v in state["state_dict"].values())


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT"])
def test_a_signal_ends_the_chunk_with_a_save(data_dir, tmp_path, sig):
    import signal
    import time

    ckpt = tmp_path / "run.pt"
    p = subprocess.Popen([sys.executable, "-m", "aecodec", "train", str(data_dir), "-o", str(ckpt), "--steps", "100000",
                          "--crop", "64", "--batch-size", "2", "--device", "cpu", "--log-every", "1", "--threads", "1"],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in p.stdout:  # wait until it is training
        lines.append(line)
        if line.startswith("step 2 "):
            break
    p.send_signal(getattr(signal, sig))
    t = time.monotonic()
    rest = p.communicate(timeout=60)[0]
    assert p.returncode == 0 and time.monotonic() - t < 30, "".join(lines) + rest
    m = re.search(r"stopped by signal (\d+) at step (\d+)", rest)
    assert m and int(m.group(1)) == getattr(signal, sig)
    _, state = load_checkpoint(ckpt)
    assert state["step"] == int(m.group(2)) >= 2
    assert "Traceback" not in rest


# ----------------------------------------------------------------------------- level bias
def test_level_bias_draws_levels_in_proportion_to_one_plus_bias_times_level():
    torch.manual_seed(0)
    n = 80_000
    counts = torch.bincount(draw_levels(8, n, 2.0, torch.device("cpu")), minlength=8).double()
    expected = 1 + 2.0 * torch.arange(8) / 7
    expected = n * expected / expected.sum()
    assert ((counts - expected).abs() / expected).max() < 0.05
    assert counts[7] / counts[0] == pytest.approx(3.0, rel=0.1)


def test_no_bias_keeps_the_uniform_random_stream_of_earlier_versions():
    torch.manual_seed(1)
    a = draw_levels(8, 64, 0.0, torch.device("cpu"))
    torch.manual_seed(1)
    b = torch.randint(0, 8, (64,))
    assert torch.equal(a, b)


def test_the_training_record_names_the_recipe_of_each_chunk(data_dir, tmp_path):
    train(opts(data_dir, tmp_path / "run.pt", steps=2, level_bias=1.5, aux_transform=True), log=lambda *_: None)
    chunk = read_checkpoint(tmp_path / "run.pt")["training"]["chunks"][-1]
    assert chunk["level_bias"] == 1.5 and chunk["aux_transform"] is True
