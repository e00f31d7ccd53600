"""Training: a step runs, a run resumes where it stopped, an export codes images; DDP, bf16,
evaluation with real bitstreams, MS-SSIM and --init-from."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import aecodec
from aecodec.cli import app
from aecodec.models.checkpoint import load_checkpoint
from aecodec.train import TrainError, TrainOptions, lr_at, rd_loss, set_bf16, train

from .conftest import smooth_image, train_opts


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models train ~20× faster on one thread than on two on a busy 2-core machine
    (OpenMP threads spin-wait for each other); every run here is tiny."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


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


def test_export_stores_convolutions_in_float16_and_gdn_and_entropy_models_in_float32(data_dir, tmp_path):
    from aecodec.train import export

    run, mixed, full = tmp_path / "run.pt", tmp_path / "mixed.pt", tmp_path / "full.pt"
    train(opts(data_dir, run, steps=2), log=lambda *_: None)
    export(run, mixed, log=lambda *_: None)
    export(run, full, log=lambda *_: None, storage="fp32")
    m_model, m = load_checkpoint(mixed)  # the hash covers the stored float16 tensors
    f_model, f = load_checkpoint(full)
    assert m["storage"] == "mixed" and f["storage"] == "fp32"
    half = {k for k, v in m["state_dict"].items() if v.dtype == torch.float16}
    assert half == {k for k in f["state_dict"] if k.startswith(("g_a.", "h_a.", "h_s.", "g_s."))
                    and k.endswith((".weight", ".bias"))}
    assert not any(k.endswith((".beta", ".gamma")) or k.startswith(("entropy_bottleneck", "gaussian_conditional"))
                   for k in half)
    assert m["weights_hash"] != f["weights_hash"]
    assert mixed.stat().st_size < full.stat().st_size
    assert all(p.dtype == torch.float32 for p in m_model.parameters())
    x = torch.from_numpy(smooth_image(64, 64)).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        a = f_model.synthesize(torch.round(f_model.analyze(x, 3.0)), 3.0)
        b = m_model.synthesize(torch.round(m_model.analyze(x, 3.0)), 3.0)
    assert (a - b).abs().max() < 2e-2  # (a NaN fails this too)
    img = smooth_image(48, 40)
    out = np.asarray(aecodec.decode(aecodec.encode(img, quality=60, model=mixed), model=mixed))
    assert out.shape == img.shape


def test_export_command_rejects_a_missing_or_unreadable_checkpoint(tmp_path):
    runner = CliRunner()
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    for src in (tmp_path / "missing.pt", junk):
        r = runner.invoke(app, ["export", str(src), "-o", str(tmp_path / "out.pt")])
        assert r.exit_code == 2, r.output
        assert r.output.startswith("aecodec: error:") and len(r.output.strip().splitlines()) == 1
        assert not (tmp_path / "out.pt").exists()
    r = runner.invoke(app, ["export", str(junk), "-o", str(tmp_path / "out.pt"), "--storage", "fp8"])
    assert r.exit_code == 2 and "--storage" in r.output


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


@pytest.mark.parametrize("kw, message", [
    ({"lambdas": (0.01, 0.001)}, "increasing"), ({"lambdas": (-1.0,)}, "positive"),
    ({"model_id": "Not_Kebab"}, "kebab-case"),
])
def test_bad_levels_or_model_id_are_refused_before_training(data_dir, tmp_path, kw, message):
    with pytest.raises(TrainError, match=message):
        train(opts(data_dir, tmp_path / "run.pt", **kw), log=lambda *_: None)
    assert not (tmp_path / "run.pt").exists()


def _logged(logs: list[str], what: str) -> list[float]:
    """Values of one field (``loss``, ``lr`` …) of the ``step`` lines."""
    return [float(l.split()[l.split().index(what) + 1]) for l in logs if l.startswith("step ")]


def test_two_ddp_processes_on_cpu_end_with_identical_weights(data_dir, tmp_path):
    ckpt = tmp_path / "ddp.pt"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone",
           "-m", "aecodec", "train", str(data_dir), "-o", str(ckpt), "--steps", "3", "--batch-size", "2",
           "--crop", "64", "--N", "16", "--M", "24", "--warmup", "2", "--device", "cpu",
           "--log-every", "1", "--max-minutes", "10"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "starting at step 0; 2 processes × batch 2" in out
    assert len(re.findall(r"^step 1 ", r.stdout, re.M)) == 1, out  # rank 0 alone logs
    # Every rank hashed its weights at the end and they agreed; rank 0 saved those weights.
    digest = re.search(r"ddp: all 2 processes hold weights ([0-9a-f]{16})", out).group(1)
    model, state = load_checkpoint(ckpt)
    assert state["step"] == 3 and state["weights_hash"] == digest
    assert state["training"]["chunks"][-1]["processes"] == 2 and (model.config.N, model.config.M) == (16, 24)


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


def test_amp_and_channels_last_train_on_cpu(data_dir, tmp_path):
    ckpt, logs = tmp_path / "amp.pt", []
    train(opts(data_dir, ckpt, steps=2, amp="bf16", channels_last=True, data_on_device=True), log=logs.append)
    fp32_logs = []
    train(opts(data_dir, tmp_path / "fp32.pt", steps=2, channels_last=True, data_on_device=True), log=fp32_logs.append)
    assert _logged(logs, "loss") == pytest.approx(_logged(fp32_logs, "loss"), rel=1e-3)  # measured: 1.3e-5
    model, state = load_checkpoint(ckpt)
    assert state["step"] == 2 and state["training"]["chunks"][-1]["amp"] == "bf16"
    assert all(v.dtype != torch.bfloat16 for v in state["state_dict"].values())


def test_evaluation_codes_real_bitstreams(data_dir, tmp_path):
    """evaluate()'s bpp and PSNR equal an independent computation: each image encoded by the public
    API with the exported (fp32) weights, bpp from the file's bytes, PSNR with numpy on the decoded
    pixels; only the first --eval-images files (sorted) count, and the level is q/100·(L−1)."""
    ev = tmp_path / "kodak"
    ev.mkdir()
    imgs = [smooth_image(70, 90, seed=5), smooth_image(64, 100, seed=6), smooth_image(80, 80, seed=7)]
    for i, a in enumerate(imgs):
        Image.fromarray(a).save(ev / f"k{i}.png")
    imgs = imgs[:2]  # k2.png is beyond eval_images
    ckpt, weights, logs = tmp_path / "run.pt", tmp_path / "w.pt", []
    train(opts(data_dir, ckpt, steps=3, eval_dir=ev, eval_every=2, eval_images=2), log=logs.append)
    evals = [l for l in logs if l.startswith("eval ")]
    assert [l.split()[2] for l in evals] == ["2:"] * 3 + ["3:"] * 3
    assert "level 3.50 (q 50) bpp" in evals[1] and "(2 images," in evals[1]
    _, state = load_checkpoint(ckpt)
    record = state["training"]["eval"]
    assert record["step"] == 3 and record["images"] == 2
    assert [r["quality"] for r in record["results"]] == [25, 50, 75]
    assert [r["level"] for r in record["results"]] == [0.25 * 7, 0.5 * 7, 0.75 * 7]  # 8 levels

    from aecodec.train import export
    export(ckpt, weights, log=lambda *_: None, storage="fp32")  # the very weights that were evaluated
    for r in record["results"]:
        bpp, psnr = [], []
        for a in imgs:
            data = aecodec.encode(a, quality=r["quality"], model=weights)
            dec = np.asarray(aecodec.decode(data, model=weights)).astype(np.float64)
            assert dec.shape == a.shape
            bpp.append(8 * len(data) / (a.shape[0] * a.shape[1]))
            psnr.append(10 * np.log10(255**2 / np.mean((dec - a.astype(np.float64)) ** 2)))
        assert abs(r["bpp"] - np.mean(bpp)) <= 1e-9 * np.mean(bpp)
        assert abs(r["psnr"] - np.mean(psnr)) <= 1e-9 * np.mean(psnr)


def test_an_unreadable_photo_is_skipped_with_a_warning_and_training_runs(data_dir, tmp_path):
    (data_dir / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG")
    (data_dir / "notes.txt").write_text("not an image (no image suffix): not even looked at")
    ckpt, logs = tmp_path / "run.pt", []
    train(opts(data_dir, ckpt, steps=2), log=logs.append)
    warnings = [l for l in logs if l.startswith("warning:")]
    assert len(warnings) == 1 and f"skipped {data_dir / 'broken.jpg'}: cannot read image" in warnings[0]
    assert any(l.startswith("4 images (") and "; 1 unreadable skipped)" in l for l in logs), logs
    _, state = load_checkpoint(ckpt)
    assert state["step"] == 2
    # Only unreadable photos: a one-line TrainError, not a traceback.
    only_bad = tmp_path / "bad"
    only_bad.mkdir()
    (only_bad / "broken.png").write_bytes(b"junk")
    with pytest.raises(TrainError, match=r"no training images found in .*bad \(1 unreadable\)"):
        train(opts(only_bad, tmp_path / "x.pt"), log=lambda *_: None)


def test_load_images_applies_exif_orientation(tmp_path):
    from aecodec.train import load_images

    stored = smooth_image(64, 96, seed=3)  # 96 wide, 64 high as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: the stored image is shown rotated 90° clockwise
    Image.fromarray(stored).save(tmp_path / "rotated.jpg", quality=95, exif=exif)
    with Image.open(tmp_path / "rotated.jpg") as im:
        raw = np.asarray(im.convert("RGB"))  # the decoded pixels, orientation not applied
    (x,) = load_images([tmp_path])
    assert x.dtype == torch.uint8 and x.shape == (3, 96, 64)  # transposed: 64 wide, 96 high
    shown = x.permute(1, 2, 0).numpy()
    assert np.array_equal(shown, np.rot90(raw, k=-1))  # clockwise
    assert not np.array_equal(shown, np.rot90(raw, k=1))


def test_ms_ssim_trains_at_crop_192_and_refuses_small_crops(data_dir, tmp_path):
    logs = []
    train(opts(data_dir, tmp_path / "ms.pt", steps=1, batch_size=1, crop=192, distortion="ms-ssim"),
          log=logs.append)
    mse_logs = []
    train(opts(data_dir, tmp_path / "mse.pt", steps=1, batch_size=1, crop=192), log=mse_logs.append)
    assert _logged(logs, "loss")[0] != pytest.approx(_logged(mse_logs, "loss")[0], rel=0.1)  # same crop, other D
    assert load_checkpoint(tmp_path / "ms.pt")[1]["training"]["chunks"][-1]["distortion"] == "ms-ssim"
    r = CliRunner().invoke(app, ["train", str(data_dir), "-o", str(tmp_path / "x.pt"), "--crop", "128",
                                 "--distortion", "ms-ssim", "--device", "cpu"])
    assert r.exit_code == 2 and "needs --crop of at least 161" in r.output
    assert not (tmp_path / "x.pt").exists()


def test_init_from_weights_continues_the_step_with_a_fresh_optimiser(data_dir, tmp_path):
    from aecodec.train import export

    run, weights, logs = tmp_path / "run.pt", tmp_path / "w.pt", []
    train(opts(data_dir, run, steps=2), log=lambda *_: None)
    export(run, weights, log=lambda *_: None)
    o = opts(data_dir, tmp_path / "next.pt", steps=6, init_from=weights, init_warmup=2, progress=True)
    train(o, log=logs.append)
    assert any("starting at step 2" in l and "fresh optimiser" in l for l in logs)
    assert [int(l.split()[1]) for l in logs if l.startswith("step ")] == [3, 4, 5, 6]
    lrs = _logged(logs, "lr")
    assert lrs[0] == pytest.approx(lr_at(3, o), rel=1e-2)  # ramp: step 3 is the 2nd of 2 warm-up steps
    _, state = load_checkpoint(o.out)
    assert state["step"] == 6
    assert state["optimizer"]["state"][0]["step"] == 4  # Adam saw only this chunk's steps
    chunks = state["training"]["chunks"]
    assert [c["to_step"] for c in chunks] == [2, 6] and chunks[-1]["init_from"] == str(weights)
    with pytest.raises(TrainError, match="exclude each other"):
        train(opts(data_dir, run, resume=run, init_from=weights), log=lambda *_: None)


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
