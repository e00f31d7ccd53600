"""aecodec.cli.training: train and export make a usable model; export refuses a checkpoint it cannot read."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

import aecodec
from aecodec.cli import app
from tests.helpers import smooth_image

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny training runs: one thread


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
