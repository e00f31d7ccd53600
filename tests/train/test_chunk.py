"""aecodec.train.chunk: how a chunk starts (--init-from, an added AuxT shortcut, a resume keeps its architecture)."""

from __future__ import annotations

import pytest
import torch

from aecodec.models.checkpoint import load_checkpoint, read_checkpoint
from aecodec.train import TrainError, export, lr_at, train
from tests.helpers import logged, train_opts

opts = train_opts


def test_init_from_weights_continues_the_step_with_a_fresh_optimiser(data_dir, tmp_path):
    from aecodec.train import export

    run, weights, logs = tmp_path / "run.pt", tmp_path / "w.pt", []
    train(opts(data_dir, run, steps=2), log=lambda *_: None)
    export(run, weights, log=lambda *_: None)
    o = opts(data_dir, tmp_path / "next.pt", steps=6, init_from=weights, init_warmup=2, progress=True)
    train(o, log=logs.append)
    assert any("starting at step 2" in l and "fresh optimiser" in l for l in logs)
    assert [int(l.split()[1]) for l in logs if l.startswith("step ")] == [3, 4, 5, 6]
    lrs = logged(logs, "lr")
    assert lrs[0] == pytest.approx(lr_at(3, o), rel=1e-2)  # ramp: step 3 is the 2nd of 2 warm-up steps
    _, state = load_checkpoint(o.out)
    assert state["step"] == 6
    assert state["optimizer"]["state"][0]["step"] == 4  # Adam saw only this chunk's steps
    chunks = state["training"]["chunks"]
    assert [c["to_step"] for c in chunks] == [2, 6] and chunks[-1]["init_from"] == str(weights)
    with pytest.raises(TrainError, match="exclude each other"):
        train(opts(data_dir, run, resume=run, init_from=weights), log=lambda *_: None)


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


def test_a_resumed_run_cannot_change_its_architecture(data_dir, tmp_path):
    train(opts(data_dir, tmp_path / "run.pt", steps=1), log=lambda *_: None)
    with pytest.raises(TrainError, match="keeps its checkpoint's architecture"):
        train(opts(data_dir, tmp_path / "run.pt", steps=2, resume=tmp_path / "run.pt", aux_transform=True),
              log=lambda *_: None)


def test_a_resume_needs_a_training_state_that_fits_the_model(data_dir, tmp_path):
    """--resume of exported weights says what they are and to use --init-from; a damaged training
    state (step, optimiser tensors that do not fit) is one CheckpointError naming the file."""
    from aecodec.errors import CheckpointError
    from aecodec.models.checkpoint import weights_hash

    run, weights = tmp_path / "run.pt", tmp_path / "w.pt"
    train(opts(data_dir, run, steps=1), log=lambda *_: None)
    export(run, weights, log=lambda *_: None)
    with pytest.raises(CheckpointError, match=f"^{weights}: exported weights \\(no training state\\) cannot be "
                                              f"resumed; start a run from them with --init-from {weights}$"):
        train(opts(data_dir, tmp_path / "next.pt", steps=2, resume=weights), log=lambda *_: None)
    state = torch.load(run, weights_only=True)
    first = next(iter(state["optimizer"]["state"]))
    for name, damage, why in (
            ("step.pt", lambda c: c.update(step="3"), "its training state is damaged"),
            ("record.pt", lambda c: c["training"].update(chunks={}), "its training state is damaged"),
            ("adam.pt", lambda c: c["optimizer"]["state"][first].update(exp_avg=torch.zeros(2, 2)),
             "its training state does not fit the model"),
            ("groups.pt", lambda c: c["optimizer"].update(param_groups=[]), "its training state does not fit the model")):
        c = torch.load(run, weights_only=True)
        damage(c)
        c["weights_hash"] = weights_hash(c["state_dict"])
        torch.save(c, tmp_path / name)
        with pytest.raises(CheckpointError, match=f"^{tmp_path / name}: {why}"):
            train(opts(data_dir, tmp_path / "next.pt", steps=2, resume=tmp_path / name), log=lambda *_: None)
    assert not (tmp_path / "next.pt").exists()
