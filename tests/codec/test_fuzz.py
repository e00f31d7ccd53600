"""A short, seeded fuzz run of the decoder (the long run: python -m tests.fuzz_decoder)."""

from __future__ import annotations

import random
from collections import Counter

from tests import fuzz_decoder


def test_decoder_survives_2000_mutated_and_random_files():
    """Every case ends in a clean one-line error or an image of the header's size and mode (checked
    per case by the harness); and each outcome is the one its damage calls for."""
    cases = fuzz_decoder.run(2000, seed=20261124, log=None)
    by_outcome = Counter()
    for (kind, crc_valid, outcome), n in cases.items():
        by_outcome[outcome] += n
        if not crc_valid:  # damage the CRC sees: never decoded, never a model lookup
            assert outcome == "FormatError", (kind, outcome, n)
        if kind == "hash" and crc_valid and outcome != "image":  # another model: named, not guessed
            assert outcome == "ModelNotFound", (kind, outcome, n)
        if kind in ("payload", "empty", "damage", "bomb"):  # hostile payloads behind a valid CRC: refused
            assert outcome == "FormatError", (kind, crc_valid, outcome, n)
    assert cases["hash", True, "ModelNotFound"] > 0
    for kind in ("payload", "damage", "bomb", "empty"):
        assert cases[kind, True, "FormatError"] > 50, (kind, cases)
    assert by_outcome["FormatError"] > 500 and by_outcome["image"] > 20, by_outcome


def test_every_mutation_kind_is_exercised():
    rng = random.Random(0)
    data = fuzz_decoder.seeds()[0]
    kinds = {fuzz_decoder.mutate(data, rng)[0] for _ in range(500)}
    assert kinds == set(fuzz_decoder.KINDS)
