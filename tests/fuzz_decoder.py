"""Fuzzing harness for the .aec decoder.

Mutates valid files (bit flips, byte overwrites, truncation, insertion, section-length and
header-field edits, huge dimensions, other weights hash, shuffled or random rANS payloads — with
and without a recomputed CRC, so that mutations also reach the entropy decoder) and feeds random
bytes. Every case must end in a clean error (``aecodec.FormatError`` / ``ModelNotFound``) or a
correct-looking image: the header's size and mode, no NaN. A crash, hang, traceback of another
type or runaway allocation fails the run.

    python -m tests.fuzz_decoder --cases 100000 --seed 1     # the long run (prints a summary)

``tests/test_fuzz.py`` runs a short, seeded version of the same harness in the test suite.
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import struct
import sys
import time
import zlib
from collections import Counter

import aecodec
from aecodec.codec import format as fmt

MAX_PIXELS = 1 << 16  # the fuzzer's decompression-bomb cap: keeps every accepted case small


def seeds() -> list[bytes]:
    """Valid files to mutate: tiny RGB, gray, RGBA and a 2×2-tile image."""
    from tests.conftest import smooth_image
    import numpy as np
    rgba = np.dstack([smooth_image(12, 10), np.full((12, 10), 200, np.uint8)])
    return [aecodec.encode(smooth_image(16, 24), quality=50),
            aecodec.encode(smooth_image(9, 7, channels=1), quality=90),
            aecodec.encode(rgba, quality=10),
            aecodec.encode(smooth_image(70, 100, seed=5), quality=70, tile=64)]


def _fix_crc(data: bytes) -> bytes:
    return data[:-4] + struct.pack(">I", zlib.crc32(data[:-4])) if len(data) >= 4 else data


def mutate(data: bytes, rng: random.Random) -> tuple[str, bytes, bool]:
    """``(kind, mutated bytes, crc_valid)``: ``crc_valid`` says whether the file's CRC matches its
    content (recomputed after the mutation, as a forger would; or never touched)."""
    b = bytearray(data)
    kind = rng.choice(["bitflip", "bytes", "truncate", "insert", "length", "header", "dims", "hash",
                       "payload", "random"])
    if kind == "bitflip":
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
    elif kind == "bytes":
        for _ in range(rng.randint(1, 8)):
            b[rng.randrange(len(b))] = rng.randrange(256)
    elif kind == "truncate":
        del b[rng.randrange(len(b)):]
    elif kind == "insert":
        i = rng.randrange(len(b) + 1)
        b[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
    elif kind == "length":  # a section length (the table follows the model id)
        table = 27 + b[26]
        n = (len(b) - table - 4) // 4
        if n > 0:
            i = table + 4 * rng.randrange(min(n, 16))
            b[i:i + 4] = struct.pack(">I", rng.choice([0, 1, 2**31, 2**32 - 1, rng.randrange(2**32)]))
    elif kind == "header":
        i = rng.randrange(4, 27)
        b[i] = rng.randrange(256)
    elif kind == "dims":
        w, h = rng.choice([(0, 1), (2**24, 2**24), (2**24 + 1, 1), (1, 2**31), (65536, 65536),
                           (rng.randrange(1, 300), rng.randrange(1, 300))])
        b[8:16] = struct.pack(">II", w, h)
    elif kind == "hash":
        b[18:26] = bytes(rng.randrange(256) for _ in range(8))
    elif kind == "payload":  # well-formed container, hostile rANS strings
        c = fmt.unpack(bytes(b))
        tiles = tuple((bytes(rng.randrange(256) for _ in range(rng.randrange(48))),
                       bytes(rng.randrange(256) for _ in range(rng.randrange(512)))) for _ in c.tiles)
        return kind, fmt.pack(dataclasses.replace(c, tiles=tiles)), True
    else:
        return kind, bytes(rng.randrange(256) for _ in range(rng.randrange(64))), False
    out = bytes(b)
    if rng.random() < 0.7:
        return kind, _fix_crc(out), True
    return kind, out, out == data


def check(data: bytes) -> str:
    """Decode one case; return the outcome, raise AssertionError on a bad one."""
    try:
        img = aecodec.decode(data, max_pixels=MAX_PIXELS)
    except (aecodec.FormatError, aecodec.ModelNotFound) as exc:
        msg = str(exc)
        assert msg and "\n" not in msg, repr(msg)
        return type(exc).__name__
    c = fmt.unpack(data, max_pixels=MAX_PIXELS)
    assert img.size == (c.width, c.height), (img.size, c.width, c.height)
    assert img.mode == fmt.Layout.PIL_MODES[c.layout]
    return "image"


def run(cases: int, seed: int, log=print) -> Counter:
    """Decode ``cases`` mutated files; count the outcomes by ``(kind, crc_valid, outcome)``."""
    rng = random.Random(seed)
    pool = seeds()
    outcomes: Counter = Counter()
    t0 = time.monotonic()
    for i in range(cases):
        kind, data, crc_valid = mutate(rng.choice(pool), rng)
        try:
            outcomes[kind, crc_valid, check(data)] += 1
        except Exception as exc:  # report with a reproducer
            raise AssertionError(f"case {i} ({kind}, seed {seed}) failed: {exc!r}; "
                                 f"data={data[:64].hex()}…") from exc
        if log and (i + 1) % 10000 == 0:
            log(f"{i + 1} cases, {time.monotonic() - t0:.0f} s")
    return outcomes


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Fuzz the .aec decoder.")
    ap.add_argument("--cases", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: tiny images, no contention)")
    a = ap.parse_args(argv)
    import torch
    torch.set_num_threads(a.threads)
    t0 = time.monotonic()
    outcomes = run(a.cases, a.seed)
    totals = Counter()
    for (_, _, outcome), n in outcomes.items():
        totals[outcome] += n
    print(f"{a.cases} cases, seed {a.seed}, {time.monotonic() - t0:.0f} s, 0 crashes: {dict(totals)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
