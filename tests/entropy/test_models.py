"""aecodec.entropy.models: the entropy bottleneck computes what CompressAI's does."""

from __future__ import annotations

import torch

from aecodec._compressai import compressai
from aecodec.entropy.models import EntropyBottleneck


def test_entropy_bottleneck_matches_compressai():
    torch.manual_seed(0)
    ours, theirs = EntropyBottleneck(8), compressai().entropy_models.EntropyBottleneck(8)
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(3, 8, 5, 7) * 3
    for training in (False, True):
        torch.manual_seed(1)
        a = ours(x, training=training)
        torch.manual_seed(1)
        b = theirs(x, training=training)
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
