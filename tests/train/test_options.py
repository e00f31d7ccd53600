"""aecodec.train.options: levels, model ids and level biases that cannot train are refused before training."""

from __future__ import annotations

import pytest

from aecodec.train import TrainError, train
from tests.helpers import train_opts

opts = train_opts


@pytest.mark.parametrize("kw, message", [
    ({"lambdas": (0.01, 0.001)}, "increasing"), ({"lambdas": (-1.0,)}, "positive"),
    ({"model_id": "Not_Kebab"}, "kebab-case"),
])
def test_bad_levels_or_model_id_are_refused_before_training(data_dir, tmp_path, kw, message):
    with pytest.raises(TrainError, match=message):
        train(opts(data_dir, tmp_path / "run.pt", **kw), log=lambda *_: None)
    assert not (tmp_path / "run.pt").exists()


def test_a_level_bias_that_leaves_a_level_no_chance_is_refused(data_dir, tmp_path):
    with pytest.raises(TrainError, match="--level-bias"):
        train(opts(data_dir, tmp_path / "x.pt", level_bias=-1.0), log=lambda *_: None)
