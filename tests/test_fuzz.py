"""A short, seeded fuzz run of the decoder (the long run: python -m tests.fuzz_decoder)."""

from __future__ import annotations

import random

from . import fuzz_decoder


def test_decoder_survives_2000_mutated_and_random_files():
    outcomes = fuzz_decoder.run(2000, seed=20261124, log=None)
    assert sum(outcomes.values()) == 2000
    assert outcomes["FormatError"] > 500 and outcomes["image"] > 20, outcomes


def test_every_mutation_kind_is_exercised():
    rng = random.Random(0)
    data = fuzz_decoder.seeds()[0]
    kinds = {fuzz_decoder.mutate(data, rng)[0] for _ in range(300)}
    assert kinds == {"bitflip", "bytes", "truncate", "insert", "length", "header", "dims", "hash",
                     "payload", "random"}
