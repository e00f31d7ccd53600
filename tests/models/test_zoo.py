"""aecodec.models.zoo: the shipped weights load checked and keep their hash; a model id that resolves to a
damaged checkpoint, and weights that load but cannot code, are refused naming the checkpoint, not the image."""

from __future__ import annotations

import json

import pytest
import torch

import aecodec
from aecodec.errors import CheckpointError, ModelError
from aecodec.models import zoo
from aecodec.models.checkpoint import save_checkpoint, weights_hash
from aecodec.models.hyperprior import HyperpriorConfig, MeanScaleHyperprior
from tests.helpers import smooth_image


def test_the_shipped_weights_pass_every_check_and_keep_their_hash():
    path = zoo.SHIPPED_DIR / f"{zoo.DEFAULT_MODEL_ID}.pt"
    net, model_id, digest = zoo.load()
    card = json.loads(path.with_suffix(".json").read_text())
    assert model_id == zoo.DEFAULT_MODEL_ID and digest == weights_hash(torch.load(path, weights_only=True)["state_dict"])
    assert digest in json.dumps(card) and net.source == str(path)


@pytest.fixture
def tiny(tmp_path):
    torch.manual_seed(0)
    model = MeanScaleHyperprior(HyperpriorConfig(N=8, M=12))
    model.update()
    return model


def test_a_model_id_found_in_the_model_path_as_a_damaged_checkpoint_is_blamed_not_the_file(tiny, tmp_path, monkeypatch):
    good = tmp_path / "good" / "tiny.pt"
    save_checkpoint(good, tiny, model_id="tiny")
    data = aecodec.encode(smooth_image(16, 24), model=good)
    c = torch.load(good, weights_only=True)
    c["state_dict"]["g_s.0.weight"][0, 0, 0, 0] = float("nan")  # before: "corrupt latent data", blaming the file
    c["weights_hash"] = weights_hash(c["state_dict"])
    (tmp_path / "bad").mkdir()
    torch.save(c, tmp_path / "bad" / "tiny.pt")
    monkeypatch.setenv("AECODEC_MODEL_PATH", str(tmp_path / "bad"))
    with pytest.raises(CheckpointError, match=f"^{tmp_path / 'bad' / 'tiny.pt'}: tensor g_s.0.weight holds NaN$"):
        aecodec.decode(data)


def test_weights_that_load_but_give_latents_beyond_the_coder_are_a_model_error_naming_them(tiny, tmp_path):
    with torch.no_grad():
        tiny.g_a[0].weight[0].fill_(1e30)  # finite, far too large
    path = tmp_path / "huge.pt"
    save_checkpoint(path, tiny, model_id="huge")
    zoo.load(path)
    with pytest.raises(ModelError, match=f"^{path}: latent values beyond .* its weights cannot code this image$"):
        aecodec.encode(smooth_image(16, 24), model=path)
