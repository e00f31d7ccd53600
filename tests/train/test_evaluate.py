"""aecodec.train.evaluate: export's storage precision, and an evaluation that codes real bitstreams."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import aecodec
from aecodec.models.checkpoint import load_checkpoint
from aecodec.train import train
from tests.helpers import smooth_image, train_opts

opts = train_opts


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


def test_export_never_writes_over_its_input_and_refuses_damaged_checkpoints_in_one_line(data_dir, tmp_path):
    from aecodec.errors import CheckpointError
    from aecodec.models.checkpoint import weights_hash
    from aecodec.train import TrainError, export

    run = tmp_path / "run.pt"
    train(opts(data_dir, run, steps=1), log=lambda *_: None)
    before = run.read_bytes()
    (tmp_path / "link.pt").symlink_to(run)
    for out in (run, tmp_path / "link.pt", tmp_path / "." / "run.pt"):
        with pytest.raises(TrainError, match=f"^{out}: is the checkpoint being exported"):
            export(run, out, log=lambda *_: None)
    assert run.read_bytes() == before  # the training state is still there
    c = torch.load(run, weights_only=True)
    c["state_dict"]["g_a.0.weight"][0, 0, 0, 0] = float("nan")
    c["weights_hash"] = weights_hash(c["state_dict"])
    torch.save(c, tmp_path / "nan.pt")
    with pytest.raises(CheckpointError, match=f"^{tmp_path / 'nan.pt'}: tensor g_a.0.weight holds NaN$"):
        export(tmp_path / "nan.pt", tmp_path / "w.pt", log=lambda *_: None)
    assert not (tmp_path / "w.pt").exists()
