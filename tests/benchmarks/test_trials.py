"""benchmarks.trials: equal-minute trials of training recipes, compared on real bytes."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from aecodec.models.checkpoint import read_checkpoint
from aecodec.train import export, train
from tests.helpers import smooth_image, train_opts

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny training runs: one thread
opts = train_opts


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
