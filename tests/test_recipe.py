"""The training recipe's options and the trials that choose between them: AuxT (a zero-initialised
linear Haar shortcut), level bias (which gain levels a crop is trained at), and the equal-minute
trial harness (benchmarks/trials.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from aecodec.codec import api
from aecodec.codec import format as fmt
from aecodec.models.aux_transform import HaarAnalysis, HaarSynthesis, haar_basis
from aecodec.models.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from aecodec.models.hyperprior import HyperpriorConfig, MeanScaleHyperprior
from aecodec.train import TrainError, export, train
from aecodec.train.loop import draw_levels

from .conftest import smooth_image, train_opts


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


opts = train_opts


# ----------------------------------------------------------------------------- AuxT
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


def test_a_model_given_the_shortcut_computes_the_same_function_and_old_configs_stay_unchanged(data_dir, tmp_path):
    train(opts(data_dir, tmp_path / "plain.pt", steps=1), log=lambda *_: None)
    export(tmp_path / "plain.pt", tmp_path / "plain-w.pt", log=lambda *_: None)
    assert "aux_transform" not in read_checkpoint(tmp_path / "plain-w.pt")["config"]  # older versions read it
    # A chunk that ends where its start did (step 1 of 1) only adds the shortcut and saves.
    train(opts(data_dir, tmp_path / "aux.pt", steps=1, init_from=tmp_path / "plain-w.pt", aux_transform=True),
          log=lambda *_: None)
    plain, _ = load_checkpoint(tmp_path / "plain-w.pt")
    grown, ck = load_checkpoint(tmp_path / "aux.pt")
    assert ck["config"]["aux_transform"] is True and grown.aux_a is not None
    assert not grown.aux_a.proj.weight.any() and not grown.aux_s.proj.weight.any()
    x = torch.rand(1, 3, 64, 128)
    plain.eval(), grown.eval()
    with torch.no_grad():
        a, b = plain(x, torch.tensor([3.0])), grown(x, torch.tensor([3.0]))
    torch.testing.assert_close(a["x_hat"], b["x_hat"], atol=1e-5, rtol=0)
    torch.testing.assert_close(a["likelihoods"]["y"], b["likelihoods"]["y"], atol=1e-6, rtol=0)


def test_an_auxt_model_trains_its_shortcut_and_codes_real_files(data_dir, tmp_path):
    train(opts(data_dir, tmp_path / "run.pt", steps=4, aux_transform=True, lr=1e-3), log=lambda *_: None)
    export(tmp_path / "run.pt", tmp_path / "w.pt", log=lambda *_: None)
    model, ck = load_checkpoint(tmp_path / "w.pt")
    assert model.config.aux_transform and model.aux_s.proj.weight.any()  # it learned
    rgb = smooth_image(72, 100, seed=5)
    data = api.encode_with(model, ck["model_id"], ck["weights_hash"][:16], rgb, None, fmt.Layout.RGB, 50)
    out = np.asarray(api.decode_with(model, fmt.unpack(data)))
    assert out.shape == rgb.shape and out.dtype == np.uint8
    # The shortcut is part of the decoder: without it the same file decodes to other pixels.
    model.aux_s = None
    assert not np.array_equal(np.asarray(api.decode_with(model, fmt.unpack(data))), out)


def test_a_config_with_the_shortcut_round_trips_through_a_checkpoint(tmp_path):
    m = MeanScaleHyperprior(HyperpriorConfig(N=8, M=12, aux_transform=True))
    torch.nn.init.normal_(m.aux_a.proj.weight)
    save_checkpoint(tmp_path / "m.pt", m, model_id="aux-test")
    m2, _ = load_checkpoint(tmp_path / "m.pt")
    assert m2.config == m.config
    torch.testing.assert_close(m2.aux_a.proj.weight, m.aux_a.proj.weight)


def test_a_resumed_run_cannot_change_its_architecture(data_dir, tmp_path):
    train(opts(data_dir, tmp_path / "run.pt", steps=1), log=lambda *_: None)
    with pytest.raises(TrainError, match="keeps its checkpoint's architecture"):
        train(opts(data_dir, tmp_path / "run.pt", steps=2, resume=tmp_path / "run.pt", aux_transform=True),
              log=lambda *_: None)


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


def test_a_level_bias_that_leaves_a_level_no_chance_is_refused(data_dir, tmp_path):
    with pytest.raises(TrainError, match="--level-bias"):
        train(opts(data_dir, tmp_path / "x.pt", level_bias=-1.0), log=lambda *_: None)


def test_the_training_record_names_the_recipe_of_each_chunk(data_dir, tmp_path):
    train(opts(data_dir, tmp_path / "run.pt", steps=2, level_bias=1.5, aux_transform=True), log=lambda *_: None)
    chunk = read_checkpoint(tmp_path / "run.pt")["training"]["chunks"][-1]
    assert chunk["level_bias"] == 1.5 and chunk["aux_transform"] is True


# ----------------------------------------------------------------------------- the trial harness
def test_trials_train_every_arm_for_the_same_minutes_and_compare_them_on_real_bytes(data_dir, tmp_path):
    from benchmarks import trials

    train(opts(data_dir, tmp_path / "start.pt", steps=2), log=lambda *_: None)
    export(tmp_path / "start.pt", tmp_path / "start-w.pt", log=lambda *_: None)
    kodak = tmp_path / "eval"
    kodak.mkdir()
    Image.fromarray(smooth_image(64, 96, seed=9)).save(kodak / "e.png")
    out = tmp_path / "trials"
    trials.main(["run", "--start", str(tmp_path / "start-w.pt"), "--data", str(data_dir), "--kodak", str(kodak),
                 "--out", str(out), "--minutes", "0.05", "--batch-size", "2", "--crop", "64", "--lr", "1e-3",
                 "--arm", "baseline=", "--arm", "lb=--level-bias 2", "--qualities", "10", "50", "90",
                 "--parallel", "2", "--jobs", "2"])
    import aecodec

    r = json.loads((out / "results.json").read_text())
    assert [a["name"] for a in r["arms"]] == ["baseline", "lb"]
    for a in r["arms"]:
        chunk = read_checkpoint(out / a["weights"])["training"]["chunks"][-1]  # the arm's own record
        assert a["steps"] == chunk["to_step"] - chunk["from_step"] >= 1 and 0.04 < a["minutes"] < 0.5
        assert a["steps_per_s"] == pytest.approx(a["steps"] / (60 * a["minutes"]), abs=1e-3)
        assert [p["quality"] for p in a["kodak"]] == [10.0, 50.0, 90.0]
        bpp = [p["bpp"] for p in a["kodak"]]
        assert bpp == sorted(bpp)
        # each point is a real file: what aecodec.encode writes with the arm's weights
        assert bpp == [8 * len(aecodec.encode(kodak / "e.png", quality=q, model=out / a["weights"])) / (96 * 64)
                       for q in (10, 50, 90)]
    assert r["arms"][0]["bd_vs_baseline"] == 0.0
    assert r["start_weights"]["steps"] == 2 and len(r["start_weights"]["kodak"]) == 3
    assert "| lb | `--level-bias 2` |" in (out / "trials.md").read_text()
    assert (out / "trials.png").stat().st_size > 10_000


def test_an_arm_that_fails_stops_the_trials_with_its_error(data_dir, tmp_path):
    from benchmarks import trials

    train(opts(data_dir, tmp_path / "start.pt", steps=1), log=lambda *_: None)
    with pytest.raises(SystemExit, match=r"arm bad failed(.|\n)*--level-bias"):
        trials.main(["train", "--start", str(tmp_path / "start.pt"), "--data", str(data_dir), "--out",
                     str(tmp_path / "t"), "--minutes", "0.02", "--crop", "64", "--arm", "bad=--level-bias -3"])


def test_an_arm_is_a_name_and_train_options():
    from benchmarks import trials

    assert trials.parse_arm("lr-low=--lr 2e-5") == ("lr-low", "--lr 2e-5")
    assert trials.parse_arm("baseline=") == ("baseline", "")
    with pytest.raises(Exception, match="NAME="):
        trials.parse_arm("no options")


def test_the_data_path_benchmark_times_our_loader_and_crops_against_torchvision(data_dir, tmp_path):
    # A subprocess: where torchvision needs its operator schemas registered by hand, that stays there.
    import subprocess
    import sys
    import time
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    out = tmp_path / "dp.json"
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "benchmarks.data_path", "--data", str(data_dir), "--photos", "3",
                        "--crop", "64", "--batch", "2", "--out", str(out)], cwd=root, capture_output=True,
                       text=True, timeout=300)
    wall = time.perf_counter() - t
    assert r.returncode == 0, r.stderr[-2000:]
    d = json.loads(out.read_text())
    # medians of 3 (and 50) timed repeats: at least 2 (25) of them took that long, inside the process
    assert d["decode"]["photos"] == 3 and 0 < 2 * 3 * d["decode"]["pillow_ms_per_photo"] / 1e3 < wall
    assert "torchvision_ms_per_photo" in d["decode"] or d["decode"]["torchvision"].startswith("unavailable")
    cpu = d["crops"][0]
    assert cpu["device"] == "cpu" and 0 < 25 * cpu["crop_sampler_ms"] / 1e3 < wall
