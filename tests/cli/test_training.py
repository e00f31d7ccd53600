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
    weights.parent.mkdir()  # outputs go into existing folders
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


def test_train_and_export_follow_the_output_policy_before_any_work(data_dir, tmp_path, monkeypatch):
    """train -o over an existing file needs --force unless it is the --resume checkpoint the run
    continues; export never writes over its own input, even with --force; a missing data folder or
    output folder is one line, before any training."""
    import aecodec.train

    runner = CliRunner()
    started = []
    monkeypatch.setattr(aecodec.train, "train", lambda options: started.append(options))
    monkeypatch.setattr(aecodec.train, "export", lambda *a, **k: started.append(a))
    run = tmp_path / "run.pt"
    run.write_bytes(b"a user's file")
    r = runner.invoke(app, ["train", str(data_dir), "-o", str(run)])
    assert r.exit_code == 1 and "already exists (use --force" in r.output and not started
    r = runner.invoke(app, ["train", str(tmp_path / "nodir"), "-o", str(tmp_path / "new.pt")])
    assert r.exit_code == 1 and f"{tmp_path / 'nodir'}: no such directory" in r.output and not started
    r = runner.invoke(app, ["train", str(data_dir), "-o", str(tmp_path / "nodir" / "x.pt")])
    assert r.exit_code == 1 and "does not exist" in r.output and not started
    r = runner.invoke(app, ["train", str(data_dir), "-o", str(run), "--init-from", str(run), "--force"])
    assert r.exit_code == 2 and "is an input" in r.output and not started
    for args in (["--resume", str(run)], ["--force"]):  # its own checkpoint; or asked for
        r = runner.invoke(app, ["train", str(data_dir), "-o", str(run), *args])
        assert r.exit_code == 0, r.output
    assert len(started) == 2
    for args, message in (([str(run), "-o", str(run), "--force"], "is an input"),
                          ([str(run), "-o", str(tmp_path / "nodir" / "w.pt")], "does not exist")):
        r = runner.invoke(app, ["export", *args])
        assert r.exit_code != 0 and message in r.output, r.output
    assert not (tmp_path / "nodir").exists() and run.read_bytes() == b"a user's file" and len(started) == 2


def test_a_missing_resume_or_init_checkpoint_is_named_in_one_line(data_dir, tmp_path):
    for option in ("--resume", "--init-from"):
        r = CliRunner().invoke(app, ["train", str(data_dir), "-o", str(tmp_path / "new.pt"), option,
                                     str(tmp_path / "missing.pt"), "--steps", "1", "--device", "cpu"])
        assert r.exit_code == 1 and r.output == f"aecodec: error: {tmp_path / 'missing.pt'}: no such file\n", r.output
    assert not (tmp_path / "new.pt").exists()
